package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"

	mmap "github.com/edsrzf/mmap-go"

	"mmpbridge/internal/atomicfile"
)

// File is an mmappickle file opened for reading or editing. It owns the
// operating-system file and its memory mappings: arrays it returns are views
// of a mapping, valid until Close. Every operation takes the file lock
// (flock) as mmappickle 1.0.1 does, and re-reads the key index when another
// process changed the commit number, so several processes — Go or Python —
// can share one file. A File is safe for use by several goroutines.
type File struct {
	name     string
	cfg      config
	writable bool
	inPlace  bool // opened from a descriptor: Vacuum rewrites the file in place
	whole    bool // written whole by this File (created, or vacuumed): Close writes its index

	mu      sync.Mutex
	f       *os.File
	r       *Reader   // index as of the last refresh
	mapped  mmap.MMap // current mapping (nil when stale or the file is empty)
	exposed bool      // an array view of the current mapping was handed out
	keep    []mmap.MMap
	stale   bool // the file changed since the mapping was made
}

// Open opens an existing file read-only.
func Open(name string, opts ...Option) (*File, error) {
	return OpenFile(name, os.O_RDONLY, 0, opts...)
}

// Create creates a new, empty file; it fails if name exists.
func Create(name string, opts ...Option) (*File, error) {
	return OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644, opts...)
}

// OpenFile opens name with the given flags (os.O_RDONLY or os.O_RDWR,
// optionally os.O_CREATE, os.O_EXCL). An empty file opened for writing gets
// a header and terminator, as mmappickle does.
func OpenFile(name string, flag int, perm os.FileMode, opts ...Option) (*File, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	mf := &File{name: name, cfg: cfg, f: f, writable: flag&(os.O_RDWR|os.O_WRONLY) != 0, stale: true}
	if err := mf.init(); err != nil {
		f.Close()
		return nil, mf.wrap(err)
	}
	return mf, nil
}

// NewFile makes a File of an open file, which it takes over (Close closes
// it): for a file known only by its descriptor, such as an unnamed
// temporary file. writable must match how f was opened. Its name, for
// messages, is f.Name(). Vacuum rewrites such a file in place.
func NewFile(f *os.File, writable bool, opts ...Option) (*File, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	mf := &File{name: f.Name(), cfg: cfg, f: f, writable: writable, inPlace: true, stale: true}
	if err := mf.init(); err != nil {
		return nil, mf.wrap(err)
	}
	return mf, nil
}

func (mf *File) init() error {
	if err := mf.lock(lockExclusiveIf(mf.writable)); err != nil {
		return err
	}
	defer mf.unlock()
	st, err := mf.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 && mf.writable {
		b := header(0)
		if mf.cfg.indexed() {
			b = append(b, pointerEntry(1)...)
			mf.whole = true
		}
		if _, err := mf.f.WriteAt(append(b, terminator...), 0); err != nil {
			return err
		}
	}
	if err := mf.refresh(false); err != nil {
		if mf.cfg.allowTorn && errors.Is(err, ErrTorn) {
			return nil // Fsck will repair it
		}
		return err
	}
	return nil
}

// Repair opens name, which may be torn by an interrupted write, and runs
// Fsck on it.
func Repair(name string, opts ...Option) (FsckReport, error) {
	if st, err := os.Stat(name); err == nil && st.Size() == 0 {
		// A writable open would make it a new file: it is none yet.
		return FsckReport{CutAt: -1}, fmt.Errorf("%s: %w", name, &FormatError{Offset: 0, Msg: "the file is empty", Err: ErrNotMmappickle})
	}
	f, err := OpenFile(name, os.O_RDWR, 0, append(opts, AllowTorn())...)
	if err != nil {
		return FsckReport{CutAt: -1}, err
	}
	rep, err := f.Fsck()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return rep, err
}

func lockExclusiveIf(w bool) int {
	if w {
		return lockExclusive
	}
	return lockShared
}

// Name is the file name given to Open.
func (mf *File) Name() string { return mf.name }

