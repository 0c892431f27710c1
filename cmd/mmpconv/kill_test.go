package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mmpbridge/bridge"
)

// buildMmpconv builds the command once for tests that need a process.
func buildMmpconv(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mmpconv")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestKillConversion kills conversions at random moments, with SIGKILL and
// with SIGINT: there is never a partial destination, and after SIGINT no
// temporary file either.
func TestKillConversion(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	bin := buildMmpconv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mmpkl")
	f, err := bridge.Create(src, bridge.WithProfile(bridge.Mmappickle))
	if err != nil {
		t.Fatal(err)
	}
	dt, _ := bridge.ParseDType("<f4")
	chunk := bytes.Repeat([]byte{1, 2, 3, 4}, 4<<20) // 16 MiB per array
	for i := range 8 {
		if err := f.PutArray(fmt.Sprintf("a%d", i), bridge.ArrayHeader{DType: dt, Shape: []int{4 << 20}}, bytes.NewReader(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	// A complete conversion, for reference and timing.
	ref := filepath.Join(dir, "ref.mmpkl")
	start := time.Now()
	if out, err := exec.Command(bin, "convert", src, ref).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	full := time.Since(start)
	want, _ := os.ReadFile(ref)

	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		sig := syscall.SIGKILL
		if i%2 == 1 {
			sig = syscall.SIGINT
		}
		dst := filepath.Join(dir, fmt.Sprintf("dst%d.mmpkl", i))
		cmd := exec.Command(bin, "convert", src, dst)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(full) * 12 / 10)))
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		got, rerr := os.ReadFile(dst)
		switch {
		case rerr == nil && !bytes.Equal(got, want):
			t.Fatalf("kill %d (%v): a partial destination exists (%d of %d bytes)", i, sig, len(got), len(want))
		case rerr == nil && err != nil && sig == syscall.SIGINT:
			t.Errorf("kill %d: interrupted conversion failed (%v) but left its destination", i, err)
		}
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if strings.Contains(e.Name(), ".tmp-") {
				if sig == syscall.SIGINT {
					t.Errorf("kill %d: SIGINT left the temporary file %s", i, e.Name())
				}
				// SIGKILL cannot clean up: a stale temporary file is all
				// it may leave (never a partial destination).
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
		os.Remove(dst)
	}
}
