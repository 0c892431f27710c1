package bridge

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// rampWriter checks that it is given the little-endian uint64s 0, 1, 2, ...
type rampWriter struct {
	next    uint64
	partial []byte // cap 8
	err     error
}

func (w *rampWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(8-len(w.partial), len(p))
		w.partial, p = append(w.partial, p[:k]...), p[k:]
		if len(w.partial) < 8 {
			break
		}
		if v := binary.LittleEndian.Uint64(w.partial); v != w.next && w.err == nil {
			w.err = fmt.Errorf("element %d is %d", w.next, v)
		}
		w.next, w.partial = w.next+1, w.partial[:0]
	}
	return n, nil
}

// TestWriteCUnmapped: a Fortran-ordered array of a reader that is not a
// mapping (a remote file's) is written in C order without being read into
// memory when large: spooled once into an unnamed scratch file, transposed
// from its mapping. Small ones are read into memory.
//
// Not parallel: it measures the process's allocations.
func TestWriteCUnmapped(t *testing.T) {
	u8, _ := ParseDType("<u8")
	for _, shape := range [][]int{{1024, 2048}, {64, 3, 5}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			n := 1
			for _, d := range shape {
				n *= d
			}
			// Element (i, j, ...) holds its C-order index, stored in
			// Fortran order.
			data := make([]byte, 8*n)
			for c := range n {
				f, rest, stride := 0, c, 1
				idx := make([]int, len(shape))
				for k := len(shape) - 1; k >= 0; k-- {
					idx[k], rest = rest%shape[k], rest/shape[k]
				}
				for k := range shape {
					f += idx[k] * stride
					stride *= shape[k]
				}
				binary.LittleEndian.PutUint64(data[8*f:], uint64(c))
			}
			name := filepath.Join(t.TempDir(), "f.mmpkl")
			f, err := Create(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.PutArray("a", ArrayHeader{DType: u8, Shape: shape, Fortran: true}, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			data = nil
			osf, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer osf.Close()
			st, _ := osf.Stat()
			r, err := NewReader(io.NewSectionReader(osf, 0, st.Size()), st.Size())
			if err != nil {
				t.Fatal(err)
			}
			a, err := r.Array("a")
			if err != nil || a.Bytes() != nil || !a.Fortran {
				t.Fatalf("array %+v (mapped %v), %v", a, a.Bytes() != nil, err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			w := &rampWriter{partial: make([]byte, 0, 8)}
			if err := a.WriteC(w); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			if w.err != nil || w.next != uint64(n) {
				t.Errorf("C order: %v after %d of %d elements", w.err, w.next, n)
			}
			alloc := int64(after.TotalAlloc - before.TotalAlloc)
			t.Logf("%d-byte array: %d bytes allocated", 8*n, alloc)
			if 8*n > spoolInMemory && alloc > spoolInMemory/2 {
				t.Errorf("a %d-byte array allocated %d bytes to be transposed", 8*n, alloc)
			}
		})
	}
}
