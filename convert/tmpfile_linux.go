//go:build linux

package convert

import (
	"os"

	"golang.org/x/sys/unix"
)

// scratchFile returns an unnamed temporary file in dir (O_TMPFILE): it never
// has a name, so no kill can leave it behind. File systems without
// O_TMPFILE get a named file removed at once.
func scratchFile(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o600)
	if err == nil {
		return f, nil
	}
	return namedScratchFile(dir)
}

// freeSpace is the space available to unprivileged writers on the file
// system holding name.
func freeSpace(name string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(name, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}
