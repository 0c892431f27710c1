package bridge

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// allocated is the disk space a file holds (st_blocks), or -1 when the
// platform does not say.
func allocated(t testing.TB, f *os.File) int64 {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return -1
	}
	return s.Blocks * 512
}

// requireHoles skips the test when dir's file system does not keep holes:
// it makes a 16 MiB file with 4 KiB written at its end and looks at what it
// allocated.
func requireHoles(t *testing.T, dir string) {
	t.Helper()
	f, err := os.CreateTemp(dir, "hole")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 4096), 16<<20); err != nil {
		t.Fatal(err)
	}
	if n := allocated(t, f); n < 0 || n >= 8<<20 {
		t.Skipf("the file system of %s does not keep holes (16 MiB file with 4 KiB written allocates %d bytes)", dir, n)
	}
}

const (
	sparseItems = 16 << 20 // float32 elements: a 64 MiB reservation
	patchOff    = 30_000_003
	patchLen    = 1 << 20
)

func f32Header(n int) ArrayHeader {
	return ArrayHeader{DType: DType{ByteOrder: '<', Kind: 'f', ItemSize: 4}, Shape: []int{n}}
}

func patch() []byte {
	p := make([]byte, patchLen)
	for i := range p {
		p[i] = byte(i*7 + 1)
	}
	return p
}

// reserveWithPatch reserves key (64 MiB) in f and writes patch() in its
// middle, leaving the rest a hole.
func reserveWithPatch(t *testing.T, f *File, key string) {
	t.Helper()
	s, err := f.Reserve(key, f32Header(sparseItems))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteAt(patch(), patchOff); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
}

// checkPatched reads key's 64 MiB back: zeros but for patch() at patchOff.
func checkPatched(t *testing.T, f *File, key string) {
	t.Helper()
	v, err := f.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := v.(*Array)
	if !ok || a.NBytes != 4*sparseItems {
		t.Fatalf("%s is %T", key, v)
	}
	got, err := io.ReadAll(a.Section())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 4*sparseItems)
	copy(want[patchOff:], patch())
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s differs from what was written at byte %d", key, i)
	}
}

// TestVacuumKeepsHoles: a reservation stays unallocated through Vacuum,
// by name and in place (NewFile), also when the in-place rewrite moves it
// over the bytes of a deleted entry (they must be punched out, not kept),
// and the bytes written in its middle come back bit for bit.
func TestVacuumKeepsHoles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		inPlace bool
		big     bool // a deleted 64 MiB entry of data before the reservation
	}{
		{"by name", false, false},
		{"by name after a deleted array", false, true},
		{"in place", true, false},
		{"in place over a deleted array", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			requireHoles(t, dir)
			name := filepath.Join(dir, "f.mmpkl")
			var f *File
			var err error
			if tc.inPlace {
				osf, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				f, err = NewFile(osf, true)
			} else {
				f, err = Create(name)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			putI64(t, f, "a", 1, 2, 3)
			if tc.big {
				if err := f.PutArray("big", f32Header(sparseItems), bytes.NewReader(bytes.Repeat([]byte{0xAB}, 4*sparseItems))); err != nil {
					t.Fatal(err)
				}
			}
			reserveWithPatch(t, f, "r")
			putI64(t, f, "b", 4)
			if err := f.Delete("a"); err != nil {
				t.Fatal(err)
			}
			if tc.big {
				if err := f.Delete("big"); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Vacuum(); err != nil {
				t.Fatal(err)
			}
			osf, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer osf.Close()
			if n := allocated(t, osf); n > 4*patchLen {
				t.Errorf("after Vacuum the file allocates %d bytes for a 64 MiB reservation holding %d written bytes", n, patchLen)
			}
			checkPatched(t, f, "r")
			if got := getI64(t, f, "b"); len(got) != 1 || got[0] != 4 {
				t.Errorf("b = %v", got)
			}
		})
	}
}

// TestPutArrayFromFileKeepsHoles: Put of an array read from another file
// copies its data, not its holes.
func TestPutArrayFromFileKeepsHoles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	requireHoles(t, dir)
	src, err := Create(filepath.Join(dir, "src.mmpkl"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	reserveWithPatch(t, src, "r")
	v, err := src.Get("r")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "dst.mmpkl")
	dst, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	putI64(t, dst, "a", 1)
	if err := dst.Put("r", v); err != nil {
		t.Fatal(err)
	}
	osf, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer osf.Close()
	if n := allocated(t, osf); n > 4*patchLen {
		t.Errorf("after Put the file allocates %d bytes for a 64 MiB reservation holding %d written bytes", n, patchLen)
	}
	checkPatched(t, dst, "r")
}
