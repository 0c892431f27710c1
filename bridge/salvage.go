package bridge

// Saving what can be saved of a damaged file (Salvage). The Reader refuses
// such a file whole, as pickle.load would; Salvage walks its entries on its
// own terms instead: each entry frame that parses exactly is decoded alone
// (with a memo of its own), verified as plain data, and written to another
// file by Put. Where the frames themselves are broken, it looks for the next
// byte offset where an entry parses exactly, so that the entries after the
// damage are saved too.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"
	"unicode/utf8"

	"mmpbridge/pyval"
)

// SalvageReport says what Salvage saved and what it could not.
type SalvageReport struct {
	Size  int64           // size of the damaged file
	Saved []SalvagedEntry // in file order, one per key
	Lost  []LostEntry     // in file order
	// Header is why the file's 24-byte header did not parse (nil when it
	// did). Entries are looked for after it all the same.
	Header error
	// Terminator tells whether the file ended with its terminator.
	Terminator bool
	// Skipped counts the deleted entries, padding and index entries passed
	// over (not data); Replaced the live entries a later entry of the same
	// key replaces (pickle.load keeps the last).
	Skipped, Replaced int
}

// SalvagedEntry is an entry Salvage copied.
type SalvagedEntry struct {
	Key    string
	Offset int64 // of the entry (its FRAME opcode) in the damaged file
	Size   int64
}

// LostEntry is an entry, or a range of bytes, Salvage could not save.
type LostEntry struct {
	// Key is the entry's key; "" when no entry could be read at Offset
	// (Size bytes were skipped up to the next entry that parses).
	Key    string
	Offset int64
	Size   int64
	// Err is why: a *FormatError (the bytes do not parse, the value does
	// not decode), or an error wrapping ErrNotPlain, ErrSharedMemo,
	// ErrLimit or ErrUnsupported.
	Err error
}

// OK tells whether every entry was saved.
func (r *SalvageReport) OK() bool { return len(r.Lost) == 0 }

// salvageInMemory is the largest value read into memory to be decoded,
// verified and written from that one copy; larger ones are kept only when
// they are arrays, whose data is copied from the file.
const salvageInMemory = 16 << 20

// Salvage copies to dst every live entry of the file read from ra whose
// frame parses exactly, whose value decodes on its own (with a memo of its
// own: a value that reads another entry's memo slots is refused) and
// verifies as plain data (as Verify judges it: arrays, masked arrays, numpy
// scalars and builtin values; nothing else is copied), and reports by key
// and byte offset what it could not save and why. It accepts a file the
// Reader refuses: a broken header, damaged entries, a missing terminator.
// After bytes that are not an entry it goes on at the next offset where an
// entry parses exactly and its value decodes. It never accepts bytes that do
// not parse as an entry; damage inside an array's data or a string's bytes
// cannot be seen (the format has no checksums) and is copied as it is.
//
// Values are written by Put: a generic value as the pickle bytes that were
// verified (read once), an array re-encoded in dst's profile with its data
// copied from ra (holes stay holes). The error is for I/O errors, dst's
// failures and cancellation; a file with no header and no entry is refused
// with ErrNotMmappickle.
func Salvage(ctx context.Context, ra io.ReaderAt, size int64, dst *File, opts ...Option) (rep *SalvageReport, err error) {
	defer guard(&err, "salvage")()
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	s := &salvager{ctx: ctx, r: &Reader{src: newSource(ra, size), cfg: cfg}, dst: dst,
		rep: &SalvageReport{Size: size}, saved: map[string]int{}, end: size,
		budget: 8*size + 64<<20}
	if err := s.run(); err != nil {
		return nil, err
	}
	for i, e := range s.list {
		if !s.gone[i] {
			s.rep.Saved = append(s.rep.Saved, e)
		}
	}
	return s.rep, nil
}

type salvager struct {
	ctx   context.Context
	r     *Reader
	dst   *File
	rep   *SalvageReport
	saved map[string]int  // key -> index in list
	list  []SalvagedEntry // what was saved, in file order
	gone  []bool          // list[i] was replaced or taken back
	end   int64           // where entries must end: before the terminator, or the file's end
	found bool            // an entry parsed somewhere
	// budget bounds the value bytes run (saving, and looking for entries
	// after damage), counted up to where each run failed: a file of frames
	// nested in frames cannot make the work grow with the square of its
	// size.
	budget int64
}

// spend takes n bytes of work from the budget; false when it is spent.
func (s *salvager) spend(n int64) bool {
	if s.budget < n {
		s.budget = 0
		return false
	}
	s.budget -= n
	return true
}

