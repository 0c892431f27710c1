package pyrun

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeout bounds a single Python run.
var Timeout = 5 * time.Minute

// Env is a Python interpreter of one of the environments.
type Env struct {
	Name         string // "numpy1", "numpy2" or "reference"
	NumpyVersion string // numpy.__version__
	Python       string // interpreter path
}

type detection struct {
	once   sync.Once
	env    *Env
	reason string // why env is nil
}

var envs = map[string]*detection{"numpy1": {}, "numpy2": {}, "reference": {}}

// Dir is where the environments are: $MMP_PYENVS, else
// $XDG_CACHE_HOME/mmpbridge/pyenvs or ~/.cache/mmpbridge/pyenvs.
func Dir() string {
	if d := os.Getenv("MMP_PYENVS"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "mmpbridge", "pyenvs")
}

// Numpy1 returns the numpy 1.x environment, or skips the test (fails it
// when CI=true).
func Numpy1(t testing.TB) *Env {
	t.Helper()
	return get(t, "numpy1", "import numpy", func(major int) bool { return major == 1 })
}

// Numpy2 returns the numpy >= 2 environment, or skips (fails under CI).
func Numpy2(t testing.TB) *Env {
	t.Helper()
	return get(t, "numpy2", "import numpy", func(major int) bool { return major >= 2 })
}

// Reference returns the environment where mmappickle itself imports, or
// skips (fails under CI).
func Reference(t testing.TB) *Env {
	t.Helper()
	return get(t, "reference", "import numpy, mmappickle", func(major int) bool { return major == 1 })
}

// Numpys returns the numpy 1.x and the numpy 2.x environments, for tests
// that check a file on both.
func Numpys(t testing.TB) []*Env {
	t.Helper()
	return []*Env{Numpy1(t), Numpy2(t)}
}

func get(t testing.TB, name, imports string, ok func(major int) bool) *Env {
	t.Helper()
	d := envs[name]
	d.once.Do(func() {
		e := &Env{Name: name, Python: filepath.Join(Dir(), name, "bin", "python")}
		if _, err := os.Stat(e.Python); err != nil {
			d.reason = fmt.Sprintf("%s: %v", name, err)
			return
		}
		d.env, d.reason = detect(e, imports, ok)
	})
	if d.env != nil {
		return d.env
	}
	msg := fmt.Sprintf("no Python environment %s: run scripts/setup.sh (%s)", name, d.reason)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// detect fills e.NumpyVersion; it returns e if the version satisfies ok.
func detect(e *Env, imports string, ok func(major int) bool) (*Env, string) {
	out, errOut, err := e.RunErr(imports + "; print(numpy.__version__)")
	if err != nil {
		return nil, fmt.Sprintf("%s: %s: %v: %s", e.Name, imports, err, strings.TrimSpace(errOut))
	}
	v := strings.TrimSpace(out)
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		return nil, fmt.Sprintf("%s: unparsable numpy version %q", e.Name, v)
	}
	if !ok(major) {
		return nil, fmt.Sprintf("%s has numpy %s", e.Name, v)
	}
	e.NumpyVersion = v
	return e, ""
}

// String describes the environment, e.g. "numpy2 (numpy 2.4.6)".
func (e *Env) String() string {
	return fmt.Sprintf("%s (numpy %s)", e.Name, e.NumpyVersion)
}

// Run runs the Python source script with args as sys.argv[1:] and returns
// its stdout. If the script exits non-zero, the test fails with its stderr
// and stdout. Anything the script writes on stderr while succeeding
// (warnings, say) is logged.
func (e *Env) Run(t testing.TB, script string, args ...string) string {
	t.Helper()
	stdout, stderr, err := e.RunErr(script, args...)
	if err != nil {
		t.Fatalf("python (%s) failed: %v\n--- stderr:\n%s\n--- stdout:\n%s", e, err, stderr, stdout)
	}
	if strings.TrimSpace(stderr) != "" {
		t.Logf("python (%s) stderr:\n%s", e, stderr)
	}
	return stdout
}

// RunErr is Run without a testing.TB, for callers that expect the script to
// fail. err is non-nil (an *exec.ExitError for a non-zero exit) when the
// script did not succeed.
func (e *Env) RunErr(script string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := e.CommandContext(ctx, append([]string{"-c", script}, args...)...)
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", Timeout, err)
	}
	return outBuf.String(), errBuf.String(), err
}

// Command returns an *exec.Cmd running the interpreter with args, for tests
// that manage the process themselves (concurrent writers, kills).
func (e *Env) Command(args ...string) *exec.Cmd {
	return e.CommandContext(context.Background(), args...)
}

// CommandContext is Command with a context.
func (e *Env) CommandContext(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.Python, args...)
	cmd.Env = environ()
	return cmd
}

// environ is the current environment minus PYTHON* variables (a pyenv or
// virtualenv setting must not leak into the interpreter).
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHON") {
			env = append(env, kv)
		}
	}
	return append(env, "PYTHONDONTWRITEBYTECODE=1", "PYTHONNOUSERSITE=1")
}
