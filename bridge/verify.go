package bridge

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"mmpbridge/pyval"

	mmap "github.com/edsrzf/mmap-go"
)

// This file answers, without running anything, the question "what does
// plain pickle.load of this file do?", on the machine of machine.go: the
// whole file in order, deleted entries included, one memo.
//
// A file verifies when plain pickle.load, on numpy 1.x and 2.x, builds only
// numpy arrays and masked arrays of plain dtypes, numpy scalars of those
// dtypes and builtin containers and scalars, and calls nothing but the
// constructors numpy's and CPython's own pickles use, with the arguments
// they write (machine_call.go). What the machine reports as opaque, a value
// that makes pickle.load raise, and entries sharing memo slots all fail.
//
// When the file's structure is broken (a length that swallows the next
// entry, a STOP inside a value) or entries share memo slots, the entries'
// view of the opcodes may differ from pickle.load's, so the file is also
// run as one pickle from byte 0 to its first STOP, as pickle.load reads it.

// FindingKind is what a Finding reports.
type FindingKind uint8

const (
	// Import: pickle.load imports Module.Name here; Allowed tells whether
	// it is one of the modelled callables (or trusted).
	Import FindingKind = iota
	// NotPlain: pickle.load builds something that is not plain data here:
	// an allowed callable given arguments numpy or CPython never write, a
	// container mutated in a way no pickler writes, a protocol-5 buffer.
	NotPlain
	// Fails: plain pickle.load raises here (or this package refuses to
	// model what it would do, such as an array changed after it is built).
	Fails
	// SharedMemo: the entry reads or overwrites another entry's memo slot.
	SharedMemo
	// Warning: plain pickle.load fails on some numpy versions (mmappickle's
	// fromstring on numpy >= 2.3, numpy 2 module names on older numpy).
	// Warnings do not fail verification.
	Warning
)

// Finding is one thing Verify found, located in the file.
type Finding struct {
	Kind   FindingKind
	Offset int64 // file offset of the opcode
	// Entry is the offset of the entry holding the opcode, -1 when outside
	// every entry; Key and Deleted describe that entry.
	Entry   int64
	Key     string
	Deleted bool
	Op      string // the opcode's pickletools name, for Import
	Module  string // for Import
	Name    string
	Allowed bool   // for Import
	Msg     string // for the other kinds
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Size    int64 // file size
	Entries int   // entries between header and terminator, deleted ones included
	Deleted int   // deleted keys
	Padding int   // alignment padding (deleted entries without a key, written before arrays)
	Index   int   // the index for remote readers: its pointer and index entries (index.go)
	// Structure lists what is wrong with the file's structure (empty: the
	// header, the entries and the terminator are sound and every value is a
	// clean opcode sequence). Each error names its byte offset.
	Structure []*FormatError
	// Findings in file order (capped: see Omitted; the counts are exact).
	Findings []Finding
	// Imports counts Import findings, NotAllowed those not allowed;
	// Problems counts NotPlain, Fails and SharedMemo findings.
	Imports, NotAllowed, Problems, Warnings int
	// Omitted counts findings and structure errors found but not listed.
	Omitted int
	// Stream is true when the file was also run as one pickle from byte 0
	// because its structure is broken.
	Stream bool
	// Copied is the number of bytes pickle.load copies out of the file
	// (array data, bytearrays); MemoSlots the size of the memo it keeps.
	Copied, MemoSlots int64
}

// OK tells whether the file verifies: sound structure, every import
// allowed, nothing else found but warnings.
func (r *VerifyReport) OK() bool {
	return len(r.Structure) == 0 && r.NotAllowed == 0 && r.Problems == 0
}

// Caps on what a report lists (the counts stay exact).
const (
	maxVerifyFindings  = 100_000
	maxVerifyStructure = 1000
	// maxMemoSlots bounds the memo index a value may write (machine
	// memoPut): a larger one is refused by reading and fails verification. CPython's
	// _Unpickler_MemoPut grows its memo array to twice the index, 8 bytes
	// a slot, and raises MemoryError when that allocation fails: on a
	// 24 GiB Linux machine without swap (heuristic overcommit) from about
	// index 1.58e9, under `ulimit -v 1048576` (1 GiB) from 66,277,887.
	// Refusing from 2^25 (a 512 MiB memo) accepts only indices CPython
	// allocates wherever it has 512 MiB to spare, and leaves room for
	// files of millions of entries, whose memo indices grow with them.
	maxMemoSlots = 1 << 25
	// amplificationSlack is how many bytes more than a value's own length
	// pickle.load may copy for it before that counts as amplification.
	amplificationSlack = 1 << 16
)