func (mf *File) wrap(err error) error {
	if err == nil {
		return nil
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s: %w", mf.name, err)
}

func (mf *File) lock(how int) error {
	if mf.f == nil {
		return ErrClosed
	}
	return flock(mf.f, how)
}

func (mf *File) unlock() { flock(mf.f, lockRelease) }

// refresh re-reads the index if the file changed (commit number or size)
// since it was last read, and with needMap makes sure the index reads
// through a mapping of the whole file. The lock must be held.
func (mf *File) refresh(needMap bool) error {
	st, err := mf.f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	var cn [4]byte
	if size >= headerSize {
		if _, err := mf.f.ReadAt(cn[:], commitNumberOff); err != nil {
			return err
		}
	}
	if mf.r != nil && !mf.stale && size == mf.r.src.size && int32(binary.LittleEndian.Uint32(cn[:])) == mf.r.commit {
		if needMap && mf.r.src.data == nil {
			// Our own appends left the index current but the mapping short.
			if err := mf.remap(size); err != nil {
				return err
			}
			mf.r.src = &source{data: mf.mapped, ra: mf.f, size: size}
		}
		return nil
	}
	if err := mf.remap(size); err != nil {
		return err
	}
	r := &Reader{src: &source{data: mf.mapped, ra: mf.f, size: size}, cfg: mf.cfg}
	if mf.mapped == nil {
		r.src.data = nil
	}
	// Another process appended or deleted: reuse what was read, if the
	// old entries are still in place.
	reused := false
	if mf.r != nil && !mf.stale {
		if reused, err = r.parseAfter(mf.r); err != nil {
			return err
		}
	}
	if !reused {
		if err := r.parse(); err != nil {
			return err
		}
	}
	mf.r = r
	mf.stale = false
	return nil
}

func (mf *File) remap(size int64) error {
	if mf.mapped != nil {
		if mf.exposed {
			mf.keep = append(mf.keep, mf.mapped)
		} else if err := mf.mapped.Unmap(); err != nil {
			return err
		}
		mf.mapped, mf.exposed = nil, false
	}
	if size == 0 || size != int64(int(size)) {
		return nil
	}
	prot := mmap.RDONLY
	if mf.writable {
		prot = mmap.RDWR
	}
	m, err := mmap.MapRegion(mf.f, int(size), prot, 0, 0)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	mf.mapped = m
	return nil
}

// read runs fn on a fresh index under the shared lock.
func (mf *File) read(fn func(r *Reader) error) (err error) {
	defer guard(&err, mf.name)()
	mf.mu.Lock()
	defer mf.mu.Unlock()
	if err := mf.lock(lockShared); err != nil {
		return mf.wrap(err)
	}
	defer mf.unlock()
	if err := mf.refresh(true); err != nil {
		return mf.wrap(err)
	}
	return mf.wrap(fn(mf.r))
}

// Keys returns the live keys in file order.
func (mf *File) Keys() (keys []string, err error) {
	err = mf.read(func(r *Reader) error { keys = r.Keys(); return nil })
	return keys, err
}

// Entries returns every entry record, deleted ones included.
func (mf *File) Entries() (es []Entry, err error) {
	err = mf.read(func(r *Reader) error { es = r.Entries(); return nil })
	return es, err
}

// Entry returns the record of a live key.
func (mf *File) Entry(key string) (e Entry, err error) {
	err = mf.read(func(r *Reader) error { e, err = r.Entry(key); return err })
	return e, err
}

// CommitNumber returns the file's commit number.
func (mf *File) CommitNumber() (n int32, err error) {
	err = mf.read(func(r *Reader) error { n = r.commit; return nil })
	return n, err
}

// SetCommitNumber writes the header's commit number, as mmappickle's
// commit_number setter does. Other processes re-read the index when it
// changes, so setting it back to a value they saw hides changes from them.
func (mf *File) SetCommitNumber(n int32) error {
	return mf.write(func(r *Reader) error {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(n))
		if _, err := mf.f.WriteAt(b[:], commitNumberOff); err != nil {
			return err
		}
		r.commit = n
		return nil
	})
}

