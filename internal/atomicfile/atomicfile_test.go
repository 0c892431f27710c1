package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestCreateCommit(t *testing.T) {
	t.Parallel()
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprint("named=", named), func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "out.bin")
			create := Create
			if named {
				create = CreateNamed
			}
			f, err := create(dst, 0o640)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("data"); err != nil {
				t.Fatal(err)
			}
			// Reopened by path, as writers that take a name do.
			g, err := os.OpenFile(f.Path(), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			g.WriteAt([]byte("DA"), 0)
			g.Close()
			got := names(t, dir)
			if !named && runtime.GOOS == "linux" && len(got) != 0 {
				t.Errorf("an unnamed file shows in its directory: %v", got)
			}
			if named && (len(got) != 1 || !strings.HasPrefix(got[0], ".out.bin.tmp-")) {
				t.Errorf("named file: directory holds %v", got)
			}
			if err := f.Commit(false); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if b, _ := os.ReadFile(dst); string(b) != "DAta" {
				t.Errorf("committed file holds %q", b)
			}
			if got := names(t, dir); len(got) != 1 {
				t.Errorf("after commit the directory holds %v", got)
			}
			// Not replacing: an existing destination stays.
			f, _ = create(dst, 0o640)
			f.WriteString("new")
			if err := f.Commit(false); !errors.Is(err, os.ErrExist) {
				t.Errorf("commit over an existing file: %v", err)
			}
			f.Close()
			if b, _ := os.ReadFile(dst); string(b) != "DAta" {
				t.Errorf("refused commit changed the file: %q", b)
			}
			// Replacing.
			f, _ = create(dst, 0o640)
			f.WriteString("new")
			if err := f.Commit(true); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if b, _ := os.ReadFile(dst); string(b) != "new" {
				t.Errorf("replaced file holds %q", b)
			}
			if got := names(t, dir); len(got) != 1 {
				t.Errorf("after replacing, the directory holds %v", got)
			}
			// Abandoned: nothing remains.
			f, _ = create(filepath.Join(dir, "gone"), 0o640)
			f.WriteString("x")
			f.Close()
			if got := names(t, dir); len(got) != 1 {
				t.Errorf("an abandoned file left %v", got)
			}
		})
	}
}

func TestRename(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "out"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	base := &os.PathError{Op: "write", Path: f.Path(), Err: os.ErrInvalid}
	err = f.Rename(fmt.Errorf("converting: %w", base))
	if want := "converting: write " + filepath.Join(dir, "out") + ": invalid argument"; err.Error() != want {
		t.Errorf("%q, want %q", err, want)
	}
	if !errors.Is(err, os.ErrInvalid) {
		t.Error("the renamed error lost its cause")
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A process that has exited.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	dead := cmd.Process.Pid
	old := time.Now().Add(-2 * time.Minute)
	mk := func(name string, mtime time.Time) {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("x"), 0o600)
		os.Chtimes(p, mtime, mtime)
	}
	mk(fmt.Sprintf(".a.h5.tmp-%d-0badcafe", dead), old)        // removed
	mk(fmt.Sprintf(".b.h5.tmp-%d-0badcafe", dead), time.Now()) // recent: kept
	mk(fmt.Sprintf(".c.h5.tmp-%d-0badcafe", os.Getpid()), old) // its process runs: kept
	mk(fmt.Sprintf(".d.h5.tmp-%d-nothex!!", dead), old)        // not ours: kept
	mk(fmt.Sprintf("e.h5.tmp-%d-0badcafe", dead), old)         // not hidden: kept
	mk(fmt.Sprintf(".f.h5.tmp-%d", dead), old)                 // not ours: kept
	got := Sweep(dir)
	if want := fmt.Sprintf(".a.h5.tmp-%d-0badcafe", dead); len(got) != 1 || got[0] != want {
		t.Errorf("Sweep removed %v, want [%s]", got, want)
	}
	if n := len(names(t, dir)); n != 5 {
		t.Errorf("%d files left, want 5", n)
	}
}
