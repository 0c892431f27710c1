package main

// Descriptions of arrays with the descriptor of the file they lie in, for
// a binding that maps them itself.

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// entryMap is entryInfo, with for an array or a masked array a new
// descriptor (close-on-exec; the caller closes it) of the very file the
// description is of: a binding maps the array through it, never through
// the file's name, which another process's vacuum may have given to
// another file meanwhile. For any other value fd is -1.
//
// The description and the descriptor come from two reads of the handle;
// they are of one file when a descriptor taken before the description and
// one taken after are of the same file (only the handle's own vacuum moves
// it to another file, never back), else it tries again.
func entryMap(h int64, key string) (info []byte, fd int, err error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, -1, err
	}
	for range 8 {
		before, err := f.Dup()
		if err != nil {
			return nil, -1, err
		}
		info, err := entryInfoOf(f, f.Name(), key)
		if err != nil || bytes.Equal(info, valueInfo) {
			before.Close()
			return info, -1, err
		}
		after, err := f.Dup()
		if err != nil {
			before.Close()
			return nil, -1, err
		}
		same, err := sameFile(before, after)
		after.Close()
		if err != nil {
			before.Close()
			return nil, -1, err
		}
		if same {
			fd, err := unix.FcntlInt(before.Fd(), unix.F_DUPFD_CLOEXEC, 0)
			before.Close()
			if err != nil {
				return nil, -1, fmt.Errorf("%s: dup: %w", f.Name(), err)
			}
			return info, fd, nil
		}
		before.Close()
	}
	return nil, -1, fmt.Errorf("%s: key %q: the file was replaced again and again while it was read", f.Name(), key)
}

func sameFile(a, b *os.File) (bool, error) {
	sa, err := a.Stat()
	if err != nil {
		return false, err
	}
	sb, err := b.Stat()
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
