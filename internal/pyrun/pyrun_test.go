package pyrun

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func envs() map[string]func(testing.TB) *Env {
	return map[string]func(testing.TB) *Env{"numpy1": Numpy1, "numpy2": Numpy2}
}

func TestNumpyVersion(t *testing.T) {
	for name, get := range envs() {
		t.Run(name, func(t *testing.T) {
			e := get(t)
			out := strings.TrimSpace(e.Run(t, "import numpy, sys; print(numpy.__version__)"))
			if out != e.NumpyVersion {
				t.Fatalf("script printed %q, detected %q", out, e.NumpyVersion)
			}
			major, err := strconv.Atoi(strings.SplitN(out, ".", 2)[0])
			if err != nil || (name == "numpy1") != (major < 2) {
				t.Fatalf("%s: numpy %q has the wrong major version", name, out)
			}
			t.Logf("%s", e)
		})
	}
}

func TestFilesAreReadable(t *testing.T) {
	for name, get := range envs() {
		t.Run(name, func(t *testing.T) {
			e := get(t)
			dir := t.TempDir()
			a := filepath.Join(dir, "a.txt")
			b := filepath.Join(dir, "sub", "a.txt") // same base name as a
			if err := os.MkdirAll(filepath.Dir(b), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(a, []byte("hello from go"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(b, []byte("second file"), 0o644); err != nil {
				t.Fatal(err)
			}
			out := e.Run(t, `
import sys
for p in sys.argv[1:]:
    with open(p) as f:
        print(f.read())
`, a, b)
			if want := "hello from go\nsecond file\n"; out != want {
				t.Fatalf("got %q, want %q", out, want)
			}
		})
	}
}

func TestScriptWritesFile(t *testing.T) {
	for name, get := range envs() {
		t.Run(name, func(t *testing.T) {
			e := get(t)
			out := filepath.Join(t.TempDir(), "out.npy")
			e.Run(t, `
import sys, numpy
numpy.save(sys.argv[1], numpy.arange(5, dtype='<i4'))
`, out)
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "\x93NUMPY") {
				t.Fatalf("not an .npy file: %q", data)
			}
		})
	}
}

func TestRunErr(t *testing.T) {
	for name, get := range envs() {
		t.Run(name, func(t *testing.T) {
			e := get(t)
			f := filepath.Join(t.TempDir(), "x")
			if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, err := e.RunErr("import sys; print(sys.argv[1]); sys.exit('boom')", f)
			if err == nil {
				t.Fatal("RunErr: want an error for a failing script")
			}
			if !strings.Contains(stderr, "boom") {
				t.Fatalf("stderr %q does not contain boom", stderr)
			}
			path := strings.TrimSpace(stdout)
			if e.Root == "" {
				if path != f {
					t.Fatalf("script saw %q, want %q", path, f)
				}
				return
			}
			// The staged copy inside the chroot must be gone.
			if !strings.HasPrefix(path, "/tmp/pyrun-") {
				t.Fatalf("unexpected staged path %q", path)
			}
			staged := filepath.Join(e.Root, path)
			if _, err := os.Stat(filepath.Dir(filepath.Dir(staged))); !os.IsNotExist(err) {
				t.Fatalf("temp dir for %s left in the chroot (stat: %v)", staged, err)
			}
		})
	}
}
