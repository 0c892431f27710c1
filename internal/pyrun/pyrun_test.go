package pyrun

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func allEnvs() map[string]func(testing.TB) *Env {
	return map[string]func(testing.TB) *Env{"numpy1": Numpy1, "numpy2": Numpy2, "reference": Reference}
}

func TestNumpyVersion(t *testing.T) {
	t.Parallel()
	for name, get := range allEnvs() {
		t.Run(name, func(t *testing.T) {
			e := get(t)
			out := strings.TrimSpace(e.Run(t, "import numpy; print(numpy.__version__)"))
			if out != e.NumpyVersion {
				t.Fatalf("script printed %q, detected %q", out, e.NumpyVersion)
			}
			parts := strings.SplitN(out, ".", 3)
			major, _ := strconv.Atoi(parts[0])
			minor, _ := strconv.Atoi(parts[1])
			var ok bool
			switch name {
			case "numpy1":
				ok = major == 1
			case "numpy2":
				ok = major == 2 && minor >= 3 // fromstring's binary mode is gone
			case "reference":
				ok = major == 1 && minor < 24 // mmappickle imports
			}
			if !ok {
				t.Fatalf("%s: numpy %q is not what tox.ini asks for", name, out)
			}
			t.Logf("%s", e)
		})
	}
}

func TestReferenceImportsMmappickle(t *testing.T) {
	t.Parallel()
	e := Reference(t)
	out := e.Run(t, "import mmappickle; print(mmappickle.mmapdict.__name__)")
	if strings.TrimSpace(out) != "mmapdict" {
		t.Fatalf("got %q", out)
	}
}

func TestArgsAndFiles(t *testing.T) {
	t.Parallel()
	e := Numpy1(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	e.Run(t, "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", out, "hello from go")
	got := e.Run(t, "import sys; print(open(sys.argv[1]).read())", out)
	if got != "hello from go\n" {
		t.Fatalf("got %q", got)
	}
}

func TestRunErr(t *testing.T) {
	t.Parallel()
	e := Numpy1(t)
	stdout, stderr, err := e.RunErr("import sys; print('out'); sys.exit('boom')")
	var xe *exec.ExitError
	if !errors.As(err, &xe) || xe.ExitCode() != 1 {
		t.Fatalf("err = %v, want exit status 1", err)
	}
	if stdout != "out\n" || !strings.Contains(stderr, "boom") {
		t.Fatalf("stdout %q stderr %q", stdout, stderr)
	}
}

func TestEnvironmentIsClean(t *testing.T) {
	t.Setenv("PYTHONPATH", "/nonexistent")
	e := Numpy2(t)
	out := e.Run(t, "import os; print(os.environ.get('PYTHONPATH', 'unset'))")
	if strings.TrimSpace(out) != "unset" {
		t.Fatalf("PYTHONPATH leaked into the interpreter: %q", out)
	}
}
