//go:build unix

package main

import (
	"bytes"
	"syscall"
)

// sigintPending tells whether the socket fd holds the byte of SIGINT
// among the signal numbers Python's signal module wrote to it
// (signal.set_wakeup_fd), without taking them: the binding reads them
// after the call.
func sigintPending(fd int) bool {
	var buf [256]byte
	n, _, err := syscall.Recvfrom(fd, buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == nil && n > 0 && bytes.IndexByte(buf[:n], byte(syscall.SIGINT)) >= 0
}