// VerifyFile is Verify of the file name, read through a read-only mapping
// (a 10,000-key file verifies without 10,000s of reads). A file that
// shrinks meanwhile is an error wrapping ErrShrank.
func VerifyFile(name string, trust []pyval.Global, opts ...Option) (*VerifyReport, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	size := st.Size()
	var ra io.ReaderAt = f
	if size > 0 && size <= math.MaxInt {
		if m, err := mmap.MapRegion(f, int(size), mmap.RDONLY, 0, 0); err == nil {
			defer m.Unmap()
			ra = bytesReaderAt(m)
		}
	}
	rep, err := Verify(ra, size, trust, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rep, nil
}

// Verify reports what plain pickle.load of the file read from ra does:
// every global it imports, everything it builds that is not plain data,
// where it would fail, and whether the file's structure is sound. trust
// lists globals to allow with any arguments (their results are not
// checked). It runs nothing. Unlike NewReader it accepts a file whose
// structure is broken, or that is not an mmappickle file at all, and
// reports that in VerifyReport.Structure. The error is for I/O errors.
func Verify(ra io.ReaderAt, size int64, trust []pyval.Global, opts ...Option) (rep *VerifyReport, err error) {
	defer guard(&err, "verify")()
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	r := &Reader{src: newSource(ra, size), cfg: cfg}
	v := newVerifier(r, trust)
	if perr := r.parse(); perr != nil {
		var fe *FormatError
		if !errors.As(perr, &fe) {
			return nil, perr
		}
		v.structure(fe)
		if len(r.entries) == 0 {
			r.entries = salvageEntries(r)
		}
	}
	v.rep.Entries, v.rep.Deleted, v.rep.Padding, v.rep.Index = countEntries(r)
	if err := v.entries(); err != nil {
		return nil, err
	}
	// Where entries share memo slots, or the structure is broken, what
	// each entry does alone is not what pickle.load does: run the file as
	// pickle.load runs it too.
	if len(v.rep.Structure) != 0 || v.shared {
		if err := v.stream(); err != nil {
			return nil, err
		}
	}
	v.finish()
	return v.rep, nil
}

// salvageEntries reads the entries of a file whose terminator is missing
// or damaged, as far as they parse, to attribute findings to keys.
func salvageEntries(r *Reader) []Entry {
	var es []Entry
	for off := int64(headerSize); off < r.src.size && len(es) < r.cfg.limits.MaxKeys; {
		e, err := r.readEntry(off, r.src.size)
		if err != nil {
			break
		}
		es = append(es, e)
		off = e.end()
	}
	return es
}

func countEntries(r *Reader) (n, deleted, padding, index int) {
	for i, e := range r.entries {
		switch {
		case e.Live:
		case e.Key != "":
			deleted++
		case i == 0 && r.hasPointer(), r.isIndexEntry(e):
			index++
		default:
			padding++
		}
	}
	return len(r.entries), deleted, padding, index
}

type warnKey struct {
	entry int64
	msg   string
}

// verifier is the machine's sink during a verification.
type verifier struct {
	r      *Reader
	rep    *VerifyReport
	trust  trustSet
	cur    *Entry           // the entry being run (nil in the stream)
	seen   map[int64]uint8  // offsets already reported, by kind bit (the stream skips them)
	warns  map[warnKey]bool // one warning of a kind per entry
	copy   int64            // bytes the current value copies
	slots  int64
	shared bool // an entry uses another's memo slot
}

func newVerifier(r *Reader, trust []pyval.Global) *verifier {
	return &verifier{r: r, rep: &VerifyReport{Size: r.src.size}, trust: newTrustSet(trust),
		seen: map[int64]uint8{}, warns: map[warnKey]bool{}}
}

func (v *verifier) structure(fe *FormatError) {
	if len(v.rep.Structure) >= maxVerifyStructure {
		v.rep.Omitted++
		return
	}
	v.rep.Structure = append(v.rep.Structure, fe)
}

// add records a finding, attributed to the entry holding it.
func (v *verifier) add(f Finding) {
	bit := uint8(1) << f.Kind
	if v.seen[f.Offset]&bit != 0 {
		return
	}
	e := v.cur
	if e == nil {
		es := v.r.entries
		i := sort.Search(len(es), func(i int) bool { return es[i].end() > f.Offset })
		if i < len(es) && es[i].Offset <= f.Offset {
			e = &es[i]
		}
	}
	f.Entry = -1
	if e != nil {
		f.Entry, f.Key, f.Deleted = e.Offset, e.Key, !e.Live
	}
	switch f.Kind {
	case Import:
		v.rep.Imports++
		if !f.Allowed {
			v.rep.NotAllowed++
		}
	case Warning:
		k := warnKey{f.Entry, f.Msg}
		if v.warns[k] {
			return
		}
		v.warns[k] = true
		v.rep.Warnings++
	default:
		v.rep.Problems++
	}
	if len(v.seen) < maxVerifyFindings {
		v.seen[f.Offset] |= bit
	}
	if len(v.rep.Findings) >= maxVerifyFindings {
		v.rep.Omitted++
		return
	}
	v.rep.Findings = append(v.rep.Findings, f)
}

func (v *verifier) imported(o op, module, name string, allowed bool) {
	v.add(Finding{Kind: Import, Offset: o.Off, Op: opName(o.Code), Module: module, Name: name, Allowed: allowed})
}

func (v *verifier) problem(off int64, msg string) {
	v.add(Finding{Kind: NotPlain, Offset: off, Msg: msg})
}

func (v *verifier) warning(off int64, msg string) {
	v.add(Finding{Kind: Warning, Offset: off, Msg: msg})
}

func (v *verifier) copied(n int64) { v.copy += n }

// failed records the error a value ran into.
func (v *verifier) failed(err error) error {
	var fe *FormatError
	if !errors.As(err, &fe) {
		return err // I/O
	}
	switch {
	case errors.Is(err, errStructure):
		c := *fe
		c.Err = nil
		if v.cur != nil && v.cur.Live {
			c.Key = v.cur.Key
		} else if v.cur != nil {
			c.Msg = fmt.Sprintf("%s at offset %d: %s", entryName(v.cur), v.cur.Offset, c.Msg)
		}
		v.structure(&c)
	case errors.Is(err, ErrSharedMemo):
		v.shared = true
		v.add(Finding{Kind: SharedMemo, Offset: fe.Offset, Msg: fe.Msg})
	default:
		v.add(Finding{Kind: Fails, Offset: fe.Offset, Msg: fe.Msg})
	}
	return nil
}

// entries runs every entry's value, in file order, with the file's memo.
func (v *verifier) entries() error {
	r := v.r
	m := newMachine(r.src, r.cfg.limits)
	m.sink, m.trust = v, v.trust
	owners := &memoOwners{}
	m.owners = owners
	for i := range r.entries {
		e := &r.entries[i]
		v.cur = e
		owners.offsets = append(owners.offsets, e.Offset)
		if !e.Live && !pyUTF8([]byte(e.Key)) {
			// readEntry checks live keys only; pickle.load decodes them all.
			v.add(Finding{Kind: Fails, Offset: e.Offset + entryFrameHeader, Msg: fmt.Sprintf("key %q is not UTF-8: plain pickle.load fails here", e.Key)})
		}
		m.reset(owners.count)
		m.entry = int32(i)
		v.copy = 0
		if _, err := m.run(e.valueOff, e.valueLen); err != nil {
			if err := v.failed(err); err != nil {
				return err
			}
		}
		v.amplified(e)
		v.rep.Copied += v.copy
		v.slots = max(v.slots, m.maxSlot+1)
	}
	v.cur = nil
	return nil
}

// amplified reports a value that makes pickle.load copy much more than it
// holds.
func (v *verifier) amplified(e *Entry) {
	if v.copy > e.valueLen+amplificationSlack {
		v.add(Finding{Kind: NotPlain, Offset: e.valueOff, Msg: fmt.Sprintf("pickle.load copies %d bytes for a value of %d bytes (one object used many times through the memo)", v.copy, e.valueLen)})
	}
}

// ErrNotPlain: loading the value would import something outside the
// allow-list, or call an allowed callable in a way numpy and CPython never
// write (see Verify).
var ErrNotPlain = errors.New("not plain data")

// Plain tells whether key's value is plain data, as Verify judges its
// entry: nil, or an error wrapping ErrNotPlain that names the first
// finding's offset and what pickle.load would import or build there.
// Globals in trust are allowed with any arguments. Plain reads the value
// as it is now; to unpickle it, use PlainPickle, which hands out the very
// bytes it proved.
func (r *Reader) Plain(key string, trust ...pyval.Global) (err error) {
	defer guard(&err, fmt.Sprintf("key %q", key))()
	i, err := r.entryIndex(key)
	if err != nil {
		return err
	}
	info, err := r.info(i)
	if err != nil {
		return err
	}
	return r.provePlain(&r.entries[i], info.memoLen, r.src, trust)
}

// stream runs the file as one pickle from byte 0 to its first STOP, as
// pickle.load reads it, recording what the entries' view missed.
func (v *verifier) stream() error {
	v.rep.Stream = true
	v.cur = nil
	r := v.r
	m := newMachine(r.src, r.cfg.limits)
	m.sink, m.trust, m.stream = v, v.trust, true
	m.lim.MaxOps = max(m.lim.MaxOps, 1<<20)
	m.reset(0)
	sc := r.src.scanner(0, r.src.size)
	for !sc.done() {
		o, err := sc.next()
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				return err
			}
			return nil // pickle.load raises here: nothing after is run
		}
		if o.Code == opStop {
			break
		}
		if m.ops++; m.ops > m.lim.MaxOps {
			v.structure(limitErr(o.Off, "stopped reading the file after %d opcodes (limit)", m.lim.MaxOps))
			break
		}
		if err := m.step(o); err != nil {
			if errors.Is(err, errStructure) || errors.Is(err, ErrLimit) {
				return nil
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				return err
			}
			v.add(Finding{Kind: Fails, Offset: fe.Offset, Msg: fe.Msg})
			return nil // pickle.load raises here
		}
	}
	v.slots = max(v.slots, m.maxSlot+1)
	return nil
}

