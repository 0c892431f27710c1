package convert

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
)

const corpus = "../compat/testdata"

func noTemp(t *testing.T, dir string) {
	t.Helper()
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestMmpklToMmpkl(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"dtypes.mmpkl", "masked.mmpkl", "values.mmpkl", "shapes.mmpkl", "deleted.mmpkl"} {
		for _, p := range []bridge.Profile{bridge.Portable, bridge.Mmappickle} {
			src := filepath.Join(corpus, "mmappickle", name)
			dst := filepath.Join(dir, p.String()+"-"+name)
			var calls int
			var last, total int64
			opt := Options{Profile: p, Progress: func(d, tot int64) { calls++; last, total = d, tot }}
			if err := File(context.Background(), src, dst, "", "", opt); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if last != total {
				t.Errorf("%s: progress ended at %d of %d", name, last, total)
			}
			in, _ := bridge.Open(src)
			out, err := bridge.Open(dst)
			if err != nil {
				t.Fatal(err)
			}
			ik, _ := in.Keys()
			ok, _ := out.Keys()
			if strings.Join(ik, ",") != strings.Join(ok, ",") {
				t.Errorf("%s: keys %q, want %q", name, ok, ik)
			}
			for _, k := range ik {
				a, _ := in.Get(k)
				b, _ := out.Get(k)
				if render.Repr(a, 0) != render.Repr(b, 0) {
					t.Errorf("%s %s: %s, want %s", name, k, render.Repr(b, 0), render.Repr(a, 0))
				}
				if aa, ok := a.(*bridge.Array); ok {
					ba := b.(*bridge.Array)
					if ba.Profile != p || string(aa.Bytes()) != string(ba.Bytes()) {
						t.Errorf("%s %s: data or encoding differ", name, k)
					}
				}
			}
			in.Close()
			out.Close()
		}
	}
	noTemp(t, dir)
}

func TestRefuseOverwrite(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.mmpkl")
	os.WriteFile(dst, []byte("precious"), 0o644)
	src := filepath.Join(corpus, "portable", "dtypes.mmpkl")
	err := File(context.Background(), src, dst, "", "", Options{})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "precious" {
		t.Error("destination changed")
	}
	if err := File(context.Background(), src, dst, "", "", Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := bridge.Open(dst); err != nil {
		t.Error(err)
	}
	noTemp(t, dir)
}

func TestCancelLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.mmpkl")
	ctx, cancel := context.WithCancel(context.Background())
	opt := Options{Progress: func(d, tot int64) { cancel() }}
	err := File(ctx, filepath.Join(corpus, "portable", "shapes.mmpkl"), dst, "", "", opt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Error("a cancelled conversion left its destination")
	}
	noTemp(t, dir)
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.mmpkl")
	b, _ := os.ReadFile(filepath.Join(corpus, "portable", "dtypes.mmpkl"))
	os.WriteFile(bad, b[:len(b)-5], 0o644)
	err := File(context.Background(), bad, filepath.Join(dir, "out.mmpkl"), "", "", Options{})
	if err == nil || !strings.Contains(err.Error(), "bad.mmpkl") || !errors.Is(err, bridge.ErrTorn) {
		t.Errorf("torn input: %v", err)
	}
	noTemp(t, dir)
}

// TestOutputError: a full disk met by any temporary file is the
// destination's, said once, with nothing written.
func TestOutputError(t *testing.T) {
	t.Parallel()
	for _, in := range []error{
		&os.PathError{Op: "write", Path: "/proc/self/fd/8", Err: syscall.ENOSPC},
		fmt.Errorf("data.npz: member %q: %w", "a.npy", &os.PathError{Op: "write", Path: "small/.big.npz.tmp-1625057449", Err: syscall.ENOSPC}),
		&h5like{},
	} {
		err := outputError(in, "small/big.npz")
		if got, want := err.Error(), "small/big.npz: no space left on device (nothing written)"; got != want {
			t.Errorf("%v: %q, want %q", in, got, want)
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%v: not ENOSPC", err)
		}
	}
	se := &spaceError{src: "in.h5", need: 100, free: 10}
	if got := outputError(fmt.Errorf("wrapped: %w", se), "out.mmpkl").Error(); got != "out.mmpkl: the arrays of in.h5 need 100 bytes, the file system has 10 free (nothing written)" {
		t.Errorf("space: %q", got)
	}
	other := errors.New("x")
	if outputError(other, "d") != other {
		t.Error("another error was rewritten")
	}
}

type h5like struct{}

func (*h5like) Error() string { return "writing dataset \"/a\": file write failed (errno = 28)" }
func (*h5like) Unwrap() error { return syscall.ENOSPC }
