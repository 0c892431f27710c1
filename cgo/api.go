package main

// The Go side of libmmp, without cgo: the handle table, the operations and
// the panic guard. exports.go only converts C arguments and results around
// these functions, so the Go tests (api_test.go) exercise everything but the
// C calling convention, which python-tests/ covers through ctypes.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"

	"mmpbridge/internal/fault"

	"mmpbridge/bridge"
)

// table maps handle numbers to open objects (files, reserved slots).
// Numbers start at 1 and are never reused, so a stale handle (closed, or
// never issued) is always an error and never reaches another object.
type table[T any] struct {
	mu    sync.Mutex
	last  int64
	items map[int64]T
	what  string
}

func newTable[T any](what string) *table[T] {
	return &table[T]{items: map[int64]T{}, what: what}
}

var (
	handles = newTable[*bridge.File]("handle")
	slots   = newTable[*bridge.Slot]("slot")
)

// errBadHandle: the handle was never issued or is already closed.
var errBadHandle = errors.New("invalid handle (never opened, or already closed)")

func (t *table[T]) add(v T) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last++
	t.items[t.last] = v
	return t.last
}

func (t *table[T]) get(h int64) (T, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.items[h]
	if !ok {
		return v, fmt.Errorf("%s %d: %w", t.what, h, errBadHandle)
	}
	return v, nil
}

// remove takes h out of the table: exactly one of several concurrent
// closes of the same handle gets the object.
func (t *table[T]) remove(h int64) (T, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.items[h]
	if !ok {
		return v, fmt.Errorf("%s %d: %w", t.what, h, errBadHandle)
	}
	delete(t.items, h)
	return v, nil
}

func (t *table[T]) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.items)
}

// errFault: a memory fault on a mapping libmmp handed out or reads.
var errFault = errors.New("memory fault on a mapping (the file shrank, or a read-only array was written)")

// guard runs fn and turns a panic, or a memory fault while reading the
// mapping (a file truncated under us gives SIGBUS), into an error: no Go
// panic may unwind into C.
func guard(fn func() error) (err error) {
	defer fault.Guard(&err, "libmmp", errFault)()
	return fn()
}

// openFile opens path read-only or read-write and returns a new handle.
func openFile(path string, writable bool) (int64, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := bridge.OpenFile(path, flag, 0, interruptible)
	if err != nil {
		return 0, err
	}
	return handles.add(f), nil
}

// Flags of openEx (mmp_open_ex).
const (
	openWritable  = 1 // read-write (arrays writable through the mapping)
	openCreate    = 2 // create the file if it does not exist (with openWritable)
	openAllowTorn = 4 // open a torn file, for mmp_fsck
)

// openOptions are the fields of mmp_open_ex's options JSON.
type openOptions struct {
	Profile string `json:"profile"`
	Align   *int   `json:"align"`
}

// openEx opens path, or the descriptor fd when fd >= 0 (duplicated: the
// caller keeps its own; path is then only the name in messages), with
// flags and options ("" or an object of profile and align).
func openEx(path string, fd int, flags int, options string) (int64, error) {
	if flags&^(openWritable|openCreate|openAllowTorn) != 0 {
		return 0, fmt.Errorf("flags %#x: want a combination of 1 (writable), 2 (create), 4 (allow torn)", flags)
	}
	var o openOptions
	if err := decodeOptions(options, &o, "profile, align"); err != nil {
		return 0, err
	}
	opts := []bridge.Option{interruptible}
	if o.Profile != "" {
		p, err := bridge.ParseProfile(o.Profile)
		if err != nil {
			return 0, fmt.Errorf("options: %w", err)
		}
		opts = append(opts, bridge.WithProfile(p))
	}
	if o.Align != nil {
		opts = append(opts, bridge.WithAlign(*o.Align))
	}
	if flags&openAllowTorn != 0 {
		opts = append(opts, bridge.AllowTorn())
	}
	writable := flags&openWritable != 0
	var f *bridge.File
	var err error
	if fd >= 0 {
		if path == "" {
			path = fmt.Sprintf("<file descriptor %d>", fd)
		}
		var of *os.File
		if of, err = reopenFD(fd, writable, path); err != nil {
			return 0, err
		}
		if f, err = bridge.NewFile(of, writable, opts...); err != nil {
			of.Close()
		}
	} else {
		flag := os.O_RDONLY
		if writable {
			flag = os.O_RDWR
			if flags&openCreate != 0 {
				flag |= os.O_CREATE
			}
		}
		f, err = bridge.OpenFile(path, flag, 0o644, opts...)
	}
	if err != nil {
		return 0, err
	}
	return handles.add(f), nil
}

