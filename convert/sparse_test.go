package convert

import (
	"bytes"
	"context"
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

// TestConvertMmpklKeepsHoles: mmpkl -> mmpkl conversion of a file holding
// a 64 MiB reservation with 700 KB written copies data, not holes, in
// both profiles.
func TestConvertMmpklKeepsHoles(t *testing.T) {
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
	src := filepath.Join(dir, "src.mmpkl")
	f, err := bridge.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64 << 20
	h := bridge.ArrayHeader{DType: bridge.DType{ByteOrder: '<', Kind: 'f', ItemSize: 4}, Shape: []int{n / 4}}
	s, err := f.Reserve("r", h)
	if err != nil {
		t.Fatal(err)
	}
	mid := bytes.Repeat([]byte("middle!"), 100_000)
	if _, err := s.WriteAt(mid, 40_000_001); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, p := range []bridge.Profile{bridge.Portable, bridge.Mmappickle} {
		dst := filepath.Join(dir, p.String()+".mmpkl")
		if err := File(context.Background(), src, dst, Mmpkl, Mmpkl, Options{Profile: p, Align: 64, Progress: func(done, total int64) {}}); err != nil {
			t.Fatal(err)
		}
		if got := allocatedBytes(t, dst); got > 4<<20 {
			t.Errorf("%v: converted file allocates %d bytes for a 64 MiB reservation holding %d written bytes", p, got, len(mid))
		}
		g, err := bridge.Open(dst)
		if err != nil {
			t.Fatal(err)
		}
		v, err := g.Get("r")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(v.(*bridge.Array).Section())
		g.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, n)
		copy(want[40_000_001:], mid)
		if !bytes.Equal(got, want) {
			t.Errorf("%v: the array's bytes changed through convert", p)
		}
	}
}