func (v *verifier) finish() {
	v.rep.MemoSlots = v.slots
}

// pyUTF8 tells whether Python decodes b as UTF-8 with "surrogatepass" (as
// pickle.load decodes SHORT_BINUNICODE): valid UTF-8, surrogates allowed.
func pyUTF8(b []byte) bool { return decodeUTF8Pass(b) < 0 }

// opName is the pickletools name of an opcode.
func opName(c byte) string {
	if s, ok := opNames[c]; ok {
		return s
	}
	return fmt.Sprintf("0x%02x", c)
}

var opNames = map[byte]string{
	opMark: "MARK", opStop: "STOP", opPop: "POP", opPopMark: "POP_MARK", opDup: "DUP",
	opFloat: "FLOAT", opInt: "INT", opBinInt: "BININT", opBinInt1: "BININT1", opLong: "LONG",
	opBinInt2: "BININT2", opNone: "NONE", opPersID: "PERSID", opBinPersID: "BINPERSID",
	opReduce: "REDUCE", opString: "STRING", opBinString: "BINSTRING", opShortBinString: "SHORT_BINSTRING",
	opUnicode: "UNICODE", opBinUnicode: "BINUNICODE", opAppend: "APPEND", opBuild: "BUILD",
	opGlobal: "GLOBAL", opDict: "DICT", opEmptyDict: "EMPTY_DICT", opAppends: "APPENDS",
	opGet: "GET", opBinGet: "BINGET", opInst: "INST", opLongBinGet: "LONG_BINGET", opList: "LIST",
	opEmptyList: "EMPTY_LIST", opObj: "OBJ", opPut: "PUT", opBinPut: "BINPUT", opLongBinPut: "LONG_BINPUT",
	opSetItem: "SETITEM", opTuple: "TUPLE", opEmptyTuple: "EMPTY_TUPLE", opSetItems: "SETITEMS",
	opBinFloat: "BINFLOAT", opProto: "PROTO", opNewObj: "NEWOBJ", opExt1: "EXT1", opExt2: "EXT2",
	opExt4: "EXT4", opTuple1: "TUPLE1", opTuple2: "TUPLE2", opTuple3: "TUPLE3", opNewTrue: "NEWTRUE",
	opNewFalse: "NEWFALSE", opLong1: "LONG1", opLong4: "LONG4", opBinBytes: "BINBYTES",
	opShortBinBytes: "SHORT_BINBYTES", opShortBinUni: "SHORT_BINUNICODE", opBinUnicode8: "BINUNICODE8",
	opBinBytes8: "BINBYTES8", opEmptySet: "EMPTY_SET", opAddItems: "ADDITEMS", opFrozenSet: "FROZENSET",
	opNewObjEx: "NEWOBJ_EX", opStackGlobal: "STACK_GLOBAL", opMemoize: "MEMOIZE", opFrame: "FRAME",
	opByteArray8: "BYTEARRAY8", opNextBuffer: "NEXT_BUFFER", opReadOnlyBuffer: "READONLY_BUFFER",
}
