package bridge

// The commit protocol every edit follows: an entry is appended deleted,
// synced, then made live by flipping one byte, and the commit number is
// bumped, all under the exclusive lock. One writer of entries: writeEntry.

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// write runs fn under the exclusive lock on a fresh index.
func (mf *File) write(fn func(r *Reader) error) (err error) {
	defer guard(&err, mf.name)()
	if !mf.writable {
		return mf.wrap(ErrReadOnly)
	}
	mf.mu.Lock()
	defer mf.mu.Unlock()
	if err := mf.lock(lockExclusive); err != nil {
		return mf.wrap(err)
	}
	defer mf.unlock()
	if err := mf.refresh(false); err != nil {
		return mf.wrap(err)
	}
	return mf.wrap(fn(mf.r))
}

// setCommit bumps the commit number (mmappickle wraps at int32).
func (mf *File) bumpCommit(r *Reader) error {
	r.commit++
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(r.commit))
	_, err := mf.f.WriteAt(b[:], commitNumberOff)
	return err
}

func (mf *File) setFlag(e *Entry, live bool) error {
	b := []byte{opPop}
	if live {
		b[0] = opNewTrue
	}
	_, err := mf.f.WriteAt(b, e.flagOffset())
	return err
}

// Delete marks keys deleted (their bytes stay until Vacuum). It is all or
// nothing: when a key is missing, nothing is deleted. The commit number is
// bumped once.
func (mf *File) Delete(keys ...string) error {
	return mf.write(func(r *Reader) error {
		seen := map[string]bool{}
		for _, key := range keys {
			if _, ok := r.index[key]; !ok {
				return fmt.Errorf("key %q: %w (nothing deleted)", key, ErrKeyNotFound)
			}
			seen[key] = true
		}
		for key := range seen {
			i := r.index[key]
			if err := mf.setFlag(&r.entries[i], false); err != nil {
				return err
			}
			r.entries[i].Live = false
			r.removeKey(key)
			if err := mf.retireShadowed(r, key); err != nil {
				return err
			}
		}
		return mf.bumpCommit(r)
	})
}

func (r *Reader) removeKey(key string) {
	delete(r.index, key)
	for j, k := range r.keys {
		if k == key {
			r.keys = append(r.keys[:j], r.keys[j+1:]...)
			break
		}
	}
}

// segment is one piece of a value being appended: pickle bytes, or array
// data of n bytes streamed from r (r nil: left as a hole to fill later).
type segment struct {
	b []byte
	r io.Reader
	n int64
}

// appendValue appends an entry for key whose value is segs, written
// crash-safely: the entry is written deleted, followed by the terminator,
// then its flag flipped to live, then the previous entry of the key flipped
// to deleted, then the commit number bumped. With commit false the entry
// stays deleted (a reservation) and is returned for a later commit.
func (mf *File) appendValue(r *Reader, key string, build func(memoStart int64) ([]segment, int64, error), commit bool) (Entry, error) {
	if !validKey([]byte(key)) {
		return Entry{}, fmt.Errorf("key %q: keys must be 1 to 255 bytes of UTF-8 (this one is %d bytes)", key, len(key))
	}
	memoStart, off := r.nextMemo(), r.tail
	if memoStart > math.MaxInt32 {
		return Entry{}, fmt.Errorf("key %q: %w: the file's entries use memo indices up to %d, the largest an entry's trailer holds (2^31-1); rewrite it with convert", key, ErrMemoFull, memoStart-1)
	}
	segs, memoEnd, err := build(memoStart)
	if err != nil {
		return Entry{}, withKey(err, key)
	}
	if memoEnd > memoStart && memoEnd > maxMemoSlots {
		// Readers refuse a memo index from maxMemoSlots (pickle.load
		// allocates twice the largest index): the file would be lost to
		// them.
		return Entry{}, fmt.Errorf("key %q: %w: the value would use memo indices %d to %d, past %d (pickle.load allocates memory for twice the largest); rewrite the file with convert", key, ErrMemoFull, memoStart, memoEnd-1, maxMemoSlots-1)
	}
	// A value of opcodes only (no array data streamed in) is run on the
	// machine before it is written: what readers would refuse (a key
	// nested too deep, a value past a limit) is refused here rather than
	// written into a file readers would then refuse whole.
	if len(segs) == 1 && segs[0].r == nil {
		v := &source{data: segs[0].b, size: int64(len(segs[0].b))}
		if _, _, err := runAlone(v, 0, v.size, mf.cfg.limits); err != nil {
			return Entry{}, fmt.Errorf("key %q: not written, readers would refuse the value: %w", key, err)
		}
	}
	var valueLen int64
	for _, s := range segs {
		valueLen += int64(len(s.b)) + s.n
	}
	head := entryHead(key, valueLen)
	var pad []byte
	if mf.cfg.align > 1 && len(segs) > 1 {
		dataOff := off + int64(len(head)) + int64(len(segs[0].b))
		pad = paddingEntry(dataOff, int64(mf.cfg.align), int32(memoStart))
	}
	e := Entry{Key: key, Offset: off + int64(len(pad)), memoMax: int32(memoEnd)}
	e.Size = int64(len(head)) + valueLen + entryTrailer
	e.valueOff = e.Offset + int64(len(head))
	e.valueLen = valueLen

	if err := mf.writeEntry(off, pad, head, segs, int32(memoEnd)); err != nil {
		mf.stale = true
		// Roll back: cut what was written and restore the terminator.
		if terr := mf.f.Truncate(off); terr == nil {
			mf.f.WriteAt(terminator, off)
		}
		return Entry{}, withKey(err, key)
	}
	if len(pad) > 0 {
		pe := Entry{Offset: off, Size: int64(len(pad)), memoMax: int32(memoStart)}
		pe.valueOff, pe.valueLen = off+entryFrameHeader+2, int64(len(pad))-entryFrameHeader-2-entryTrailer
		r.entries = append(r.entries, pe)
	}
	r.entries = append(r.entries, e)
	r.tail = e.end()
	r.memoMax = max(r.memoMax, int32(memoStart), int32(memoEnd))
	// The index stays current; the next read maps the grown file.
	r.src = &source{ra: mf.f, size: r.tail + terminatorSize}
	if commit {
		return e, mf.commitEntry(r, len(r.entries)-1)
	}
	return e, nil
}