// Get returns the value of key (see Reader.Get).
func (mf *File) Get(key string) (v any, err error) {
	err = mf.read(func(r *Reader) error {
		v, err = r.Get(key)
		// Only arrays are views of the mapping; other values are copies.
		mf.exposed = mf.exposed || err == nil && holdsArray(v, 0)
		return err
	})
	return v, err
}

// holdsArray tells whether v is or holds an *Array or *Masked (views of the
// mapping it was read from).
func holdsArray(v any, depth int) bool {
	if depth > maxEncodeDepth {
		return true // deeper than any decoded value: assume so
	}
	switch v := v.(type) {
	case *Array, *Masked:
		return true
	case []any:
		return slices.ContainsFunc(v, func(x any) bool { return holdsArray(x, depth+1) })
	case Tuple:
		return slices.ContainsFunc(v, func(x any) bool { return holdsArray(x, depth+1) })
	case Set:
		return slices.ContainsFunc(v, func(x any) bool { return holdsArray(x, depth+1) })
	case FrozenSet:
		return slices.ContainsFunc(v, func(x any) bool { return holdsArray(x, depth+1) })
	case Dict:
		return slices.ContainsFunc(v, func(it DictItem) bool { return holdsArray(it.Key, depth+1) || holdsArray(it.Value, depth+1) })
	case OrderedDict:
		return holdsArray(Dict(v), depth)
	}
	return false
}

// Array returns the array stored under key, a view of the mapping.
func (mf *File) Array(key string) (a *Array, err error) {
	err = mf.read(func(r *Reader) error {
		a, err = r.Array(key)
		mf.exposed = mf.exposed || err == nil
		return err
	})
	return a, err
}

// Masked returns the masked array stored under key.
func (mf *File) Masked(key string) (m *Masked, err error) {
	err = mf.read(func(r *Reader) error {
		m, err = r.Masked(key)
		mf.exposed = mf.exposed || err == nil
		return err
	})
	return m, err
}

// Pickle returns key's value as a complete pickle of its own (see
// Reader.Pickle).
func (mf *File) Pickle(key string) (p []byte, err error) {
	err = mf.read(func(r *Reader) error { p, err = r.Pickle(key); return err })
	return p, err
}

// Plain tells whether key's value is plain data (see Reader.Plain).
func (mf *File) Plain(key string, trust ...Global) error {
	return mf.read(func(r *Reader) error { return r.Plain(key, trust...) })
}

// KindOf tells what key holds.
func (mf *File) KindOf(key string) (k Kind, err error) {
	err = mf.read(func(r *Reader) error { k, err = r.KindOf(key); return err })
	return k, err
}

// Reader returns a snapshot of the file as a Reader over its current
// mapping: later changes, by this File or another process, do not show in
// it, and it stays valid (its mapping kept) until Close. It is safe for use
// by several goroutines.
func (mf *File) Reader() (r *Reader, err error) {
	err = mf.read(func(cur *Reader) error {
		cur.analyze() // a refusal is kept in the analysis, as for cur
		r = cur.snapshot()
		mf.exposed = true
		return nil
	})
	return r, err
}

// Close releases the lock, the mappings and the file. Arrays obtained from
// the file must not be used afterwards.
func (mf *File) Close() error {
	var indexErr error
	if mf.writable && mf.whole && mf.f != nil {
		// Remote readers' plan of the file as it now is (index.go). A
		// file gone bad meanwhile (torn, shrunk, not parsing) gets none;
		// only a failed write is an error.
		indexErr = mf.writeIndex()
		var fe *FormatError
		if errors.As(indexErr, &fe) || errors.Is(indexErr, ErrTorn) || errors.Is(indexErr, ErrShrank) || errors.Is(indexErr, ErrNotMmappickle) {
			indexErr = nil
		}
	}
	mf.mu.Lock()
	defer mf.mu.Unlock()
	if mf.f == nil {
		return ErrClosed
	}
	var errs []error
	if mf.mapped != nil {
		errs = append(errs, mf.mapped.Unmap())
	}
	for _, m := range mf.keep {
		errs = append(errs, m.Unmap())
	}
	mf.mapped, mf.keep = nil, nil
	errs = append(errs, mf.f.Close(), indexErr)
	mf.f = nil
	return mf.wrap(errors.Join(errs...))
}

