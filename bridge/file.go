package bridge

// File: opening, the lock, the mapping, and reading through the index.
// Editing is in file_commit.go (the commit protocol: append, then flip a
// byte), file_put.go (values and arrays), file_slot.go (reserved arrays),
// file_vacuum.go (vacuum and repair).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"mmpbridge/pyval"

	mmap "github.com/edsrzf/mmap-go"
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
	if st.Size() == 0 && mf.writable && mf.cfg.allowTorn {
		// Opened to be repaired: an empty file is none yet, and must not
		// become one.
		return &FormatError{Offset: 0, Msg: "the file is empty", Err: ErrNotMmappickle}
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
			return nil // Repair will mend it
		}
		return err
	}
	return nil
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
	case pyval.Tuple:
		return slices.ContainsFunc(v, func(x any) bool { return holdsArray(x, depth+1) })
	case pyval.Set:
		return slices.ContainsFunc(v, func(x any) bool { return holdsArray(x, depth+1) })
	case pyval.FrozenSet:
		return slices.ContainsFunc(v, func(x any) bool { return holdsArray(x, depth+1) })
	case pyval.Dict:
		return slices.ContainsFunc(v, func(it pyval.DictItem) bool { return holdsArray(it.Key, depth+1) || holdsArray(it.Value, depth+1) })
	case pyval.OrderedDict:
		return holdsArray(pyval.Dict(v), depth)
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
func (mf *File) Plain(key string, trust ...pyval.Global) error {
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

// Dup returns a new descriptor of the file mf reads now, which the caller
// closes: for a binding that maps arrays itself (numpy.memmap), so that it
// maps the very file mf described, not whatever file has its name by then
// (another process's Vacuum renames a new file over it). Only mf's own
// Vacuum moves mf to another file.
func (mf *File) Dup() (*os.File, error) {
	mf.mu.Lock()
	defer mf.mu.Unlock()
	if mf.f == nil {
		return nil, ErrClosed
	}
	return dupFile(mf.f)
}
