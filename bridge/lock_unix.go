//go:build unix

package bridge

import (
	"os"
	"syscall"
)

// flock takes (or, with how == syscall.LOCK_UN, releases) the advisory lock
// mmappickle takes around every dictionary operation.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

const (
	lockShared    = syscall.LOCK_SH
	lockExclusive = syscall.LOCK_EX
	lockRelease   = syscall.LOCK_UN
)
