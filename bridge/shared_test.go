package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"strings"
	"testing"

	"mmpbridge/pyval"
)

// Objects shared through the memo: pickle.load builds a long string, bytes
// object or dtype once and shares it at each BINGET, so reading and
// verifying such a file must cost the object once, not once per use. Each
// file here is about 300 KB and uses one 100 KB object 2,000 times: an
// implementation that copies, hashes, parses or quotes it at each use
// allocates 200 MB or more.

const (
	sharedLen  = 100_000
	sharedUses = 2_000
)

func binUni(s string) []byte { return pkl(opBinUnicode, le32(int32(len(s))), []byte(s)) }

// uses repeats op sharedUses times under a MARK.
func uses(op []byte) []byte {
	return append([]byte{opMark}, bytes.Repeat(op, sharedUses)...)
}

// bigLong is LONG4 of an n-byte int.
func bigLong(n int) []byte {
	b := bytes.Repeat([]byte{0x5a}, n)
	return pkl(opLong4, le32(int32(n)), b)
}

// sharedStructState is a structured dtype's state of n float64 fields, memoized
// at index 1.
func sharedStructState(n int) []byte {
	names := []byte{opMark}
	fields := []byte{opEmptyDict, opMark}
	for i := range n {
		name := fmt.Sprintf("f%05d", i)
		names = append(names, pkl(name)...)
		fields = append(fields, pkl(name, "numpy", "dtype", opStackGlobal, "f8", opNewFalse, opNewTrue, opTuple3, opReduce,
			opMark, opBinInt1, 3, "<", opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0, opTuple, opBuild,
			opBinInt, le32(int32(8*i)), opTuple2)...)
	}
	names = append(names, opTuple)
	fields = append(fields, opSetItems)
	return pkl(opMark, opBinInt1, 3, "|", opNone, names, fields, opBinInt, le32(int32(8*n)), opBinInt1, 1, opBinInt1, 16, opTuple, opBinPut, 1, opPop)
}

// TestSharedObjectsCostOnce reads and verifies each file and bounds what
// that allocates. Not parallel: it measures the process's allocations.
func TestSharedObjectsCostOnce(t *testing.T) {
	long := strings.Repeat("x", sharedLen)
	cases := []struct {
		name  string
		value []byte
		limit bool // the uses build sharedUses objects: the value passes a small MaxValueBytes
	}{
		{name: "fromstring dtype name", value: pkl("numpy.core.multiarray", "fromstring", opStackGlobal, opBinPut, 1,
			opShortBinBytes, 8, make([]byte, 8), opBinPut, 2, binUni(long), opBinPut, 3, opPop, opPop, opPop,
			uses(pkl(opBinGet, 1, opBinGet, 2, opBinGet, 3, opTuple2, opReduce)), opList)},
		{name: "STACK_GLOBAL names", value: pkl(binUni(long), opBinPut, 1, binUni(long+"y"), opBinPut, 2, opPop, opPop,
			uses(pkl(opBinGet, 1, opBinGet, 2, opStackGlobal)), opList)},
		{name: "numpy.dtype descr", value: pkl("numpy", "dtype", opStackGlobal, opBinPut, 1, binUni(long), opBinPut, 2, opPop, opPop,
			uses(pkl(opBinGet, 1, opBinGet, 2, opNewFalse, opNewTrue, opTuple3, opReduce)), opList)},
		{name: "str dict key", value: pkl(binUni(long), opBinPut, 1, opPop, opEmptyDict,
			uses(pkl(opBinGet, 1, opBinInt1, 7)), opSetItems)},
		{name: "tuple dict keys holding a long str", value: pkl(binUni(long), opBinPut, 1, opPop, opEmptyDict,
			uses(pkl(opBinGet, 1, opTuple1, opBinInt1, 7)), opSetItems)},
		{name: "bytes set items", value: pkl(opBinBytes, le32(sharedLen), []byte(long), opBinPut, 1, opPop, opEmptySet,
			uses(pkl(opBinGet, 1)), opAddItems)},
		{name: "big int dict key", value: pkl(bigLong(sharedLen), opBinPut, 1, opPop, opEmptyDict,
			uses(pkl(opBinGet, 1, opNone)), opSetItems)},
		{name: "frozenset keys holding a big int", value: pkl(bigLong(sharedLen), opBinPut, 1, opPop, opEmptyDict,
			uses(pkl(opMark, opBinGet, 1, opFrozenSet, opNone)), opSetItems)},
		{name: "numpy scalars of one bytes", limit: true, value: pkl("numpy.core.multiarray", "scalar", opStackGlobal, opBinPut, 1,
			"numpy", "dtype", opStackGlobal, "S100000", opNewFalse, opNewTrue, opTuple3, opReduce,
			opMark, opBinInt1, 3, "|", opNone, opNone, opNone, opBinInt, le32(sharedLen), opBinInt1, 1, opBinInt1, 0, opTuple, opBuild, opBinPut, 2,
			opBinBytes, le32(sharedLen), []byte(long), opBinPut, 3, opPop, opPop, opPop,
			uses(pkl(opBinGet, 1, opBinGet, 2, opBinGet, 3, opTuple2, opReduce)), opList)},
		// Built once (the state cannot change after a success), then the
		// same dtype at each BUILD.
		{name: "structured dtype rebuilt from one state", value: pkl(sharedStructState(4000),
			"numpy", "dtype", opStackGlobal, opBinPut, 2, opPop,
			opMark, bytes.Repeat(pkl(opBinGet, 2, "V32000", opNewFalse, opNewTrue, opTuple3, opReduce, opBinGet, 1, opBuild), 200), opList)},
		// Checked in full and refused at each BUILD: the work counts.
		{name: "structured dtype of another size rebuilt from one state", limit: true, value: pkl(sharedStructState(4000),
			"numpy", "dtype", opStackGlobal, opBinPut, 2, opPop,
			opMark, bytes.Repeat(pkl(opBinGet, 2, "V16", opNewFalse, opNewTrue, opTuple3, opReduce, opBinGet, 1, opBuild), 200), opList)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := testFile(testEntryMemo("a", c.value, true, 4))
			var opts []Option
			limit := int64(0)
			if c.limit {
				limit = 8 << 20
				opts = append(opts, WithLimits(Limits{MaxValueBytes: limit}))
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			// A value that stops at a limit refuses the whole file (its
			// later memo writes would be unknown): NewReader says so.
			r, getErr := newReaderBytes(data, opts...)
			if getErr == nil {
				_, getErr = r.Get("a")
			} else if !c.limit {
				t.Fatal(getErr)
			}
			_, verr := Verify(bytes.NewReader(data), int64(len(data)), nil, opts...)
			runtime.ReadMemStats(&after)
			if verr != nil {
				t.Fatalf("Verify: %v", verr)
			}
			if c.limit {
				if !errors.Is(getErr, ErrLimit) || !strings.Contains(getErr.Error(), `entry "a" at offset 24 stops early`) {
					t.Errorf("reading: %v, want ErrLimit naming the entry (each use builds a new object)", getErr)
				}
			} else if errors.Is(getErr, ErrLimit) {
				t.Errorf("Get: %v", getErr)
			}
			alloc := int64(after.TotalAlloc - before.TotalAlloc)
			bound := 64*int64(len(data)) + 2*limit + 16<<20
			t.Logf("file %d bytes, allocated %d (bound %d), Get: %v", len(data), alloc, bound, getErr)
			if alloc > bound {
				t.Errorf("reading and verifying a %d-byte file allocated %d bytes (bound %d): a shared object is paid at each use", len(data), alloc, bound)
			}
		})
	}
}

