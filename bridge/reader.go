package bridge

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"

	"mmpbridge/internal/fault"
)

// Reader reads an mmappickle file from an io.ReaderAt. When the ReaderAt is a
// mapping (as with Open), arrays are views of it. A Reader is a snapshot: it
// never changes once made, and is safe for use by several goroutines (as
// File is); File.Reader gives a fresh one after edits.
type Reader struct {
	src     *source
	cfg     config
	commit  int32
	entries []Entry        // every entry in file order, dead ones included
	index   map[string]int // live key -> index in entries
	keys    []string       // live keys in file order
	end     int64          // offset of the terminator
	tail    int64          // where the next entry goes: the end of the last one
	memoMax int32          // the largest memo max index of all entries
	// shadowed lists entries still flagged live on disk but hidden by a
	// later live entry of the same key (an interrupted replace).
	shadowed []int
	an       analysis // what each entry holds (analysis.go)
}

// bytesReaderAt serves a byte slice as a mapping (for tests and fuzzing).
type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (b bytesReaderAt) Bytes() []byte { return b }

// NewReader parses the file's header and entry index. Values are decoded on
// demand. If r has a method Bytes() []byte returning all size bytes (a
// mapping), arrays are handed out as views of it.
func NewReader(r io.ReaderAt, size int64, opts ...Option) (rd *Reader, err error) {
	defer guard(&err, "read index")()
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	rd = &Reader{src: newSource(r, size), cfg: cfg}
	if err := rd.parse(); err != nil {
		return nil, err
	}
	if err := rd.analyze(); err != nil {
		return nil, err
	}
	return rd, nil
}

func (r *Reader) parse() error {
	if err := r.parseEnds(); err != nil {
		return err
	}
	// Size the index for small entries (a guess; it grows if wrong).
	r.an = analysis{}
	guess := int(min(r.end/64, 4096))
	r.entries = make([]Entry, 0, guess)
	if err := r.parseEntries(headerSize); err != nil {
		return err
	}
	r.buildIndex()
	return nil
}

// parseEnds reads the header and checks the terminator.
func (r *Reader) parseEnds() error {
	src := r.src
	h, err := src.readAt(0, min(headerSize, src.size))
	if err != nil {
		return err
	}
	if r.commit, err = parseHeader(h); err != nil {
		return err
	}
	if src.size < headerSize+terminatorSize {
		return &FormatError{Offset: src.size, Msg: "file ends before its terminator", Err: ErrTorn}
	}
	r.end = src.size - terminatorSize
	t, err := src.readAt(r.end, terminatorSize)
	if err != nil {
		return err
	}
	if !bytes.Equal(t, terminator) {
		return &FormatError{Offset: r.end, Msg: "file does not end with the terminator (FRAME 2, DICT, STOP)", Err: ErrTorn}
	}
	return nil
}

// parseEntries appends the entries from off to the terminator.
func (r *Reader) parseEntries(off int64) error {
	for off < r.end {
		if len(r.entries) >= r.cfg.limits.MaxKeys {
			return &FormatError{Offset: off, Msg: fmt.Sprintf("more than %d entries", r.cfg.limits.MaxKeys), Err: ErrLimit}
		}
		if len(r.entries)%4096 == 4095 {
			if err := r.cfg.stopped(); err != nil {
				return err
			}
		}
		e, err := r.readEntry(off, r.end)
		if err != nil {
			return err
		}
		r.entries = append(r.entries, e)
		off = e.end()
		r.memoMax = max(r.memoMax, e.memoMax)
	}
	r.tail = off
	return nil
}

// parseAfter reads the index of a file prev read before, reusing prev's
// entries and analysis when the file changed only as mmappickle's protocol
// changes a file in place: entries appended at prev's tail, flags flipped,
// the commit number set. Every old entry is read again (its flag may have
// changed), and must be what it was. It reports false, having reused
// nothing, when they are not: the caller then parses the file anew.
func (r *Reader) parseAfter(prev *Reader) (bool, error) {
	if err := r.parseEnds(); err != nil {
		return false, err
	}
	if r.end < prev.tail {
		return false, nil
	}
	r.entries = make([]Entry, len(prev.entries), max(len(prev.entries)+16, cap(prev.entries)))
	for i, old := range prev.entries {
		e, err := r.readEntry(old.Offset, r.end)
		if err != nil || e.Key != old.Key || e.Size != old.Size || e.memoMax != old.memoMax || e.valueOff != old.valueOff {
			return false, nil
		}
		r.entries[i] = e
	}
	r.memoMax = prev.memoMax
	if err := r.parseEntries(prev.tail); err != nil {
		return false, err
	}
	o := prev.an.owners
	o.runs, o.extra, o.offsets = slices.Clone(o.runs), maps.Clone(o.extra), slices.Clone(o.offsets)
	r.an = analysis{owners: o, infos: slices.Clone(prev.an.infos), err: prev.an.err}
	r.buildIndex()
	return true, nil
}