// Sync flushes the file to stable storage.
func (mf *File) Sync() error {
	mf.mu.Lock()
	defer mf.mu.Unlock()
	if mf.f == nil {
		return ErrClosed
	}
	return mf.wrap(mf.f.Sync())
}

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
	if memoEnd > math.MaxInt32 {
		return Entry{}, fmt.Errorf("key %q: %w: the value would use memo indices up to %d, past 2^31-1; rewrite the file with convert", key, ErrMemoFull, memoEnd-1)
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
	e := Entry{Key: key, Offset: off + int64(len(pad)), MemoMax: int32(memoEnd)}
	e.Size = int64(len(head)) + valueLen + entryTrailer
	e.ValueOff = e.Offset + int64(len(head))
	e.ValueLen = valueLen

	if err := mf.writeEntry(off, pad, head, segs, int32(memoEnd)); err != nil {
		mf.stale = true
		// Roll back: cut what was written and restore the terminator.
		if terr := mf.f.Truncate(off); terr == nil {
			mf.f.WriteAt(terminator, off)
		}
		return Entry{}, withKey(err, key)
	}
	if len(pad) > 0 {
		pe := Entry{Offset: off, Size: int64(len(pad)), MemoMax: int32(memoStart)}
		pe.ValueOff, pe.ValueLen = off+entryFrameHeader+2, int64(len(pad))-entryFrameHeader-2-entryTrailer
		r.entries = append(r.entries, pe)
	}
	r.entries = append(r.entries, e)
	r.tail = e.End()
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

func entryHead(key string, valueLen int64) []byte {
	h := make([]byte, entryFrameHeader, entryFrameHeader+2+len(key))
	h[0] = opFrame
	binary.LittleEndian.PutUint64(h[1:], uint64(2+int64(len(key))+valueLen+entryTrailer))
	h = append(h, opShortBinUni, byte(len(key)))
	return append(h, key...)
}

func entryTail(memo int32, live bool) []byte {
	t := []byte{opBinInt, 0, 0, 0, 0, opPop, opPop, opPop}
	binary.LittleEndian.PutUint32(t[1:], uint32(memo))
	if live {
		t[6] = opNewTrue
	}
	return t
}

// paddingEntry returns a deleted entry that moves dataOff to a multiple of
// align, or nil when it already is one. The smallest entry is 20 bytes.
func paddingEntry(dataOff, align int64, memo int32) []byte {
	pad := (align - dataOff%align) % align
	if pad == 0 {
		return nil
	}
	const minPad = entryFrameHeader + 2 + 1 + entryTrailer
	for pad < minPad {
		pad += align
	}
	v := pad - (entryFrameHeader + 2 + entryTrailer) // value bytes
	var value []byte
	switch {
	case v == 1:
		value = []byte{opNone}
	case v <= 257:
		value = append([]byte{opShortBinBytes, byte(v - 2)}, make([]byte, v-2)...)
	default:
		value = append(bytesOpHeader(v-5), make([]byte, v-5)...)
	}
	b := entryHead("", int64(len(value)))
	b = append(b, value...)
	return append(b, entryTail(memo, false)...)
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
	holes bool
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

// Put stores v under key, replacing any previous value. v may be an *Array
// or *Masked (from any file: the data is copied), an Object (its pickle is
// copied verbatim), or a plain Go value (see encodeValue).
func (mf *File) Put(key string, v any) error {
	switch v := v.(type) {
	case *Array:
		return mf.PutArrayFrom(key, v, nil)
	case *Masked:
		return mf.PutMaskedFrom(key, v, nil)
	case Object:
		return mf.PutPickle(key, v.Pickle)
	}
	return mf.write(func(r *Reader) error {
		_, err := mf.appendValue(r, key, func(memoStart int64) ([]segment, int64, error) {
			var buf bytes.Buffer
			end, err := encodeValue(&buf, v, memoStart)
			return []segment{{b: buf.Bytes()}}, end, err
		}, true)
		return err
	})
}

// PutPickle stores a value given as a complete pickle (what Python's
// pickle.dumps returns, protocol 2 to 5, or Reader.Pickle), verbatim but for
// its framing and memo indices, renumbered to follow the file's. Nothing of
// it is run or checked: Verify tells what pickle.load of it would do.
func (mf *File) PutPickle(key string, pickle []byte) error {
	ops, err := unframe(pickle)
	if err != nil {
		return mf.wrap(fmt.Errorf("key %q: %w", key, err))
	}
	return mf.write(func(r *Reader) error {
		_, err := mf.appendValue(r, key, func(memoStart int64) ([]segment, int64, error) {
			out, end, err := renumberMemo(ops, 0, 0, memoStart)
			return []segment{{b: out}}, end, err
		}, true)
		return err
	})
}

// PutArray stores an array whose h.NBytes() bytes, in the order h says, are
// read from data. In the mmappickle profile the bytes must be in C order.
func (mf *File) PutArray(key string, h ArrayHeader, data io.Reader) error {
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		return mf.wrap(fmt.Errorf("key %q: the mmappickle profile stores C-order data; transpose the Fortran-ordered array first (or use the portable profile)", key))
	}
	return mf.write(func(r *Reader) error {
		_, err := mf.appendValue(r, key, arrayBuilder(mf.cfg.profile, h, data), true)
		return err
	})
}

func arrayBuilder(p Encoding, h ArrayHeader, data io.Reader) func(int64) ([]segment, int64, error) {
	return func(memoStart int64) ([]segment, int64, error) {
		n, err := h.NBytes()
		if err != nil {
			return nil, 0, err
		}
		segs, end, err := encodeArray(p, h, memoStart)
		if err != nil {
			return nil, 0, err
		}
		return []segment{{b: segs[0], r: data, n: n}, {b: segs[1]}}, end, nil
	}
}

// PutMasked stores a masked array: data (h.NBytes() bytes), mask (one byte
// per element, in the same order) and fill (one element of the dtype, or
// nil for numpy's default). The mmappickle profile does not keep fill.
func (mf *File) PutMasked(key string, h ArrayHeader, data, mask io.Reader, fill []byte) error {
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		return mf.wrap(fmt.Errorf("key %q: the mmappickle profile stores C-order data; transpose the Fortran-ordered array first (or use the portable profile)", key))
	}
	return mf.write(func(r *Reader) error {
		_, err := mf.appendValue(r, key, func(memoStart int64) ([]segment, int64, error) {
			n, err := h.NBytes()
			if err != nil {
				return nil, 0, err
			}
			cnt, _ := shapeSize(h.Shape)
			segs, end, err := encodeMasked(mf.cfg.profile, h, fill, memoStart)
			if err != nil {
				return nil, 0, err
			}
			return []segment{{b: segs[0], r: data, n: n}, {b: segs[1], r: mask, n: cnt}, {b: segs[2]}}, end, nil
		}, true)
		return err
	})
}

