package main

// Conversion of a plain pickled dict into an mmappickle file, by the
// machine alone: no Python unpickler runs on the user's bytes.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"mmpbridge/bridge"
	"mmpbridge/internal/atomicfile"
)

// maxPlainPickle bounds the plain pickle read into memory (pickle.load
// holds all of it in memory too).
const maxPlainPickle = 16 << 30

// convertPlain reads the plain pickle of a dict at path (or behind the
// descriptor fd when fd >= 0, from its byte 0, without moving its offset;
// path then only names it) once, proves it plain data and writes its
// items as a new mmappickle file dst (options as mmp_open_ex's), whole or
// not at all: dst is replaced only once complete. dst may be path itself.
func convertPlain(path string, fd int, dst string, options string) error {
	opts, err := plainOptions(options)
	if err != nil {
		return err
	}
	var f *os.File
	if fd >= 0 {
		if path == "" {
			path = fmt.Sprintf("<file descriptor %d>", fd)
		}
		if f, err = reopenFD(fd, false, path); err != nil {
			return err
		}
	} else if f, err = os.Open(path); err != nil {
		return err
	}
	b, perm, err := readPlain(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	d, err := bridge.DecodePlainDict(b, opts...)
	if err != nil {
		return fmt.Errorf("%s: not an mmappickle file, and as a plain pickle it cannot be converted: %w", path, err)
	}
	if fd < 0 && dst == path {
		// Converted in place: a symbolic link stays one, its target
		// rewritten (as Vacuum does).
		if target, err := filepath.EvalSymlinks(path); err == nil {
			dst = target
		}
	}
	out, err := atomicfile.Create(dst, perm)
	if err != nil {
		return err
	}
	defer out.Close()
	out.Chmod(perm) // the umask does not apply: the file keeps its mode
	mf, err := bridge.OpenFile(out.Path(), os.O_RDWR, 0, opts...)
	if err != nil {
		return out.Rename(err)
	}
	if err := mf.PutPlainDict(d); err != nil {
		mf.Close()
		return fmt.Errorf("%s: converting: %w", path, out.Rename(err))
	}
	if err := mf.Close(); err != nil {
		return out.Rename(err)
	}
	return out.Commit(true)
}

// readPlain reads the whole of f once, and its permissions.
func readPlain(f *os.File) ([]byte, os.FileMode, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("not a regular file")
	}
	size := st.Size()
	if size > maxPlainPickle {
		return nil, 0, fmt.Errorf("a plain pickle of %d bytes: more than the %d this package converts: %w", size, int64(maxPlainPickle), bridge.ErrLimit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), b); err != nil {
		return nil, 0, fmt.Errorf("reading %d bytes: %w", size, err)
	}
	return b, st.Mode().Perm(), nil
}

// plainOptions are the bridge options of an options JSON (profile, align).
func plainOptions(options string) ([]bridge.Option, error) {
	var o openOptions
	if err := decodeOptions(options, &o, "profile, align"); err != nil {
		return nil, err
	}
	opts := []bridge.Option{interruptible}
	if o.Profile != "" {
		p, err := bridge.ParseProfile(o.Profile)
		if err != nil {
			return nil, fmt.Errorf("options: %w: %w", err, errInvalidArg)
		}
		opts = append(opts, bridge.WithProfile(p))
	}
	if o.Align != nil {
		opts = append(opts, bridge.WithAlign(*o.Align))
	}
	return opts, nil
}