// commitEntry makes entry i live, retiring the key's previous entry.
func (mf *File) commitEntry(r *Reader, i int) error {
	e := &r.entries[i]
	if err := mf.setFlag(e, true); err != nil {
		return err
	}
	e.Live = true
	if j, ok := r.index[e.Key]; ok {
		if err := mf.setFlag(&r.entries[j], false); err != nil {
			return err
		}
		r.entries[j].Live = false
		r.removeKey(e.Key)
	}
	if err := mf.retireShadowed(r, e.Key); err != nil {
		return err
	}
	r.index[e.Key] = i
	r.keys = append(r.keys, e.Key)
	return mf.bumpCommit(r)
}

// retireShadowed flips to deleted the older live entries of key left by an
// interrupted replace, so that deleting or replacing the key cannot bring an
// old value back.
func (mf *File) retireShadowed(r *Reader, key string) error {
	kept := r.shadowed[:0]
	for _, j := range r.shadowed {
		if r.entries[j].Key != key {
			kept = append(kept, j)
			continue
		}
		if err := mf.setFlag(&r.entries[j], false); err != nil {
			return err
		}
	}
	r.shadowed = kept
	return nil
}

// writeEntry writes padding, the entry (deleted) and the terminator at off.
func (mf *File) writeEntry(off int64, pad, head []byte, segs []segment, memoEnd int32) error {
	w := &offsetWriter{f: mf.f, off: off}
	w.write(pad)
	w.write(head)
	for _, s := range segs {
		w.write(s.b)
		switch {
		case w.err != nil:
		case s.r != nil:
			w.copyFrom(s.r, s.n)
		case s.n > 0:
			w.skip(s.n)
		}
	}
	w.write(append(entryTail(memoEnd, false), terminator...))
	if w.err == nil && w.holes {
		// A reservation ends in a hole: make sure the file covers it.
		w.err = mf.f.Truncate(w.off)
	}
	return w.err
}

type offsetWriter struct {
	f     *os.File
	off   int64
	err   error
	holes bool // some range was skipped, not written
	dirty bool // the range written to may hold old bytes (copySparse)
}

func (w *offsetWriter) write(b []byte) {
	if w.err != nil || len(b) == 0 {
		return
	}
	_, w.err = w.f.WriteAt(b, w.off)
	w.off += int64(len(b))
}

func (w *offsetWriter) skip(n int64) {
	w.off += n
	w.holes = true
}

// copyFrom streams exactly n bytes from r to the file at w.off. Where r is
// an *os.File, an *io.LimitedReader of one, or an io.WriterTo that copies
// from one, the kernel moves the bytes (copy_file_range) without them passing
// through user space: converters rely on it.
func (w *offsetWriter) copyFrom(r io.Reader, n int64) {
	if f, off, sn, p, ok := fileSection(r); ok && sn >= n {
		// A section of a file (an array copied from one): its holes
		// stay holes.
		var done func(int64) error
		if p != nil {
			done = p.count
		}
		w.dirty = true // a reused slot holds old bytes
		w.copySparse(f, off, n, done)
		return
	}
	if _, err := w.f.Seek(w.off, io.SeekStart); err != nil {
		w.err = err
		return
	}
	var got int64
	var err error
	switch src := r.(type) {
	case io.WriterTo:
		got, err = src.WriteTo(w.f)
	case *io.LimitedReader:
		if src.N <= n {
			got, err = io.Copy(w.f, src)
			break
		}
		got, err = io.Copy(w.f, io.LimitReader(r, n))
	default:
		got, err = io.Copy(w.f, io.LimitReader(r, n))
	}
	w.off += got
	switch {
	case err != nil:
		w.err = fmt.Errorf("copying array data: %w", err)
	case got != n:
		w.err = fmt.Errorf("array data has %d bytes, want %d", got, n)
	}
}