// PutArrayFrom copies an array from any file under key, re-encoded in this
// file's profile (Fortran data transposed for the mmappickle profile). wrap,
// if not nil, wraps the data reader (to count progress or cancel).
func (mf *File) PutArrayFrom(key string, a *Array, wrap func(io.Reader) io.Reader) error {
	h := ArrayHeader{DType: a.DType, Shape: a.Shape, Fortran: a.Fortran}
	r := io.Reader(a.Reader())
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		h.Fortran, r = false, a.cReader()
	}
	return mf.PutArray(key, h, wrapReader(wrap, r))
}

// PutMaskedFrom copies a masked array from any file under key (see
// PutArrayFrom).
func (mf *File) PutMaskedFrom(key string, m *Masked, wrap func(io.Reader) io.Reader) error {
	h := ArrayHeader{DType: m.Data.DType, Shape: m.Data.Shape, Fortran: m.Data.Fortran}
	var fill []byte
	if fa, ok := m.Fill.(*Array); ok && fa.NBytes == int64(fa.DType.ItemSize) && fa.DType == m.Data.DType {
		fill = make([]byte, fa.NBytes)
		if _, err := fa.Reader().ReadAt(fill, 0); err != nil {
			return mf.wrap(fmt.Errorf("key %q: reading fill value: %w", key, err))
		}
	}
	data, mask := io.Reader(m.Data.Reader()), io.Reader(m.Mask.Reader())
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		h.Fortran = false
		data, mask = m.Data.cReader(), m.Mask.cReader()
	}
	return mf.PutMasked(key, h, wrapReader(wrap, data), wrapReader(wrap, mask), fill)
}