// reopenFD opens the file behind descriptor fd anew (through /proc/self/fd,
// so that the caller's file offset is never moved), or duplicates fd where
// there is no /proc.
func reopenFD(fd int, writable bool, name string) (*os.File, error) {
	flag := syscall.O_RDONLY | syscall.O_CLOEXEC
	if writable {
		flag = syscall.O_RDWR | syscall.O_CLOEXEC
	}
	if d, err := syscall.Open(fmt.Sprintf("/proc/self/fd/%d", fd), flag, 0); err == nil {
		return os.NewFile(uintptr(d), name), nil
	}
	d, err := syscall.Dup(fd)
	if err != nil {
		return nil, fmt.Errorf("descriptor %d: %w", fd, err)
	}
	return os.NewFile(uintptr(d), name), nil
}

// decodeOptions decodes an options JSON object ("" or "null": none) into
// v, refusing unknown fields.
func decodeOptions(s string, v any, known string) error {
	if s == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("options JSON: %w (known options: %s)", err, known)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("options JSON: trailing data after the object")
	}
	return nil
}

// Error codes of mmp_last_error_code: what kind of failure the last error
// of the thread was, for bindings to raise the right exception.
const (
	codeNone        = 0
	codeOther       = 1  // I/O and everything else
	codeNoFile      = 2  // the file does not exist
	codeNoKey       = 3  // no such key
	codeNotMmpkl    = 4  // not an mmappickle file (bad header)
	codeTorn        = 5  // torn by an interrupted write: fsck
	codeReadOnly    = 6  // a write through a read-only handle
	codeInvalid     = 7  // a bad argument or option
	codeNotPlain    = 8  // the value is not plain data (trusted loads it)
	codeUnsupported = 9  // valid, but the bridge cannot store or read it
	codeLimit       = 10 // over a limit
	codeFormat      = 11 // malformed file
	codeNotArray    = 12 // the key holds no (such) array
	codeBadHandle   = 13 // a handle never issued, or closed
	codeInterrupted = 14 // cancelled with mmp_cancel
)

// errCode classifies err for mmp_last_error_code.
func errCode(err error) int {
	var fe *bridge.FormatError
	switch {
	case err == nil:
		return codeNone
	case errors.Is(err, errInterrupted):
		return codeInterrupted
	case errors.Is(err, errBadHandle):
		return codeBadHandle
	case errors.Is(err, fs.ErrNotExist):
		return codeNoFile
	case errors.Is(err, bridge.ErrKeyNotFound):
		return codeNoKey
	case errors.Is(err, bridge.ErrNotMmappickle):
		return codeNotMmpkl
	case errors.Is(err, bridge.ErrTorn):
		return codeTorn
	case errors.Is(err, bridge.ErrReadOnly):
		return codeReadOnly
	case errors.Is(err, bridge.ErrInvalidOption), errors.Is(err, errInvalidArg):
		return codeInvalid
	case errors.Is(err, bridge.ErrNotPlain):
		return codeNotPlain
	case errors.Is(err, bridge.ErrUnsupported):
		return codeUnsupported
	case errors.Is(err, bridge.ErrLimit):
		return codeLimit
	case errors.Is(err, bridge.ErrNotArray):
		return codeNotArray
	case errors.As(err, &fe):
		return codeFormat
	}
	return codeOther
}

// errInvalidArg marks errors of the caller's arguments.
var errInvalidArg = errors.New("invalid argument")

// closeFile closes the handle's file; the handle is invalid afterwards even
// if closing reported an error.
func closeFile(h int64) error {
	f, err := handles.remove(h)
	if err != nil {
		return err
	}
	return f.Close()
}

func errNilArg(name string) error {
	return fmt.Errorf("%s: NULL pointer: %w", name, errInvalidArg)
}
