// Package pyrun lets Go tests run Python code, with numpy 1.x or numpy 2.x,
// against files the tests wrote.
//
// Two environments are known:
//
//   - Numpy1: Debian's /usr/bin/python3 with python3-numpy (1.24 on bookworm).
//   - Numpy2: a Debian sid root made by scripts/setup.sh at $MMP_NUMPY2_ROOT
//     (default /var/cache/mmpbridge/sid-numpy2), entered with chroot (needs root).
//
// When an environment is missing the test is skipped, except when CI=true:
// then it fails, so that CI never silently skips the Python checks.
// Run scripts/setup.sh to create both environments.
package pyrun

import (
	"bytes"
	"context"
	"errors"
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

// DefaultNumpy2Root is where scripts/setup.sh builds the numpy-2 root when
// MMP_NUMPY2_ROOT is not set.
const DefaultNumpy2Root = "/var/cache/mmpbridge/sid-numpy2"

// systemPython is Debian's interpreter, the one that sees python3-numpy
// (not whatever python3 comes first on PATH, e.g. a pyenv shim).
const systemPython = "/usr/bin/python3"

// Timeout bounds a single Python run.
var Timeout = 5 * time.Minute

// Env is a Python interpreter with numpy.
type Env struct {
	Name         string // "numpy1" or "numpy2"
	NumpyVersion string // numpy.__version__
	Python       string // interpreter path (inside Root when Root is set)
	Root         string // chroot directory, "" to run on the host
}

type detection struct {
	once   sync.Once
	env    *Env
	reason string // why env is nil
}

var numpy1, numpy2 detection

// Numpy1 returns Debian's /usr/bin/python3 if it imports numpy 1.x.
// Otherwise it skips the test, or fails it when CI=true.
func Numpy1(t testing.TB) *Env {
	t.Helper()
	numpy1.once.Do(func() {
		e := &Env{Name: "numpy1", Python: systemPython}
		numpy1.env, numpy1.reason = detect(e, func(major int) bool { return major < 2 })
	})
	return require(t, &numpy1, "no Python with numpy 1.x")
}

// Numpy2 returns the Debian sid chroot at $MMP_NUMPY2_ROOT (default
// DefaultNumpy2Root) if its /usr/bin/python3 imports numpy >= 2.
// Otherwise it skips the test, or fails it when CI=true.
func Numpy2(t testing.TB) *Env {
	t.Helper()
	numpy2.once.Do(func() {
		root := os.Getenv("MMP_NUMPY2_ROOT")
		if root == "" {
			root = DefaultNumpy2Root
		}
		if _, err := os.Stat(filepath.Join(root, "usr/bin/python3")); err != nil {
			numpy2.reason = fmt.Sprintf("%s has no usr/bin/python3", root)
			return
		}
		e := &Env{Name: "numpy2", Python: systemPython, Root: root}
		numpy2.env, numpy2.reason = detect(e, func(major int) bool { return major >= 2 })
	})
	return require(t, &numpy2, "no Python with numpy 2.x")
}

func require(t testing.TB, d *detection, what string) *Env {
	t.Helper()
	if d.env != nil {
		return d.env
	}
	msg := fmt.Sprintf("%s: run scripts/setup.sh (%s)", what, d.reason)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// detect fills e.NumpyVersion; it returns e if the version satisfies ok.
func detect(e *Env, ok func(major int) bool) (*Env, string) {
	out, errOut, err := e.RunErr("import numpy; print(numpy.__version__)")
	if err != nil {
		return nil, fmt.Sprintf("%s cannot import numpy: %v: %s", e.describe(), err, strings.TrimSpace(errOut))
	}
	v := strings.TrimSpace(out)
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		return nil, fmt.Sprintf("%s: unparsable numpy version %q", e.describe(), v)
	}
	if !ok(major) {
		return nil, fmt.Sprintf("%s has numpy %s", e.describe(), v)
	}
	e.NumpyVersion = v
	return e, ""
}

func (e *Env) describe() string {
	if e.Root != "" {
		return fmt.Sprintf("chroot %s %s", e.Root, e.Python)
	}
	return e.Python
}

// String describes the environment, e.g. "numpy2 (numpy 2.4.6)".
func (e *Env) String() string {
	return fmt.Sprintf("%s (numpy %s)", e.Name, e.NumpyVersion)
}

// Run runs the Python source script with files as sys.argv[1:] (paths valid
// for the interpreter) and returns its stdout. If the script exits non-zero,
// the test fails with its stderr and stdout. Anything the script writes on
// stderr while succeeding (warnings, say) is logged.
//
// For the chroot environment the files are copied into a temporary directory
// under ROOT/tmp; a path that does not exist yet is passed as an output path.
// Files the script created or changed there are copied back afterwards, so a
// script can write files for the test in both environments.
func (e *Env) Run(t testing.TB, script string, files ...string) string {
	t.Helper()
	stdout, stderr, err := e.RunErr(script, files...)
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
func (e *Env) RunErr(script string, files ...string) (stdout, stderr string, err error) {
	args := files
	var copyBack func() error
	if e.Root != "" {
		dir, err := os.MkdirTemp(filepath.Join(e.Root, "tmp"), "pyrun-")
		if err != nil {
			return "", "", err
		}
		defer os.RemoveAll(dir)
		args, copyBack, err = stage(e.Root, dir, files)
		if err != nil {
			return "", "", err
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	argv := append([]string{e.Python, "-c", script}, args...)
	var cmd *exec.Cmd
	if e.Root != "" {
		cmd = exec.CommandContext(ctx, "chroot", append([]string{e.Root}, argv...)...)
		cmd.Env = []string{
			"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
			"HOME=/root",
			"LANG=C.UTF-8",
			"TMPDIR=/tmp",
			"PYTHONDONTWRITEBYTECODE=1",
		}
	} else {
		cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = hostEnv()
	}
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", Timeout, err)
	}
	if err == nil && copyBack != nil {
		err = copyBack()
	}
	return outBuf.String(), errBuf.String(), err
}

// hostEnv is the current environment minus PYTHON* variables (a pyenv or
// virtualenv setting must not leak into Debian's interpreter).
func hostEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHON") {
			env = append(env, kv)
		}
	}
	return append(env, "PYTHONDONTWRITEBYTECODE=1", "PYTHONNOUSERSITE=1")
}

// stage copies files into dir (which lies under root) and returns their
// paths as seen inside the chroot, plus a function that copies files the
// script created or changed back to their original paths.
func stage(root, dir string, files []string) ([]string, func() error, error) {
	inside := make([]string, len(files))
	staged := make([]string, len(files))
	before := make([][]byte, len(files))
	existed := make([]bool, len(files))
	for i, f := range files {
		sub := filepath.Join(dir, strconv.Itoa(i)) // keeps equal base names apart
		if err := os.Mkdir(sub, 0o755); err != nil {
			return nil, nil, err
		}
		staged[i] = filepath.Join(sub, filepath.Base(f))
		rel, err := filepath.Rel(root, staged[i])
		if err != nil {
			return nil, nil, err
		}
		inside[i] = "/" + filepath.ToSlash(rel)
		data, err := os.ReadFile(f)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return nil, nil, err
		}
		if err := os.WriteFile(staged[i], data, 0o644); err != nil {
			return nil, nil, err
		}
		before[i], existed[i] = data, true
	}
	copyBack := func() error {
		for i, f := range files {
			data, err := os.ReadFile(staged[i])
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if existed[i] && bytes.Equal(data, before[i]) {
				continue
			}
			if err := os.WriteFile(f, data, 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	return inside, copyBack, nil
}