func wrapReader(wrap func(io.Reader) io.Reader, r io.Reader) io.Reader {
	if wrap == nil {
		return r
	}
	return wrap(r)
}

// Slot is an array reserved in the file (like mmappickle's EmptyNDArray):
// its bytes are filled through WriteAt or Bytes, then Commit makes the key
// live. Until then the entry is deleted, so a crash loses only the slot.
type Slot struct {
	mf     *File
	entry  Entry
	Offset int64 // file offset of the array data
	NBytes int64
	Header ArrayHeader
	mapped mmap.MMap
	done   bool
}

// Reserve appends an array of the given dtype and shape without its data
// (the file gets a hole: no memory and, on most file systems, no disk used
// until written).
func (mf *File) Reserve(key string, h ArrayHeader) (*Slot, error) {
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		return nil, mf.wrap(fmt.Errorf("key %q: the mmappickle profile stores C-order data", key))
	}
	var s *Slot
	err := mf.write(func(r *Reader) error {
		e, err := mf.appendValue(r, key, arrayBuilder(mf.cfg.profile, h, nil), false)
		if err != nil {
			return err
		}
		n, _ := h.NBytes()
		a, err := standaloneArray(&source{ra: mf.f, size: e.End() + terminatorSize}, e.ValueOff, e.ValueLen, mf.cfg.limits)
		if err != nil {
			return err
		}
		arr, ok := a.(*Array)
		if !ok || arr.NBytes != n {
			return fmt.Errorf("key %q: reserved entry does not parse back as the array", key)
		}
		s = &Slot{mf: mf, entry: e, Offset: arr.Offset, NBytes: n, Header: h}
		return nil
	})
	return s, err
}

// WriteAt writes p at offset off of the array's data.
func (s *Slot) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > s.NBytes || int64(len(p)) > s.NBytes-off {
		return 0, fmt.Errorf("slot write of %d bytes at %d outside the array's %d bytes", len(p), off, s.NBytes)
	}
	return s.mf.f.WriteAt(p, s.Offset+off)
}