// buildIndex makes the live keys' index from the entries' flags.
func (r *Reader) buildIndex() {
	r.shadowed = nil
	r.index = make(map[string]int, len(r.entries)/2+1)
	// A key's place is its first live entry's, as in the dict pickle.load
	// builds (DICT keeps an equal key's first place and takes the last
	// value); its value the last live entry's.
	first := map[string]int{}
	for i, e := range r.entries {
		if !e.Live {
			continue
		}
		if j, dup := r.index[e.Key]; dup {
			// An interrupted replace leaves two live entries; the later
			// one is the value, as for pickle.load. The earlier one is
			// still live on disk: the next change of the key retires it.
			r.entries[j].Live = false
			r.shadowed = append(r.shadowed, j)
		} else {
			first[e.Key] = i
		}
		r.index[e.Key] = i
	}
	r.keys = make([]string, 0, len(r.index))
	for i, e := range r.entries {
		if j, ok := first[e.Key]; ok && j == i {
			r.keys = append(r.keys, e.Key)
		}
	}
}

// readEntry parses the entry at off, which must end at or before limit.
func (r *Reader) readEntry(off, limit int64) (Entry, error) {
	if limit-off < entryFrameHeader+entryMinFrame {
		return Entry{}, &FormatError{Offset: off, Msg: fmt.Sprintf("%d stray bytes before the terminator", limit-off), Err: ErrTorn}
	}
	head, err := r.src.readAt(off, min(entryFrameHeader+2+maxKeyLen, limit-off))
	if err != nil {
		return Entry{}, err
	}
	e, keyLen, err := parseEntryHead(head, off, limit)
	if err != nil {
		return Entry{}, err
	}
	if e.valueOff > e.end()-entryTrailer || int64(len(head)) < entryFrameHeader+2+int64(keyLen) {
		return Entry{}, formatErr(off, "key of %d bytes overruns its entry", keyLen)
	}
	key := head[entryFrameHeader+2 : entryFrameHeader+2+keyLen]
	t, err := r.src.readAt(e.end()-entryTrailer, entryTrailer)
	if err != nil {
		return Entry{}, err
	}
	if err := parseEntryTrailer(&e, t); err != nil {
		return Entry{}, err
	}
	if e.Live && !validKey(key) {
		return Entry{}, formatErr(off+entryFrameHeader+2, "key is not 1-255 bytes of UTF-8: %q", key)
	}
	e.Key = string(key)
	return e, nil
}

// CommitNumber is the header's commit number, bumped by every change.
func (r *Reader) CommitNumber() int32 { return r.commit }

// Keys returns the live keys in file order.
func (r *Reader) Keys() []string { return append([]string(nil), r.keys...) }

// Len is the number of live keys.
func (r *Reader) Len() int { return len(r.keys) }

// Entries returns every entry record in file order, deleted ones included.
func (r *Reader) Entries() []Entry { return append([]Entry(nil), r.entries...) }

// Size is the size of the file the index was read from.
func (r *Reader) Size() int64 { return r.src.size }

// Entry returns the record of a live key.
func (r *Reader) Entry(key string) (Entry, error) {
	i, ok := r.index[key]
	if !ok {
		return Entry{}, fmt.Errorf("key %q: %w", key, ErrKeyNotFound)
	}
	return r.entries[i], nil
}

// Kind tells what a value is.
type Kind int

const (
	KindValue  Kind = iota // a generic Python value
	KindArray              // a numpy.ndarray
	KindMasked             // a numpy.ma.MaskedArray
)

