package bridge

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestTruncatedUnderMapping: another process truncates the file while its
// arrays and values are read through the mapping; reading reports
// ErrShrank instead of crashing (SIGBUS).
func TestTruncatedUnderMapping(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "x.mmpkl")
	f, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	f64 := DType{ByteOrder: '<', Kind: 'f', ItemSize: 8}
	const n = 1 << 20
	s, err := f.Reserve("fortran", ArrayHeader{DType: f64, Shape: []int{1024, n / 1024 / 8}, Fortran: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	long := make([]any, 2000)
	for i := range long {
		long[i] = "a string long enough to lie on several pages of the mapping"
	}
	if err := f.Put("values", long); err != nil {
		t.Fatal(err)
	}
	a, err := f.Array("fortran")
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Reader()
	if err != nil {
		t.Fatal(err)
	}
	// What another process would do.
	if err := os.Truncate(name, 4096); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteC(io.Discard); !errors.Is(err, ErrShrank) {
		t.Errorf("WriteC of a truncated mapping: %v", err)
	}
	if _, err := r.Get("values"); !errors.Is(err, ErrShrank) {
		t.Errorf("Get through a truncated mapping: %v", err)
	}
	if _, err := r.Pickle("values"); !errors.Is(err, ErrShrank) {
		t.Errorf("Pickle through a truncated mapping: %v", err)
	}
	// The File itself sees the new size: the file is torn.
	if _, err := f.Get("values"); !errors.Is(err, ErrTorn) {
		t.Errorf("File.Get after truncation: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
