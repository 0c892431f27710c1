package main

// The Go side of libmmp, without cgo: the handle table, the operations and
// the panic guard. exports.go only converts C arguments and results around
// these functions, so the Go tests (api_test.go) exercise everything but the
// C calling convention, which python-tests/ covers through ctypes.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"

	"mmpbridge/bridge"
	"mmpbridge/convert"
	"mmpbridge/internal/render"
)

// handles maps handle numbers to open files. Numbers start at 1 and are
// never reused, so a stale handle (closed, or never issued) is always an
// error and never reaches another file.
type handleTable struct {
	mu    sync.Mutex
	last  int64
	files map[int64]*bridge.File
}

var handles = handleTable{files: map[int64]*bridge.File{}}

// errBadHandle: the handle was never issued or is already closed.
var errBadHandle = errors.New("invalid handle (never opened, or already closed)")

func (t *handleTable) add(f *bridge.File) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last++
	t.files[t.last] = f
	return t.last
}

func (t *handleTable) get(h int64) (*bridge.File, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.files[h]
	if !ok {
		return nil, fmt.Errorf("handle %d: %w", h, errBadHandle)
	}
	return f, nil
}

// remove takes h out of the table: exactly one of several concurrent
// closes of the same handle gets the file.
func (t *handleTable) remove(h int64) (*bridge.File, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.files[h]
	if !ok {
		return nil, fmt.Errorf("handle %d: %w", h, errBadHandle)
	}
	delete(t.files, h)
	return f, nil
}

func (t *handleTable) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.files)
}

// guard runs fn and turns a panic, or a memory fault while reading the
// mapping (a file truncated under us gives SIGBUS), into an error: no Go
// panic may unwind into C.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error (recovered Go panic): %v", r)
		}
	}()
	return fn()
}

// openFile opens path read-only or read-write and returns a new handle.
func openFile(path string, writable bool) (int64, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := bridge.OpenFile(path, flag, 0)
	if err != nil {
		return 0, err
	}
	return handles.add(f), nil
}

// closeFile closes the handle's file; the handle is invalid afterwards even
// if closing reported an error.
func closeFile(h int64) error {
	f, err := handles.remove(h)
	if err != nil {
		return err
	}
	return f.Close()
}

// keysJSON returns the live keys in file order as a JSON list.
func keysJSON(h int64) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	keys, err := f.Keys()
	if err != nil {
		return nil, err
	}
	if keys == nil {
		keys = []string{}
	}
	return render.Marshal(keys)
}

// entryJSON returns the description of key, byte for byte what
// `mmpconv inspect --json` prints for it.
func entryJSON(h int64, key string) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	v, err := f.Get(key)
	if err != nil {
		return nil, err
	}
	d, err := render.Describe(context.Background(), v, false)
	if err != nil {
		return nil, fmt.Errorf("%s: key %q: %w", f.Name(), key, err)
	}
	return d, nil
}

// arrayData returns the bytes of the array under key: a view of the file's
// mapping, valid until the handle is closed.
func arrayData(h int64, key string) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	if k, err := f.KindOf(key); err == nil && k == bridge.KindMasked {
		return nil, fmt.Errorf("%s: key %q is a masked array: use mmp_masked_data (which 0: data, 1: mask)", f.Name(), key)
	}
	a, err := f.Array(key)
	if err != nil {
		return nil, err
	}
	return mapped(f, key, a)
}

// maskedData returns the data (which 0) or mask (which 1) bytes of the
// masked array under key, as arrayData does.
func maskedData(h int64, key string, which int) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	if which != 0 && which != 1 {
		return nil, fmt.Errorf("which %d: want 0 (data) or 1 (mask)", which)
	}
	m, err := f.Masked(key)
	if err != nil {
		return nil, err
	}
	if which == 0 {
		return mapped(f, key, m.Data)
	}
	return mapped(f, key, m.Mask)
}

func mapped(f *bridge.File, key string, a *bridge.Array) ([]byte, error) {
	b := a.Bytes()
	if b == nil {
		return nil, fmt.Errorf("%s: key %q: the file is not memory-mapped (too large for this platform's address space?)", f.Name(), key)
	}
	return b, nil
}

// Statuses of convertFile, as mmpconv's exit status.
const (
	convertOK    = 0
	convertInput = 1 // a problem with an input
	convertUsage = 2 // bad options
)

// convertOptions are the fields of mmp_convert's options JSON, named as
// mmpconv convert's flags (dashes as underscores).
type convertOptions struct {
	Profile         string `json:"profile"`
	Align           *int   `json:"align"`
	Force           bool   `json:"force"`
	Key             string `json:"key"`
	Compress        bool   `json:"compress"`
	SkipUnsupported bool   `json:"skip_unsupported"`
	From            string `json:"from"`
	To              string `json:"to"`
}

// parseConvertOptions validates options JSON ("" or "null" for the
// defaults) as mmpconv convert validates its flags.
func parseConvertOptions(s string) (convert.Options, convert.Format, convert.Format, error) {
	var o convertOptions
	var opt convert.Options
	if s != "" {
		dec := json.NewDecoder(bytes.NewReader([]byte(s)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return opt, "", "", fmt.Errorf("options JSON: %w (known options: profile, align, force, key, compress, skip_unsupported, from, to)", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return opt, "", "", errors.New("options JSON: trailing data after the object")
		}
	}
	opt.Profile = bridge.Portable
	if o.Profile != "" {
		p, err := bridge.ParseEncoding(o.Profile)
		if err != nil {
			return opt, "", "", fmt.Errorf("options: %w", err)
		}
		opt.Profile = p
	}
	opt.Align = 64
	if o.Align != nil {
		a := *o.Align
		if a < 1 || a > 1<<20 || a&(a-1) != 0 {
			return opt, "", "", fmt.Errorf("options: align %d: want a power of two from 1 to 1048576", a)
		}
		opt.Align = a
	}
	opt.Force, opt.Key, opt.Compress, opt.SkipUnsupported = o.Force, o.Key, o.Compress, o.SkipUnsupported
	var from, to convert.Format
	var err error
	if o.From != "" {
		if from, err = convert.ParseFormat(o.From); err != nil {
			return opt, "", "", err
		}
	}
	if o.To != "" {
		if to, err = convert.ParseFormat(o.To); err != nil {
			return opt, "", "", err
		}
	}
	return opt, from, to, nil
}

// convertFile does what `mmpconv convert` does and returns its exit status:
// convertOK, convertInput or convertUsage (with the error).
func convertFile(src, dst, options string) (int, error) {
	opt, from, to, err := parseConvertOptions(options)
	if err != nil {
		return convertUsage, err
	}
	err = convert.File(context.Background(), src, dst, from, to, opt)
	if err == nil {
		return convertOK, nil
	}
	var ue *convert.UsageError
	if errors.As(err, &ue) {
		return convertUsage, err
	}
	return convertInput, err
}

func errNilArg(name string) error {
	return fmt.Errorf("%s: NULL pointer", name)
}
