//go:build linux

package convert

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// freeSpace is the space available to unprivileged writers on the file
// system holding name.
func freeSpace(name string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(name, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}

// release tells the kernel the process is done with these mapped bytes of
// a file, so they stop counting in its resident set (the page cache keeps
// them; a later access faults them in again). The range is widened to
// whole pages, harmless for a shared file mapping.
func release(b []byte) {
	if len(b) == 0 {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	off := int(uintptr(p) % uintptr(unix.Getpagesize()))
	unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, -off)), len(b)+off), unix.MADV_DONTNEED)
}
