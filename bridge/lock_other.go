//go:build !unix

package bridge

import "os"

// Without flock, processes cannot share a file safely; a single process can.
func flock(f *os.File, how int) error { return nil }

const (
	lockShared    = 1
	lockExclusive = 2
	lockRelease   = 8
)
