package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"mmpbridge/bridge"
)

// FuzzSalvage: salvage of any bytes returns a report or refuses a file
// with neither header nor entry (never another error, never a panic: the
// guard would turn one into an error), and what it writes verifies.
func FuzzSalvage(f *testing.F) {
	dir := f.TempDir()
	orig := filepath.Join(dir, "orig.mmpkl")
	g, err := bridge.Create(orig)
	if err != nil {
		f.Fatal(err)
	}
	g.Put("a", int64(1))
	g.Put("s", "text")
	g.Put("l", []any{int64(1), "x", map[string]any{"k": 1.5}})
	g.Close()
	b, err := os.ReadFile(orig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add(append(bytes.Clone(b[:30]), b[40:]...))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := filepath.Join(t.TempDir(), "out.mmpkl")
		dst, err := bridge.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := bridge.Salvage(context.Background(), bytes.NewReader(data), int64(len(data)), dst)
		if cerr := dst.Close(); cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil {
			if !errors.Is(err, bridge.ErrNotMmappickle) {
				t.Fatalf("salvage: %v", err)
			}
			return
		}
		vr, err := bridge.VerifyFile(out, nil)
		if err != nil || !vr.OK() {
			t.Fatalf("salvaged file does not verify: %v %+v", err, vr)
		}
		if len(vr.Structure) != 0 || vr.Entries < len(rep.Saved) {
			t.Fatalf("salvaged file: %+v for %d saved", vr, len(rep.Saved))
		}
	})
}
