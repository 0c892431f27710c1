package atomicfile

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File is a file being written that becomes Dst on Commit.
type File struct {
	*os.File
	dst   string
	path  string // what Path returns
	named string // the hidden temporary name, "" for an unnamed file
	done  bool
}

// Create starts a new file that will become dst, in dst's directory (so
// that linking or renaming it into place is atomic), with mode perm (less
// the umask).
func Create(dst string, perm os.FileMode) (*File, error) {
	if f, path, ok := unnamed(filepath.Dir(dst), perm); ok {
		return &File{File: f, dst: dst, path: path}, nil
	}
	return CreateNamed(dst, perm)
}

// CreateNamed is Create for writers that need a real name while they write
// (libhdf5 resolves the path it is given): the file is hidden beside dst
// as ".NAME.tmp-PID-RANDOM" until Commit. A kill leaves it; the next
// Create or CreateNamed in that directory removes it (see Sweep).
func CreateNamed(dst string, perm os.FileMode) (*File, error) {
	dir := filepath.Dir(dst)
	Sweep(dir)
	for range 100 {
		name := filepath.Join(dir, fmt.Sprintf(".%s.tmp-%d-%08x", filepath.Base(dst), os.Getpid(), rand.Uint32()))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &File{File: f, dst: dst, path: name, named: name}, nil
	}
	return nil, fmt.Errorf("%s: cannot make a temporary file beside it", dst)
}

// Path is a name by which the file can be opened again while it is written
// (by code that takes a path). It is not the user's name for the file:
// errors should name Dst instead (see Rename).
func (f *File) Path() string { return f.path }

// Dst is the name the file gets on Commit.
func (f *File) Dst() string { return f.dst }

// Commit syncs the file to disk and gives it its name. Unless replace, an
// existing destination (even one that appeared meanwhile) is left as it is
// and the error wraps os.ErrExist. The File stays open, now as Dst.
func (f *File) Commit(replace bool) error {
	if f.done {
		return errors.New("atomicfile: committed twice")
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if f.named == "" {
		if err := f.link(replace); err != nil {
			return err
		}
	} else {
		if !replace {
			// A hard link fails where the name exists; rename would not.
			if err := os.Link(f.named, f.dst); err != nil {
				return err
			}
			os.Remove(f.named)
		} else if err := os.Rename(f.named, f.dst); err != nil {
			return err
		}
		f.named = ""
	}
	f.done = true
	syncDir(filepath.Dir(f.dst))
	return nil
}

// Close closes the file; one not committed is gone.
func (f *File) Close() error {
	err := f.File.Close()
	if f.named != "" {
		os.Remove(f.named)
		f.named = ""
	}
	return err
}

// Rename returns err with the temporary path replaced by the destination's
// name, for messages: users know their file, not ours.
func (f *File) Rename(err error) error {
	if err == nil || !strings.Contains(err.Error(), f.path) {
		return err
	}
	return &renamed{err: err, from: f.path, to: f.dst}
}

type renamed struct {
	err      error
	from, to string
}

func (r *renamed) Error() string { return strings.ReplaceAll(r.err.Error(), r.from, r.to) }
func (r *renamed) Unwrap() error { return r.err }

// Sweep removes, in dir, the hidden temporary files of this package left by
// processes that no longer run (killed before they could clean up), and
// returns their names. A file is left alone while its process runs, and for
// a minute after its last write (a process in another PID namespace may
// still be writing it).
func Sweep(dir string) []string {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range es {
		pid, ok := leftoverPID(e.Name())
		if !ok || e.IsDir() || processRuns(pid) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < time.Minute || !ownedByUs(info) {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

// leftoverPID parses ".NAME.tmp-PID-XXXXXXXX".
func leftoverPID(name string) (int, bool) {
	i := strings.LastIndex(name, ".tmp-")
	if !strings.HasPrefix(name, ".") || i < 1 {
		return 0, false
	}
	rest := name[i+len(".tmp-"):]
	pidS, rnd, ok := strings.Cut(rest, "-")
	if !ok || len(rnd) != 8 || strings.Trim(rnd, "0123456789abcdef") != "" {
		return 0, false
	}
	pid, err := strconv.Atoi(pidS)
	return pid, err == nil && pid > 0
}

// Scratch returns a temporary file in dir that never has a name (or, where
// unnamed files are not available, whose name is removed at once).
func Scratch(dir string) (*os.File, error) {
	if f, _, ok := unnamed(dir, 0o600); ok {
		return f, nil
	}
	f, err := os.CreateTemp(dir, ".mmpconv-scratch-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}
