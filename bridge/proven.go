package bridge

import (
	"errors"
	"fmt"

	"mmpbridge/pyval"
)

// This file hands out a value's pickle for an unpickler that must not run
// anything: the bytes are read once, proven plain from that one copy, and
// the pickle handed out is made from that same copy. A file another
// process rewrites, or a server that answers the same Range request with
// other bytes, can make the read fail or the proof refuse, never make a
// pickle come out that was not proven.

// errOutsideValue: the proof of a value read a byte outside the value's
// own bytes (never, for a value of a sound file: the machine reads a value
// only between its offset and its end).
var errOutsideValue = errors.New("read outside the value's bytes")

// PlainPickle returns key's value as a complete pickle of its own (as
// Pickle) only when it is plain data (as Plain judges it: nil error), and
// otherwise an error wrapping ErrNotPlain that names the offset and the
// cause. The value's bytes are read once, into a private copy bounded by
// Limits.MaxValueBytes; the proof runs over that copy alone and the pickle
// is built from it, so what is handed out is exactly what was proven,
// whatever happens to the file meanwhile. Globals in trust are allowed
// with any arguments.
//
// This is the method to use before an unpickler runs on the result; Plain
// followed by Pickle reads the value twice, and the second read need not
// return the bytes the first one proved.
func (r *Reader) PlainPickle(key string, trust ...pyval.Global) (b []byte, err error) {
	defer guard(&err, fmt.Sprintf("key %q", key))()
	i, err := r.entryIndex(key)
	if err != nil {
		return nil, err
	}
	info, err := r.info(i)
	if err != nil {
		return nil, err
	}
	e := &r.entries[i]
	raw, err := r.rawValue(e) // the one read; raw is a private copy
	if err != nil {
		return nil, err
	}
	src := newSource(&valueWindow{off: e.valueOff, b: raw}, r.src.size)
	if err := r.provePlain(e, info.memoLen, src, trust); err != nil {
		return nil, err
	}
	ops, _, err := renumberMemo(raw, e.valueOff, info.memoLen, 0)
	if err != nil {
		return nil, withKey(err, e.Key)
	}
	return framed(ops), nil
}

// PlainPickle returns key's value as a complete pickle once proven plain,
// from one read (see Reader.PlainPickle).
func (mf *File) PlainPickle(key string, trust ...pyval.Global) (p []byte, err error) {
	err = mf.read(func(r *Reader) error { p, err = r.PlainPickle(key, trust...); return err })
	return p, err
}

// provePlain runs entry e's value, read from src, in verify mode with the
// memo starting at memoLen: nil when it is plain data, else an error
// wrapping ErrNotPlain naming the first finding, or an I/O error.
func (r *Reader) provePlain(e *Entry, memoLen int64, src *source, trust []pyval.Global) error {
	v := newVerifier(r, trust)
	v.cur = e
	m := newMachine(src, r.cfg.limits)
	m.sink, m.trust = v, v.trust
	m.reset(memoLen)
	if _, err := m.run(e.valueOff, e.valueLen); err != nil {
		if err := v.failed(err); err != nil {
			return withKey(err, e.Key)
		}
	}
	v.amplified(e)
	key := e.Key
	for _, s := range v.rep.Structure {
		return fmt.Errorf("key %q: offset %d: %s: %w", key, s.Offset, s.Msg, ErrNotPlain)
	}
	for _, f := range v.rep.Findings {
		switch {
		case f.Kind == Import && !f.Allowed:
			return fmt.Errorf("key %q: offset %d: pickle.load imports %s.%s, a global outside the allow-list: %w", key, f.Offset, f.Module, f.Name, ErrNotPlain)
		case f.Kind == NotPlain || f.Kind == Fails || f.Kind == SharedMemo:
			return fmt.Errorf("key %q: offset %d: %s: %w", key, f.Offset, f.Msg, ErrNotPlain)
		}
	}
	return nil
}

// valueWindow serves one value's bytes, read once, at their file offsets:
// [off, off+len(b)). Any read outside them is an error, so a proof over it
// sees nothing but the copy it proves.
type valueWindow struct {
	off int64
	b   []byte
}

func (w *valueWindow) ReadAt(p []byte, off int64) (int, error) {
	rel := off - w.off
	if off < w.off || rel > int64(len(w.b)) || int64(len(p)) > int64(len(w.b))-rel {
		return 0, fmt.Errorf("%d bytes at offset %d: %w", len(p), off, errOutsideValue)
	}
	return copy(p, w.b[rel:]), nil
}
