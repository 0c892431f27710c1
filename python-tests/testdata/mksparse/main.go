// Command mksparse writes an mmappickle file holding one big array whose
// data is a hole (bridge.File.Reserve): a 1 GiB array costs no disk and
// milliseconds. The last element is set to 1 (one written page), so readers
// can check they see the data. Used by python-tests/test_big_mapping.py;
// under testdata/ so that `go build ./...` and `go vet ./...` skip it.
//
//	mksparse FILE KEY DTYPE N     (DTYPE a numpy dtype string such as <f4)
package main

import (
	"fmt"
	"os"
	"strconv"

	"mmpbridge/bridge"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mksparse:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: mksparse FILE KEY DTYPE N")
	}
	dt, err := bridge.ParseDType(args[2])
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(args[3])
	if err != nil || n < 1 {
		return fmt.Errorf("N %q: want a positive number", args[3])
	}
	f, err := bridge.Create(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	slot, err := f.Reserve(args[1], bridge.ArrayHeader{DType: dt, Shape: []int{n}})
	if err != nil {
		return err
	}
	last, err := oneIn(dt)
	if err != nil {
		return err
	}
	if _, err := slot.WriteAt(last, slot.NBytes-int64(len(last))); err != nil {
		return err
	}
	if err := slot.Commit(); err != nil {
		return err
	}
	return f.Close()
}

// oneIn is the value 1 in dtype dt's bytes (floats and integers).
func oneIn(dt bridge.DType) ([]byte, error) {
	b := make([]byte, dt.ItemSize)
	var v uint64
	switch {
	case dt.Kind == 'f' && dt.ItemSize == 4:
		v = 0x3f800000
	case dt.Kind == 'f' && dt.ItemSize == 8:
		v = 0x3ff0000000000000
	case dt.Kind == 'i' || dt.Kind == 'u':
		v = 1
	default:
		return nil, fmt.Errorf("dtype %s: want an integer, float32 or float64", dt)
	}
	for i := range b {
		shift := 8 * i
		if dt.ByteOrder == '>' {
			shift = 8 * (len(b) - 1 - i)
		}
		if shift < 64 {
			b[i] = byte(v >> shift)
		}
	}
	return b, nil
}