func (k Kind) String() string {
	if k < 0 || k > KindMasked {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return [...]string{"value", "array", "masked"}[k]
}

// Get returns the value of key: an *Array, a *Masked, or a generic value
// decoded to plain Go values (see Tuple, Dict, Object).
func (r *Reader) Get(key string) (v any, err error) {
	defer guard(&err, fmt.Sprintf("key %q", key))()
	i, err := r.entryIndex(key)
	if err != nil {
		return nil, err
	}
	return r.getEntry(i)
}

// entryIndex returns the position in entries of a live key.
func (r *Reader) entryIndex(key string) (int, error) {
	i, ok := r.index[key]
	if !ok {
		return 0, fmt.Errorf("key %q: %w", key, ErrKeyNotFound)
	}
	return i, nil
}

// getEntry returns entry i's value: an array from the analysis, or a
// generic value built anew.
func (r *Reader) getEntry(i int) (any, error) {
	info, err := r.info(i)
	if err != nil {
		return nil, err
	}
	if info.array != nil {
		return withSource(info.array, r.src), nil
	}
	e := &r.entries[i]
	m := newMachine(r.src, r.cfg.limits)
	m.reset(info.memoLen)
	root, err := m.run(e.valueOff, e.valueLen)
	if err != nil {
		return nil, withKey(err, e.Key)
	}
	v, err := m.goValue(root, r.src, func() ([]byte, error) { return r.pickle(i) })
	return v, withKey(err, e.Key)
}

// withSource returns a copy of an *Array or *Masked of the analysis that
// reads from src.
func withSource(v any, src *source) any {
	switch v := v.(type) {
	case *Array:
		a := *v
		a.src = src
		return &a
	case *Masked:
		d, k := *v.Data, *v.Mask
		d.src, k.src = src, src
		out := &Masked{Data: &d, Mask: &k}
		if f, ok := v.Fill.(*Array); ok {
			fc := *f
			if fc.src == nil { // a converted fill holds its own bytes
				fc.src = src
			}
			out.Fill = &fc
		}
		return out
	}
	return v
}

// arrayItem returns key's value when it is an array: an *Array, a
// *Masked, or nil when it is another value.
func (r *Reader) arrayItem(key string) (any, error) {
	i, err := r.entryIndex(key)
	if err != nil {
		return nil, err
	}
	info, err := r.info(i)
	if err != nil {
		return nil, err
	}
	if info.array == nil {
		return nil, nil
	}
	return withSource(info.array, r.src), nil
}

// KindOf tells whether key holds an array, a masked array or another value,
// without decoding a generic value.
func (r *Reader) KindOf(key string) (k Kind, err error) {
	defer guard(&err, fmt.Sprintf("key %q", key))()
	i, err := r.entryIndex(key)
	if err != nil {
		return KindValue, err
	}
	info, err := r.info(i)
	if err != nil {
		return KindValue, err
	}
	return info.kind, nil
}

// Array returns the array stored under key.
func (r *Reader) Array(key string) (arr *Array, err error) {
	defer guard(&err, fmt.Sprintf("key %q", key))()
	a, err := r.arrayItem(key)
	if err != nil {
		return nil, err
	}
	if arr, ok := a.(*Array); ok {
		return arr, nil
	}
	return nil, fmt.Errorf("key %q: %w", key, ErrNotArray)
}

// Masked returns the masked array stored under key.
func (r *Reader) Masked(key string) (mk *Masked, err error) {
	defer guard(&err, fmt.Sprintf("key %q", key))()
	a, err := r.arrayItem(key)
	if err != nil {
		return nil, err
	}
	if m, ok := a.(*Masked); ok {
		return m, nil
	}
	return nil, fmt.Errorf("key %q: not a masked array: %w", key, ErrNotArray)
}

// Pickle returns key's value as a complete pickle of its own (PROTO 4, the
// value's opcodes as stored with the memo numbered from 0, STOP): what
// Python's pickle.loads takes, and what File.Put of a pyval.Object stores
// elsewhere. Its size is bounded by Limits.MaxValueBytes. It proves
// nothing: for an unpickler, use PlainPickle, which hands out the value
// only once proven plain, from the same read.
func (r *Reader) Pickle(key string) (b []byte, err error) {
	defer guard(&err, fmt.Sprintf("key %q", key))()
	i, err := r.entryIndex(key)
	if err != nil {
		return nil, err
	}
	return r.pickle(i)
}

// pickle is entry i's value as a standalone pickle.
func (r *Reader) pickle(i int) ([]byte, error) {
	info, err := r.info(i)
	if err != nil {
		return nil, err
	}
	e := &r.entries[i]
	raw, err := r.rawValue(e)
	if err != nil {
		return nil, err
	}
	ops, _, err := renumberMemo(raw, e.valueOff, info.memoLen, 0)
	if err != nil {
		return nil, withKey(err, e.Key)
	}
	return framed(ops), nil
}

func (r *Reader) rawValue(e *Entry) ([]byte, error) {
	if e.valueLen > r.cfg.limits.MaxValueBytes {
		return nil, &FormatError{Offset: e.valueOff, Key: e.Key, Msg: fmt.Sprintf("value of %d bytes exceeds the limit of %d", e.valueLen, r.cfg.limits.MaxValueBytes), Err: ErrLimit}
	}
	b, err := r.src.readAt(e.valueOff, e.valueLen)
	return bytes.Clone(b), withKey(err, e.Key)
}

// guard protects a function that reads the file: a memory fault (a mapping
// of a file another process truncated faults past its new end) becomes
// ErrShrank, any other panic an internal error — a last line of defence,
// since every length is checked before use. Use: defer guard(&err, what)().
func guard(err *error, what string) func() {
	return fault.Guard(err, what, ErrShrank)
}