// TestLongKeysEqual: long keys stand for themselves through short tokens;
// equal ones, made apart, are still one key (the first spelling kept, the
// last value), as in Python.
func TestLongKeysEqual(t *testing.T) {
	long := strings.Repeat("k", 1000)
	pow := make([]byte, 127) // 2**1000, little-endian two's complement
	pow[125] = 1
	value := pkl(opEmptyDict, opMark,
		binUni(long), opBinInt1, 1,
		binUni(long), opBinInt1, 2, // the same str, another object
		binUni(long), opTuple1, opBinInt1, 3,
		binUni(long), opTuple1, opBinInt1, 4,
		opLong4, le32(int32(len(pow))), pow, opBinInt1, 5,
		opBinFloat, []byte{0x7e, 0x70, 0, 0, 0, 0, 0, 0}, opBinInt1, 6, // float(2**1000)
		binUni(long+"!"), opBinInt1, 7,
		opSetItems)
	r, err := newReaderBytes(testFile(testEntryMemo("a", value, true, 1)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.Get("a")
	if err != nil {
		t.Fatal(err)
	}
	d, ok := v.(pyval.Dict)
	if !ok || len(d) != 4 {
		t.Fatalf("got %T of %d items, want a dict of 4", v, len(d))
	}
	if d[0].Key != long || d[0].Value != int64(2) {
		t.Errorf("item 0: value %v, want 2", d[0].Value)
	}
	if tk, ok := d[1].Key.(pyval.Tuple); !ok || len(tk) != 1 || tk[0] != long || d[1].Value != int64(4) {
		t.Errorf("item 1: %T = %v, want (long,) = 4", d[1].Key, d[1].Value)
	}
	if b, ok := d[2].Key.(*big.Int); !ok || b.BitLen() != 1001 || d[2].Value != int64(6) {
		t.Errorf("item 2: %T = %v, want 2**1000 = 6", d[2].Key, d[2].Value)
	}
	if k, _ := d[3].Key.(string); k != long+"!" || d[3].Value != int64(7) {
		t.Errorf("item 3: a key of %d bytes = %v, want the 1001-byte str = 7", len(k), d[3].Value)
	}
}
