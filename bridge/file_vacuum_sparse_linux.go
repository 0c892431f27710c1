//go:build linux

package bridge

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// forEachData calls fn, in order, for each range of [off, end) of f that may
// hold data: the file system's holes are left out (SEEK_DATA, SEEK_HOLE).
// Where the file system cannot tell, the whole range is data. f's file
// position is restored (a descriptor handed in by Python shares it).
func forEachData(f *os.File, off, end int64, fn func(off, end int64) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fn(off, end)
	}
	var ferr error
	cerr := rc.Control(func(sfd uintptr) {
		fd := int(sfd)
		cur, err := unix.Seek(fd, 0, io.SeekCurrent)
		if err != nil {
			ferr = fn(off, end)
			return
		}
		defer unix.Seek(fd, cur, io.SeekStart)
		for pos := off; pos < end; {
			d, err := unix.Seek(fd, pos, unix.SEEK_DATA)
			switch {
			case errors.Is(err, unix.ENXIO):
				return // only a hole from pos to the end of the file
			case err != nil:
				ferr = fn(pos, end) // holes unknown here: all data
				return
			case d >= end:
				return
			}
			d = max(d, pos)
			h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
			if err != nil || h > end || h <= d {
				h = end
			}
			if ferr = fn(d, h); ferr != nil {
				return
			}
			pos = h
		}
	})
	if cerr != nil && ferr == nil {
		return fn(off, end)
	}
	return ferr
}

// punchHole makes [off, off+n) of f a hole (reading as zeros); false when
// the file system cannot.
func punchHole(f *os.File, off, n int64) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		ok = unix.Fallocate(int(fd), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n) == nil
	})
	return ok
}

// copyFileRange moves n bytes of src at srcOff to dst at dstOff in the
// kernel (copy_file_range) and returns how many it moved; the caller copies
// the rest itself.
func copyFileRange(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) int64 {
	sc, err := src.SyscallConn()
	if err != nil {
		return 0
	}
	dc, err := dst.SyscallConn()
	if err != nil {
		return 0
	}
	var done int64
	sc.Control(func(sfd uintptr) {
		dc.Control(func(dfd uintptr) {
			roff, woff := srcOff, dstOff
			for done < n {
				c, err := unix.CopyFileRange(int(sfd), &roff, int(dfd), &woff, int(min(n-done, 1<<30)), 0)
				if err != nil || c <= 0 {
					return
				}
				done += int64(c)
			}
		})
	})
	return done
}
