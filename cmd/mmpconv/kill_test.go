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
		// The output is unnamed until complete: not even SIGKILL leaves
		// anything behind.
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("kill %d (%v): left %s", i, sig, e.Name())
			}
		}
		os.Remove(dst)
	}
}

// TestKillConversionToHDF5: libhdf5 needs a real name, so an HDF5 output is
// a hidden file until complete; a SIGKILL can leave it, and the next
// conversion into that directory removes it (once its process is gone and
// it has not been written for a minute).
func TestKillConversionToHDF5(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	bin := buildMmpconv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mmpkl")
	f, err := bridge.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	dt, _ := bridge.ParseDType("<f4")
	chunk := bytes.Repeat([]byte{1, 2, 3, 4}, 4<<20)
	for i := range 8 {
		if err := f.PutArray(fmt.Sprintf("a%d", i), bridge.ArrayHeader{DType: dt, Shape: []int{4 << 20}}, bytes.NewReader(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	out := t.TempDir()
	var left []string
	for i := 0; i < 10 && len(left) == 0; i++ {
		cmd := exec.Command(bin, "convert", src, filepath.Join(out, "x.h5"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(50+30*i) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		os.Remove(filepath.Join(out, "x.h5"))
		es, _ := os.ReadDir(out)
		for _, e := range es {
			left = append(left, e.Name())
		}
	}
	if len(left) == 0 {
		t.Skip("no kill landed during the conversion")
	}
	for _, name := range left {
		if !strings.HasPrefix(name, ".x.h5.tmp-") {
			t.Fatalf("a kill left %s", name)
		}
		old := time.Now().Add(-2 * time.Minute)
		os.Chtimes(filepath.Join(out, name), old, old)
	}
	if o, err := exec.Command(bin, "convert", src, filepath.Join(out, "y.h5")).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, o)
	}
	es, _ := os.ReadDir(out)
	if len(es) != 1 || es[0].Name() != "y.h5" {
		t.Errorf("after the next conversion the directory holds %v, want only y.h5", es)
	}
}