// errBudget: the work budget is spent (see salvager.budget).
func errBudget(off int64) error {
	return &FormatError{Offset: off, Msg: "salvage stopped here: looking for entries among damaged bytes took more work than the file's size allows", Err: ErrLimit}
}

func (s *salvager) run() error {
	src := s.r.src
	size := src.size
	h, err := src.readAt(0, min(headerSize, size))
	if err != nil {
		return err
	}
	if _, herr := parseHeader(h); herr != nil {
		s.rep.Header = herr
	}
	if size >= headerSize+terminatorSize {
		t, err := src.readAt(size-terminatorSize, terminatorSize)
		if err != nil {
			return err
		}
		if bytes.Equal(t, terminator) {
			s.rep.Terminator, s.end = true, size-terminatorSize
		}
	}
	entries := 0
	for off := int64(headerSize); off < s.end; {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if entries >= s.r.cfg.limits.MaxKeys {
			s.lose("", off, s.end-off, &FormatError{Offset: off, Msg: fmt.Sprintf("more than %d entries", s.r.cfg.limits.MaxKeys), Err: ErrLimit})
			break
		}
		entries++
		if s.budget == 0 {
			s.lose("", off, s.end-off, errBudget(off))
			break
		}
		e, err := s.r.readEntry(off, s.end)
		if err != nil {
			if !isFormatErr(err) {
				return err
			}
			next, stopped, rerr := s.resync(off + 1)
			if rerr != nil {
				return rerr
			}
			if next == size && !s.rep.Terminator && size-off <= terminatorSize {
				if rest, _ := src.readAt(off, size-off); bytes.HasPrefix(terminator, rest) {
					break // the file was cut inside its terminator: no data there
				}
			}
			s.lose(s.keyAt(off), off, next-off, err)
			if stopped {
				s.lose("", next, s.end-next, errBudget(next))
				break
			}
			off = next
			continue
		}
		s.found = true
		if !e.Live {
			s.rep.Skipped++
			off = e.end()
			continue
		}
		decoded, err := s.save(&e)
		if err != nil {
			return err
		}
		if decoded {
			off = e.end()
			continue
		}
		// The value does not decode: its frame length may be the damaged
		// part, so entries may start inside it.
		next, stopped, err := s.resync(off + 1)
		if err != nil {
			return err
		}
		if stopped {
			s.lose("", next, s.end-next, errBudget(next))
			break
		}
		off = next
	}
	if s.rep.Header != nil && !s.found {
		return &FormatError{Offset: 0, Msg: "no mmappickle header and no entry anywhere in the file", Err: ErrNotMmappickle}
	}
	return nil
}

func isFormatErr(err error) bool {
	var fe *FormatError
	return errors.As(err, &fe)
}

// fatalErr tells an error that ends the salvage (reading the file failed,
// cancellation) from one that loses one entry (its bytes do not decode, or
// decode to what is refused).
func fatalErr(err error) bool {
	if isFormatErr(err) {
		return false
	}
	var pe *fs.PathError
	var errno syscall.Errno
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrShrank) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &pe) || errors.As(err, &errno)
}

// keyAt is the key of what looks like an entry's head at off (a FRAME
// opcode, then a key), "" if nothing does.
func (s *salvager) keyAt(off int64) string {
	head, err := s.r.src.readAt(off, min(entryFrameHeader+2+maxKeyLen, s.r.src.size-off))
	if err != nil || len(head) < entryFrameHeader+2 || head[0] != opFrame || head[9] != opShortBinUni {
		return ""
	}
	k := int(head[10])
	if len(head) < entryFrameHeader+2+k {
		return ""
	}
	key := head[entryFrameHeader+2 : entryFrameHeader+2+k]
	if !validKey(key) {
		return ""
	}
	return string(key)
}

// lose records a live entry that could not be saved, or bytes where no
// entry could be read (key "" or, where a FRAME opcode and a key start
// them, that key). An entry lost after one of the same key was saved takes
// that one back out of dst: pickle.load of the undamaged file would have
// given the later value.
func (s *salvager) lose(key string, off, n int64, err error) {
	if key != "" {
		if i, ok := s.saved[key]; ok {
			prev := s.list[i]
			if derr := s.dst.Delete(key); derr == nil {
				s.unsave(key)
				s.rep.Lost = append(s.rep.Lost, LostEntry{Key: key, Offset: prev.Offset, Size: prev.Size,
					Err: &FormatError{Offset: prev.Offset, Key: key, Msg: fmt.Sprintf("replaced by the entry of the same key at offset %d, which could not be saved", off)}})
			}
		}
	}
	s.rep.Lost = append(s.rep.Lost, LostEntry{Key: key, Offset: off, Size: n, Err: err})
}

