//go:build linux

package atomicfile

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// unnamed opens an unnamed file in dir (O_TMPFILE) and a /proc path that
// reopens it; ok is false where either is unavailable.
func unnamed(dir string, perm os.FileMode) (*os.File, string, bool) {
	fd, err := unix.Open(dir, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, "", false
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)"))
	path := fmt.Sprintf("/proc/self/fd/%d", fd)
	if _, err := os.Stat(path); err != nil {
		f.Close()
		return nil, "", false
	}
	return f, path, true
}

// link gives the unnamed file its name.
func (f *File) link(replace bool) error {
	if !replace {
		return linkProc(f.path, f.dst)
	}
	// Linked under a hidden name, then renamed over the destination: a
	// kill in between leaves the hidden name, which Sweep removes.
	for range 100 {
		tmp := filepath.Join(filepath.Dir(f.dst), fmt.Sprintf(".%s.tmp-%d-%08x", filepath.Base(f.dst), os.Getpid(), rand.Uint32()))
		err := linkProc(f.path, tmp)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.Rename(tmp, f.dst); err != nil {
			os.Remove(tmp)
			return err
		}
		return nil
	}
	return fmt.Errorf("%s: cannot link the new file into place", f.dst)
}

func linkProc(path, name string) error {
	err := unix.Linkat(unix.AT_FDCWD, path, unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return &os.LinkError{Op: "link", Old: path, New: name, Err: err}
	}
	return nil
}

func processRuns(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

func ownedByUs(info os.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return !ok || int(st.Uid) == os.Getuid()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
