//go:build !linux

package atomicfile

import (
	"errors"
	"os"
	"syscall"
)

func unnamed(dir string, perm os.FileMode) (*os.File, string, bool) { return nil, "", false }

func (f *File) link(replace bool) error { return errors.New("atomicfile: no unnamed files here") }

func processRuns(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return p.Signal(syscall.Signal(0)) == nil
}

func ownedByUs(info os.FileInfo) bool { return true }

func syncDir(dir string) {}