func (s *salvager) unsave(key string) {
	s.gone[s.saved[key]] = true
	delete(s.saved, key)
}

// resync returns the first offset at or after from where an entry parses
// exactly and its value decodes alone, or s.end. When the budget runs out
// first, it returns where it stopped, and stopped.
func (s *salvager) resync(from int64) (next int64, stopped bool, err error) {
	const chunk = 1 << 20
	src := s.r.src
	for pos := from; pos < s.end; pos += chunk {
		if err := s.ctx.Err(); err != nil {
			return 0, false, err
		}
		b, err := src.readAt(pos, min(chunk+entryFrameHeader+2, s.end-pos))
		if err != nil {
			return 0, false, err
		}
		scan := min(int64(len(b)), chunk)
		for i := int64(0); i < scan; {
			if s.budget == 0 {
				return pos + i, true, nil
			}
			j := bytes.IndexByte(b[i:scan], opFrame)
			if j < 0 {
				break
			}
			q := i + int64(j)
			if s.candidate(pos+q, b[q:]) {
				return pos + q, false, nil
			}
			i = q + 1
		}
	}
	return s.end, false, nil
}

// candidate tells whether an entry parses exactly at off (b holds the bytes
// from off on, at least its head unless the file ends first) and its value
// decodes alone.
func (s *salvager) candidate(off int64, b []byte) bool {
	if len(b) >= entryFrameHeader+2 {
		n := binary.LittleEndian.Uint64(b[1:9])
		if n < entryMinFrame || n > uint64(s.end-off-entryFrameHeader) || b[9] != opShortBinUni {
			return false
		}
	}
	e, err := s.r.readEntry(off, s.end)
	if err != nil || s.budget == 0 {
		return false
	}
	_, _, err = runAlone(s.r.src, e.valueOff, e.valueLen, s.r.cfg.limits)
	s.charge(e.valueOff, e.valueLen, err)
	return err == nil
}

// charge takes from the budget the value bytes a run at off went through:
// all n when it succeeded, up to where it failed otherwise.
func (s *salvager) charge(off, n int64, err error) {
	used := n
	var fe *FormatError
	if err != nil && errors.As(err, &fe) && fe.Offset >= off && fe.Offset-off < n {
		used = fe.Offset - off + 1
	}
	s.spend(used)
}

// save decodes, verifies and copies the live entry e. decoded is false
// when its value does not decode at all (its frame may be damaged); the
// error is for I/O and dst's failures.
func (s *salvager) save(e *Entry) (decoded bool, err error) {
	if e.valueLen <= salvageInMemory {
		return s.saveFrom(e, true)
	}
	decoded, err = s.saveFrom(e, false)
	if err == errNotArray {
		if e.valueLen > s.r.cfg.limits.MaxValueBytes {
			s.lose(e.Key, e.Offset, e.Size, &FormatError{Offset: e.valueOff, Key: e.Key, Msg: fmt.Sprintf("value of %d bytes exceeds the limit of %d", e.valueLen, s.r.cfg.limits.MaxValueBytes), Err: ErrLimit})
			return true, nil
		}
		return s.saveFrom(e, true)
	}
	return decoded, err
}

// errNotArray: a value too big to read into memory at once is not an array.
var errNotArray = errors.New("not an array")

