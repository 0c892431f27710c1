//go:build linux

package convert

import "golang.org/x/sys/unix"

// freeSpace is the space available to unprivileged writers on the file
// system holding name.
func freeSpace(name string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(name, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}
