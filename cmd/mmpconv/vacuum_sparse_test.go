package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"mmpbridge/bridge"
)

func allocatedBytes(t *testing.T, name string) int64 {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		t.Skip("no st_blocks on this platform")
	}
	return s.Blocks * 512
}

// TestVacuumCommandKeepsHoles: mmpconv vacuum of a file holding a 64 MiB
// reservation with 1 MiB written keeps it unallocated, and the bytes.
func TestVacuumCommandKeepsHoles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	pf, err := os.Create(probe)
	if err != nil {
		t.Fatal(err)
	}
	pf.WriteAt(make([]byte, 4096), 16<<20)
	pf.Close()
	if n := allocatedBytes(t, probe); n >= 8<<20 {
		t.Skipf("the file system of %s does not keep holes (%d bytes allocated for 4 KiB written)", dir, n)
	}
	name := filepath.Join(dir, "r.mmpkl")
	f, err := bridge.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64 << 20
	h := bridge.ArrayHeader{DType: bridge.DType{ByteOrder: '<', Kind: 'f', ItemSize: 4}, Shape: []int{n / 4}}
	if err := f.PutArray("gone", h, bytes.NewReader(bytes.Repeat([]byte{1}, n))); err != nil {
		t.Fatal(err)
	}
	s, err := f.Reserve("r", h)
	if err != nil {
		t.Fatal(err)
	}
	mid := bytes.Repeat([]byte("middle!"), 100_000)
	if _, err := s.WriteAt(mid, 12_345_679); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code, out, errs := mmpconv(t, "vacuum", name); code != 0 {
		t.Fatalf("vacuum: exit %d, %q %q", code, out, errs)
	}
	if got := allocatedBytes(t, name); got > 4<<20 {
		t.Errorf("after mmpconv vacuum the file allocates %d bytes for a 64 MiB reservation holding %d written bytes", got, len(mid))
	}
	g, err := bridge.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	v, err := g.Get("r")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(v.(*bridge.Array).Section())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, n)
	copy(want[12_345_679:], mid)
	if !bytes.Equal(got, want) {
		t.Error("the reserved array's bytes changed through vacuum")
	}
}