// saveFrom runs e's value once, verifies it and copies it. inMemory: from
// one copy of its bytes, which is what is written; else from the file,
// for arrays only (errNotArray otherwise).
func (s *salvager) saveFrom(e *Entry, inMemory bool) (decoded bool, err error) {
	if s.budget == 0 {
		s.lose(e.Key, e.Offset, e.Size, errBudget(e.Offset))
		return true, nil
	}
	vs, base := s.r.src, e.valueOff
	var raw []byte
	if inMemory {
		b, err := s.r.src.readAt(e.valueOff, e.valueLen)
		if err != nil {
			return false, err
		}
		raw = b
		if s.r.src.data != nil {
			raw = bytes.Clone(b) // a slice of a mapping another process may write
		}
		vs, base = newSource(bytesReaderAt(raw), int64(len(raw))), 0
	}
	shift := func(err error) error {
		var fe *FormatError
		if !errors.As(err, &fe) {
			return err
		}
		c := *fe
		c.Offset += e.valueOff - base
		c.Key = e.Key
		return &c
	}
	memoize, reads, err := memoUse(vs, base, e.valueLen)
	s.charge(base, e.valueLen, err)
	if err != nil {
		if fatalErr(err) {
			return false, err
		}
		s.lose(e.Key, e.Offset, e.Size, shift(err))
		return false, nil
	} else if memoize && reads {
		// MEMOIZE writes at the file-wide memo length, which the
		// entries before this one set: alone, its reads could meet
		// other objects.
		s.lose(e.Key, e.Offset, e.Size, &FormatError{Offset: e.valueOff, Key: e.Key, Msg: "the value reads memo slots that MEMOIZE numbers by the whole file's memo: its meaning depends on the entries before it", Err: ErrSharedMemo})
		return true, nil
	}
	alone := &Reader{src: vs, cfg: s.r.cfg}
	ve := *e
	ve.valueOff = base
	v := newVerifier(alone, nil)
	v.cur = &ve
	m := newMachine(vs, s.r.cfg.limits)
	m.sink, m.trust = v, v.trust
	m.reset(0)
	root, err := m.run(base, e.valueLen)
	s.charge(base, e.valueLen, err)
	if err != nil {
		if fatalErr(err) {
			return false, err
		}
		var fe *FormatError
		if errors.Is(err, ErrLimit) || !errors.As(err, &fe) {
			// Refused, not broken: no entry starts inside it.
			s.lose(e.Key, e.Offset, e.Size, shift(err))
			return true, nil
		}
		if bytes.Contains([]byte(fe.Msg), []byte("Memo value not found")) {
			s.lose(e.Key, e.Offset, e.Size, &FormatError{Offset: fe.Offset + e.valueOff - base, Key: e.Key, Msg: fe.Msg + ": the value reads a memo slot of another entry", Err: ErrSharedMemo})
			return true, nil
		}
		s.lose(e.Key, e.Offset, e.Size, shift(err))
		return false, nil
	}
	v.amplified(&ve)
	if perr := plainError(v); perr != nil {
		s.lose(e.Key, e.Offset, e.Size, shift(perr))
		return true, nil
	}
	var val any
	switch nd := m.at(root); nd.kind {
	case kArray, kMasked:
		val = withSource(nd.x, vs)
	default:
		if !inMemory {
			return true, errNotArray
		}
		ops, _, err := renumberMemo(raw, e.valueOff, 0, 0)
		if err != nil {
			s.lose(e.Key, e.Offset, e.Size, withKey(err, e.Key))
			return true, nil
		}
		val = pyval.Object{Pickle: framed(ops)}
	}
	if err := s.put(e, val); err != nil {
		return true, err
	}
	return true, nil
}

// put writes the verified value of e to dst.
func (s *salvager) put(e *Entry, val any) error {
	if err := s.dst.Put(e.Key, val); err != nil {
		if fatalErr(err) {
			return err // writing dst failed
		}
		s.lose(e.Key, e.Offset, e.Size, err)
		return nil
	}
	if _, ok := s.saved[e.Key]; ok {
		s.unsave(e.Key)
		s.rep.Replaced++
	}
	s.saved[e.Key] = len(s.list)
	s.list = append(s.list, SalvagedEntry{Key: e.Key, Offset: e.Offset, Size: e.Size})
	s.gone = append(s.gone, false)
	return nil
}

// memoUse scans a value's opcodes: does it use MEMOIZE, does it read the
// memo.
func memoUse(src *source, off, n int64) (memoize, reads bool, err error) {
	sc := src.scanner(off, off+n)
	for !sc.done() {
		o, err := sc.next()
		if err != nil {
			return false, false, err
		}
		switch o.Code {
		case opMemoize:
			memoize = true
		case opGet, opBinGet, opLongBinGet:
			reads = true
		}
	}
	return memoize, reads, nil
}

// plainError is the first finding of v that makes a value not plain data
// (as Reader.Plain judges it), nil if none.
func plainError(v *verifier) error {
	for _, s := range v.rep.Structure {
		return &FormatError{Offset: s.Offset, Msg: s.Msg, Err: ErrNotPlain}
	}
	for _, f := range v.rep.Findings {
		switch {
		case f.Kind == Import && !f.Allowed:
			return &FormatError{Offset: f.Offset, Msg: fmt.Sprintf("pickle.load imports %s.%s, a global outside the allow-list", clip(f.Module), clip(f.Name)), Err: ErrNotPlain}
		case f.Kind == NotPlain || f.Kind == Fails || f.Kind == SharedMemo:
			return &FormatError{Offset: f.Offset, Msg: f.Msg, Err: ErrNotPlain}
		}
	}
	return nil
}

// clip shortens a name for a message.
func clip(s string) string {
	if len(s) <= 200 {
		return s
	}
	for n := 200; n > 196; n-- {
		if utf8.RuneStart(s[n]) {
			return s[:n] + "..."
		}
	}
	return s[:200] + "..."
}
