//go:build !unix

package main

// sigintPending: no signal sockets here (mmp_signal_token's calls are
// cancelled only by mmp_cancel).
func sigintPending(fd int) bool { return false }