// ReadFrom fills the slot from r, which must supply exactly NBytes bytes.
// It writes through a descriptor of its own, so several slots can be filled
// at once (and the kernel copies when r is a file, see PutArray).
func (s *Slot) ReadFrom(r io.Reader) (int64, error) {
	f, err := os.OpenFile(s.mf.name, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := &offsetWriter{f: f, off: s.Offset}
	w.copyFrom(r, s.NBytes)
	return w.off - s.Offset, w.err
}

// Bytes maps the slot's data writable. The mapping is released by Commit.
func (s *Slot) Bytes() ([]byte, error) {
	if s.mapped == nil {
		if s.NBytes == 0 {
			return []byte{}, nil
		}
		page := int64(os.Getpagesize())
		start := s.Offset / page * page
		m, err := mmap.MapRegion(s.mf.f, int(s.Offset+s.NBytes-start), mmap.RDWR, 0, start)
		if err != nil {
			return nil, fmt.Errorf("mmap slot: %w", err)
		}
		s.mapped = m
	}
	d := s.Offset % int64(os.Getpagesize())
	return s.mapped[d : d+s.NBytes : d+s.NBytes], nil
}

// Abort releases a slot that will not be committed: its mapping is unmapped
// and the entry stays deleted (Vacuum reclaims it).
func (s *Slot) Abort() error {
	if s.done {
		return errors.New("slot already committed or aborted")
	}
	s.done = true
	if s.mapped != nil {
		err := s.mapped.Unmap()
		s.mapped = nil
		return err
	}
	return nil
}

// Commit makes the reserved key live (replacing a previous value of the
// key) and releases the slot's mapping.
func (s *Slot) Commit() error {
	if s.done {
		return errors.New("slot already committed")
	}
	if s.mapped != nil {
		if err := s.mapped.Flush(); err != nil {
			return err
		}
		if err := s.mapped.Unmap(); err != nil {
			return err
		}
		s.mapped = nil
	}
	return s.mf.write(func(r *Reader) error {
		for i := len(r.entries) - 1; i >= 0; i-- {
			if r.entries[i].Offset == s.entry.Offset {
				s.done = true
				return s.mf.commitEntry(r, i)
			}
		}
		return fmt.Errorf("key %q: reserved entry at offset %d is gone (vacuumed?)", s.entry.Key, s.entry.Offset)
	})
}

// Vacuum removes deleted entries, rewriting the file to a temporary file
// beside it and renaming it into place (so a crash leaves the old file).
// When the name is a symbolic link, its target is rewritten and the link
// kept. Array data is re-aligned to the File's alignment. Other processes
// must not have the file open, and arrays obtained before are invalid
// afterwards. The commit number becomes 0 (or 1 if it was 0), as mmappickle
// does. A File made by NewFile is rewritten in place instead, as
// mmappickle does: do not interrupt that.
func (mf *File) Vacuum() error {
	return mf.write(func(r *Reader) error {
		var tmp *os.File
		var out *atomicfile.File
		if mf.inPlace {
			f, err := atomicfile.Scratch(os.TempDir())
			if err != nil {
				return err
			}
			tmp = f
		} else {
			target, err := filepath.EvalSymlinks(mf.name)
			if err != nil {
				return err
			}
			perm := os.FileMode(0o644)
			if st, err := mf.f.Stat(); err == nil {
				perm = st.Mode().Perm()
			}
			if out, err = atomicfile.Create(target, perm); err != nil {
				return err
			}
			tmp = out.File
			// The umask does not apply: the file keeps its mode.
			tmp.Chmod(perm)
		}
		committed := false
		defer func() {
			switch {
			case committed:
			case out != nil:
				out.Close()
			default:
				tmp.Close()
			}
		}()
		commit := int32(0)
		if r.commit == 0 {
			commit = 1
		}
		w := &offsetWriter{f: tmp}
		w.write(header(commit))
		if mf.cfg.indexed() {
			w.write(pointerEntry(1))
			mf.whole = true // its index is written on Close
		}
		for i, e := range r.entries {
			if !e.Live {
				continue
			}
			if mf.cfg.align > 1 {
				if info, err := r.info(i); err == nil && info.array != nil {
					first := info.array.(interface{ dataOffset() int64 }).dataOffset()
					w.write(paddingEntry(w.off+first-e.Offset, int64(mf.cfg.align), e.MemoMax))
				}
			}
			w.copyFrom(io.NewSectionReader(mf.f, e.Offset, e.Size), e.Size)
		}
		w.write(terminator)
		if w.err != nil {
			return w.err
		}
		if mf.inPlace {
			return mf.copyBack(tmp, w.off)
		}
		// Locked before it has its name: no other writer can get in
		// between.
		flock(tmp, lockExclusive)
		if err := out.Commit(true); err != nil {
			return err
		}
		committed = true
		nf := tmp
		mf.unlock()
		old := mf.f
		mf.f = nf
		old.Close()
		mf.stale = true
		return mf.refresh(false)
	})
}

// restoreTrailer completes an entry at off cut within the last two bytes of
// its trailer (the flag and the final POP), which can only have been
// NEWTRUE|POP, POP: it writes them back (the flag as POP, deleted, when it is
// gone) and returns how many; 0 when the entry is not cut that way.
func (mf *File) restoreTrailer(r *Reader, off, size int64) (int, error) {
	h, err := r.src.readAt(off, min(entryFrameHeader, size-off))
	if err != nil || len(h) < entryFrameHeader || h[0] != opFrame {
		return 0, nil
	}
	n := binary.LittleEndian.Uint64(h[1:])
	if n < entryMinFrame || n > uint64(size) {
		return 0, nil
	}
	end := off + entryFrameHeader + int64(n)
	missing := end - size
	if missing < 1 || missing > 2 {
		return 0, nil
	}
	t, err := r.src.readAt(end-entryTrailer, entryTrailer-missing)
	if err != nil || t[0] != opBinInt || t[5] != opPop || missing == 1 && t[6] != opNewTrue && t[6] != opPop {
		return 0, nil
	}
	fix := []byte{opPop, opPop}[:missing]
	if _, err := mf.f.WriteAt(fix, size); err != nil {
		return 0, err
	}
	return int(missing), nil
}

// copyBack replaces the file's contents with the n bytes of tmp, in place.
func (mf *File) copyBack(tmp *os.File, n int64) error {
	w := &offsetWriter{f: mf.f}
	w.copyFrom(io.NewSectionReader(tmp, 0, n), n)
	if w.err != nil {
		return w.err
	}
	if err := mf.f.Truncate(n); err != nil {
		return err
	}
	if err := mf.f.Sync(); err != nil {
		return err
	}
	mf.stale = true
	return mf.refresh(false)
}

func (a *Array) dataOffset() int64  { return a.Offset }
func (m *Masked) dataOffset() int64 { return m.Data.Offset }

// FsckReport says what Fsck found and did.
type FsckReport struct {
	Entries  int   // entries kept
	CutAt    int64 // offset the file was cut at (-1: nothing cut)
	CutBytes int64 // bytes removed
	// Restored is the number of bytes of the last entry's trailer put back
	// (1: its final POP; 2: its flag too, so the entry is kept deleted).
	Restored int
	Repaired bool // the terminator was rewritten
	Problem  string
}

// Fsck repairs a file whose last write was interrupted: it keeps every
// complete entry, cuts the torn tail and restores the terminator. Only the
// entry that was being written is lost. As with mmappickle, a file cut by
// up to 12 bytes (the terminator and the last byte of the last entry) comes
// back whole; cut by 13, the last entry's flag is lost and it is kept
// deleted.
func (mf *File) Fsck() (FsckReport, error) {
	rep := FsckReport{CutAt: -1}
	if !mf.writable {
		return rep, mf.wrap(ErrReadOnly)
	}
	mf.mu.Lock()
	defer mf.mu.Unlock()
	if err := mf.lock(lockExclusive); err != nil {
		return rep, mf.wrap(err)
	}
	defer mf.unlock()
	st, err := mf.f.Stat()
	if err != nil {
		return rep, mf.wrap(err)
	}
	size := st.Size()
	src := &source{ra: mf.f, size: size}
	h, err := src.readAt(0, min(headerSize, size))
	if err != nil {
		return rep, mf.wrap(err)
	}
	if _, err := parseHeader(h); err != nil {
		return rep, mf.wrap(err)
	}
	r := &Reader{src: src, cfg: mf.cfg}
	off := int64(headerSize)
	for off < size {
		if size-off == terminatorSize {
			if t, _ := src.readAt(off, terminatorSize); bytes.Equal(t, terminator) {
				break
			}
		}
		e, err := r.readEntry(off, size)
		if err != nil && rep.Restored == 0 {
			if n, rerr := mf.restoreTrailer(r, off, size); rerr != nil {
				return rep, mf.wrap(rerr)
			} else if n > 0 {
				rep.Restored, size = n, size+int64(n)
				r.src = &source{ra: mf.f, size: size}
				e, err = r.readEntry(off, size)
			}
		}
		if err != nil {
			rep.Problem = err.Error()
			break
		}
		rep.Entries++
		off = e.End()
	}
	if off+terminatorSize == size && rep.Problem == "" {
		return rep, nil // intact
	}
	rep.CutAt, rep.CutBytes, rep.Repaired = off, size-off, true
	mf.stale = true
	if err := mf.f.Truncate(off); err != nil {
		return rep, mf.wrap(err)
	}
	if _, err := mf.f.WriteAt(terminator, off); err != nil {
		return rep, mf.wrap(err)
	}
	if err := mf.f.Sync(); err != nil {
		return rep, mf.wrap(err)
	}
	return rep, mf.wrap(mf.refresh(false))
}
