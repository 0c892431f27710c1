package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file answers the question "what would a plain pickle.load of this
// file import?" without running anything, on the opcode reader of ops.go.
//
// pickle.load executes the file's opcodes in order from byte 0 to the first
// STOP: the header, every entry (a deleted entry's value is built too, then
// popped) and the terminator. Globals are imported by GLOBAL, INST and
// STACK_GLOBAL (module and name are the two strings below the top of the
// stack, resolved here through a model of the stack and of the memo) and by
// EXT1/EXT2/EXT4 (the copyreg extension registry). REDUCE, NEWOBJ, OBJ and
// BUILD call what is already on the stack and import nothing themselves.
//
// When the file's structure is sound (header, entries tiling the file up to
// the terminator, each value a clean opcode sequence ending exactly at its
// trailer) the opcodes of pickle.load are exactly those of the values, so
// each value is scanned on its own and its globals attributed to its key.
// Otherwise the file is also scanned linearly from byte 0, as pickle.load
// reads it, so that a global hidden by a broken structure (a payload length
// that swallows the next entry's bytes) is still reported.

// DefaultVerifyAllow is the allow-list of Verify: the numpy globals of both
// array profiles and of numpy scalars (numpy 1.x and 2.x spellings), and
// harmless builtins. Entries are "module.name" (split at the last dot) or
// "module:name".
var DefaultVerifyAllow = []string{
	"numpy.core.multiarray._reconstruct",
	"numpy._core.multiarray._reconstruct",
	"numpy.core.multiarray.scalar",
	"numpy._core.multiarray.scalar",
	"numpy.ndarray",
	"numpy.dtype",
	"numpy.ma.core._mareconstruct",
	"numpy.ma.core.MaskedArray",
	"numpy.ma.MaskedArray",
	"numpy.core.fromnumeric.reshape",
	"numpy._core.fromnumeric.reshape",
	"numpy.core.multiarray.fromstring",
	"numpy._core.multiarray.fromstring",
	"builtins.set",
	"builtins.frozenset",
	"builtins.complex",
	"builtins.bytearray",
	"builtins.slice",
	"builtins.range",
	"collections.OrderedDict",
}

// ParseAllow splits an allow-list entry, "module.name" (at the last dot) or
// "module:name" (for a dotted name such as "mod:Outer.Inner").
func ParseAllow(s string) (module, name string, err error) {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		module, name = s[:i], s[i+1:]
	} else if i := strings.LastIndexByte(s, '.'); i >= 0 {
		module, name = s[:i], s[i+1:]
	}
	if module == "" || name == "" || strings.ContainsAny(s, "\n\x00") {
		return "", "", fmt.Errorf("allow-list entry %q is not module.name or module:name", s)
	}
	return module, name, nil
}

// MmappickleNumpy23Warning is the warning Verify gives for an array in the
// mmappickle encoding (numpy.core.multiarray.fromstring lost its binary mode).
const MmappickleNumpy23Warning = "mmappickle-profile array: fails to load with plain pickle on numpy >= 2.3"

// VerifyReport is what Verify found.
type VerifyReport struct {
	Size    int64 // file size
	Entries int   // entries between header and terminator, deleted ones included
	Deleted int
	// Structure lists what is wrong with the file's structure (empty: the
	// header, the entries and the terminator are sound and every value is a
	// clean opcode sequence). Each error names its byte offset.
	Structure []*FormatError
	// Globals lists, in file order, every global plain pickle.load would
	// import, and every opcode that imports something that cannot be
	// checked (a dynamic STACK_GLOBAL, an extension code) or needs a
	// persistent_load. Capped (see Omitted); the counts below are exact.
	Globals []GlobalRef
	// Warnings: things that do not make the file unsafe, such as arrays
	// that plain pickle.load cannot build on recent numpy.
	Warnings []VerifyWarning
	// Imports is the number of importing opcodes found, NotAllowed the
	// number of those not allowed (Globals holds the first ones). When
	// Stream is set and findings were omitted, an opcode seen by both
	// scans may be counted twice.
	Imports, NotAllowed int
	// Omitted counts findings (globals, structure errors, warnings) found
	// but not recorded because of the caps on the report's size.
	Omitted int
	// Stream is true when the file was also scanned linearly from byte 0
	// because its structure is broken.
	Stream bool
}

// StructureOK tells whether the file's structure is sound.
func (r *VerifyReport) StructureOK() bool { return len(r.Structure) == 0 }

// OK tells whether plain pickle.load of the file imports only allowed
// globals: the structure is sound and every global is on the allow-list.
func (r *VerifyReport) OK() bool { return r.StructureOK() && r.NotAllowed == 0 }

// GlobalRef is one importing opcode.
type GlobalRef struct {
	Key     string `json:"key"`     // the entry's key ("" when outside any entry)
	Deleted bool   `json:"deleted"` // the entry is deleted: pickle.load still runs it
	InEntry bool   `json:"-"`       // the opcode lies inside an entry
	Entry   int64  `json:"entry_offset"`
	Offset  int64  `json:"offset"` // file offset of the opcode
	Op      string `json:"opcode"` // GLOBAL, INST, STACK_GLOBAL, EXT1, EXT2, EXT4, PERSID, BINPERSID
	Module  string `json:"module"` // "" when unknown
	Name    string `json:"name"`
	// Dynamic: a STACK_GLOBAL whose module or name is not a string known
	// from the file's bytes alone; it cannot be checked.
	Dynamic bool   `json:"dynamic"`
	Allowed bool   `json:"allowed"`
	Note    string `json:"note,omitempty"` // why it cannot be allowed, for the non-import kinds
}

// Where describes the entry of a finding: `key "x"`, `deleted entry at
// offset N (key "x")` or `offset N (outside any entry)`.
func (g GlobalRef) Where() string { return where(g.InEntry, g.Key, g.Deleted, g.Entry, g.Offset) }

func where(inEntry bool, key string, deleted bool, entry, off int64) string {
	switch {
	case !inEntry:
		return fmt.Sprintf("offset %d (outside any entry)", off)
	case !deleted:
		return "key " + strconv.Quote(key)
	case key != "":
		return fmt.Sprintf("deleted entry at offset %d (key %q)", entry, key)
	}
	return fmt.Sprintf("deleted entry at offset %d", entry)
}

// Qualified is "module.name", each part quoted when it is not plain text.
func (g GlobalRef) Qualified() string {
	return quoteName(g.Module) + "." + quoteName(g.Name)
}

// What describes what the opcode imports.
func (g GlobalRef) What() string {
	switch {
	case g.Dynamic:
		return "a dynamic global (cannot be checked)"
	case g.Note != "":
		return g.Note
	}
	return g.Qualified()
}

func quoteName(s string) string {
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// VerifyWarning is a remark on an entry that does not fail the check.
type VerifyWarning struct {
	Key     string `json:"key"`
	Deleted bool   `json:"deleted"`
	Entry   int64  `json:"entry_offset"`
	Msg     string `json:"message"`
}

// Where describes the warning's entry like GlobalRef.Where.
func (w VerifyWarning) Where() string { return where(true, w.Key, w.Deleted, w.Entry, w.Entry) }

// Caps on what a report records (the counts stay exact).
const (
	maxVerifyGlobals   = 100_000 // allowed ones, and again not-allowed ones
	maxVerifyProblems  = 1000
	maxVerifyWarnings  = 10_000
	maxVerifyMemo      = 1 << 18 // memo slots tracked before older entries' are forgotten
	maxVerifyStackSeen = 1 << 16 // stack items tracked; deeper ones count as unknown
)

// Verify reports what plain pickle.load of the file read from ra would
// import, checked against DefaultVerifyAllow plus allow, and whether its
// structure is sound. It never runs anything and reads only opcodes and
// short strings naming globals. Unlike NewReader it accepts a file whose
// structure is broken (or that is not an mmappickle file at all) and reports
// that in VerifyReport.Structure. The error is for I/O errors and bad
// allow-list entries only.
func Verify(ra io.ReaderAt, size int64, allow []string, opts ...Option) (rep *VerifyReport, err error) {
	defer recoverTo(&err, "verify")
	r := &Reader{src: newSource(ra, size), cfg: newConfig(opts)}
	perr := r.parse()
	if perr != nil {
		var fe *FormatError
		if !errors.As(perr, &fe) {
			return nil, perr
		}
		v, err := newVerifier(r, allow)
		if err != nil {
			return nil, err
		}
		v.problem(fe)
		if len(r.entries) == 0 {
			r.entries = salvageEntries(r)
		}
		if err := v.stream(); err != nil {
			return nil, err
		}
		v.rep.Entries, v.rep.Deleted = countEntries(r.entries)
		return v.rep, nil
	}
	return r.Verify(allow)
}

// Verify reports what plain pickle.load of the reader's file would import
// (see the function Verify): every entry is scanned, live and deleted.
func (r *Reader) Verify(allow []string) (rep *VerifyReport, err error) {
	defer recoverTo(&err, "verify")
	v, err := newVerifier(r, allow)
	if err != nil {
		return nil, err
	}
	v.rep.Entries, v.rep.Deleted = countEntries(r.entries)
	for i := range r.entries {
		e := &r.entries[i]
		v.gen = int32(min(i, 1<<30))
		v.cur = e
		if err := v.entry(e); err != nil {
			return nil, err
		}
	}
	v.cur = nil
	if !v.rep.StructureOK() {
		// The entries' view of the opcodes may differ from pickle.load's:
		// read the file as pickle.load does.
		if err := v.stream(); err != nil {
			return nil, err
		}
	}
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
		off = e.End()
	}
	return es
}

func countEntries(es []Entry) (n, deleted int) {
	for _, e := range es {
		if !e.Live {
			deleted++
		}
	}
	return len(es), deleted
}

// verifier holds the state of one verification: the memo is shared by the
// whole file, as it is for pickle.load.
type verifier struct {
	src   *source
	lim   Limits
	r     *Reader
	allow map[[2]string]bool
	rep   *VerifyReport
	seen  map[int64]bool // offsets of recorded globals (the stream scan skips them)

	memo     map[int64]memoVal
	memoLost bool  // slots were forgotten: a missing index is not an error, MEMOIZE's index unknown
	gen      int32 // ordinal of the entry being scanned
	cur      *Entry
	first    *FormatError // the first structure problem of the current value

	keptAllowed, keptDenied int // globals recorded in rep.Globals
}

type memoVal struct {
	it  vitem
	gen int32
}

// vitem is what the model knows of a stack item: a string at a file
// offset, or nothing (n < 0).
type vitem struct {
	off  int64
	n    int32
	kind uint8
}

// String kinds: how pickle.load turns the payload into a str.
const (
	strUTF8   uint8 = iota // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8: UTF-8
	strRawEsc              // UNICODE: raw-unicode-escape
	strQuoted              // STRING: a quoted, escape-decoded line, then ASCII
	strASCII               // BINSTRING, SHORT_BINSTRING: ASCII (pickle.load's default encoding)
)

var unknownItem = vitem{n: -1}

func newVerifier(r *Reader, allow []string) (*verifier, error) {
	v := &verifier{src: r.src, lim: r.cfg.limits, r: r, rep: &VerifyReport{Size: r.src.size},
		allow: map[[2]string]bool{}, seen: map[int64]bool{}, memo: map[int64]memoVal{}}
	for _, lists := range [][]string{DefaultVerifyAllow, allow} {
		for _, a := range lists {
			m, n, err := ParseAllow(a)
			if err != nil {
				return nil, err
			}
			v.allow[[2]string{m, n}] = true
		}
	}
	return v, nil
}

func (v *verifier) problem(fe *FormatError) {
	if len(v.rep.Structure) >= maxVerifyProblems {
		v.rep.Omitted++
		return
	}
	v.rep.Structure = append(v.rep.Structure, fe)
}

// flag notes the first structure problem of the current value.
func (v *verifier) flag(off int64, format string, args ...any) {
	if v.first == nil {
		v.first = formatErr(off, format, args...)
	}
}

// entry checks one entry: its key as pickle.load decodes it, its value's
// opcodes, and whether its array fails on recent numpy.
func (v *verifier) entry(e *Entry) error {
	if !e.Live {
		// readEntry checks live keys only; pickle.load decodes them all.
		k := []byte(e.Key)
		if !pyUTF8(k) {
			v.problem(&FormatError{Offset: e.Offset + entryFrameHeader, Msg: fmt.Sprintf("%s: key %q is not UTF-8: plain pickle.load fails here", where(true, "", true, e.Offset, 0), k)})
		}
	}
	if err := v.value(e); err != nil {
		return err
	}
	a, _ := parseArrayValue(v.src, e.ValueOff, e.ValueLen)
	mmp := false
	switch a := a.(type) {
	case *Array:
		mmp = a.Encoding == Mmappickle
	case *Masked:
		mmp = a.Data.Encoding == Mmappickle || a.Mask.Encoding == Mmappickle
	}
	if mmp {
		if len(v.rep.Warnings) >= maxVerifyWarnings {
			v.rep.Omitted++
		} else {
			v.rep.Warnings = append(v.rep.Warnings, VerifyWarning{Key: e.Key, Deleted: !e.Live, Entry: e.Offset, Msg: MmappickleNumpy23Warning})
		}
	}
	return nil
}

// value scans the opcodes of one value with a fresh stack: they must push
// exactly one item, never reach below their start, and contain no STOP,
// PROTO or FRAME.
func (v *verifier) value(e *Entry) error {
	v.first = nil
	st := &vstack{}
	sc := v.src.scanner(e.ValueOff, e.ValueOff+e.ValueLen)
	for ops := int64(0); !sc.done(); ops++ {
		if ops >= v.lim.MaxOps {
			if v.first == nil {
				v.first = &FormatError{Offset: sc.pos, Msg: fmt.Sprintf("value has more than %d opcodes", v.lim.MaxOps), Err: ErrLimit}
			}
			break
		}
		o, err := sc.next()
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				return err
			}
			if v.first == nil {
				v.first = fe
			}
			break
		}
		fatal, err := v.step(st, o, true)
		if err != nil {
			return err
		}
		if fatal {
			break
		}
	}
	if v.first == nil && (st.height() != 1 || len(st.marks) != 0) {
		v.flag(e.ValueOff, "value leaves %d items and %d marks on the stack, not one item", st.height(), len(st.marks))
	}
	if v.first != nil {
		fe := *v.first
		if e.Live {
			fe.Key = e.Key
		} else {
			fe.Msg = where(true, e.Key, true, e.Offset, 0) + ": " + fe.Msg
		}
		v.problem(&fe)
		v.first = nil
	}
	return nil
}

// stream scans the file linearly from byte 0 to the first STOP, as
// pickle.load reads it, recording globals not found by the entry scans.
func (v *verifier) stream() error {
	v.rep.Stream = true
	v.cur = nil
	v.gen = 0
	v.memo, v.memoLost = map[int64]memoVal{}, false
	st := &vstack{}
	sc := v.src.scanner(0, v.src.size)
	limit := max(v.lim.MaxOps, 1<<20)
	for ops := int64(0); !sc.done(); ops++ {
		if ops >= limit {
			v.problem(&FormatError{Offset: sc.pos, Msg: fmt.Sprintf("stopped reading the file after %d opcodes (limit)", limit), Err: ErrLimit})
			return nil
		}
		o, err := sc.next()
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				return err
			}
			return nil // pickle.load raises here: nothing after is run
		}
		if o.Code == opStop {
			return nil
		}
		if _, err := v.step(st, o, false); err != nil {
			return err
		}
	}
	return nil
}

// vstack models the unpickler's stack: the top items (a window of at most
// maxVerifyStackSeen) and the height of the items below, which count as
// unknown, plus the heights at the open MARKs.
type vstack struct {
	base  int64
	items []vitem
	marks []int64
}

func (s *vstack) height() int64 { return s.base + int64(len(s.items)) }

func (s *vstack) floor() int64 {
	if len(s.marks) == 0 {
		return 0
	}
	return s.marks[len(s.marks)-1]
}

// avail is the number of items above the innermost MARK.
func (s *vstack) avail() int64 { return s.height() - s.floor() }

func (s *vstack) push(it vitem) {
	if len(s.items) >= maxVerifyStackSeen {
		half := len(s.items) / 2
		s.base += int64(half)
		s.items = append(s.items[:0], s.items[half:]...)
	}
	s.items = append(s.items, it)
}

// pop removes k items, never below the innermost MARK; it returns the top
// item popped (unknown when none or not tracked).
func (s *vstack) pop(k int64) vitem {
	k = max(min(k, s.avail()), 0)
	top := unknownItem
	if k > 0 && len(s.items) > 0 {
		top = s.items[len(s.items)-1]
	}
	if n := int64(len(s.items)); k <= n {
		s.items = s.items[:n-k]
	} else {
		s.items = s.items[:0]
		s.base -= k - n
	}
	return top
}

func (s *vstack) top() vitem {
	if len(s.items) == 0 || s.avail() == 0 {
		return unknownItem
	}
	return s.items[len(s.items)-1]
}

// popMark removes the items above the innermost MARK and the MARK; false
// when there is no MARK.
func (s *vstack) popMark() (items int64, ok bool) {
	if len(s.marks) == 0 {
		return 0, false
	}
	items = s.avail()
	s.pop(items)
	s.marks = s.marks[:len(s.marks)-1]
	return items, true
}

// need flags a stack underflow when fewer than k items are above the MARK.
func (v *verifier) need(st *vstack, o op, k int64) {
	if st.avail() < k {
		v.flag(o.Off, "opcode %s needs %d stack items, %d are there", opName(o.Code), k, st.avail())
	}
}

// step applies one opcode to the model. strict: o belongs to a value
// (STOP, PROTO and FRAME are structure errors there). fatal: the value
// cannot be scanned further.
func (v *verifier) step(st *vstack, o op, strict bool) (fatal bool, err error) {
	switch o.Code {
	case opStop:
		if strict {
			v.flag(o.Off, "STOP inside a value: plain pickle.load stops reading here")
		}
	case opProto, opFrame:
		if strict {
			v.flag(o.Off, "opcode %s inside a value", opName(o.Code))
		}
	case opMark:
		if len(st.marks) >= v.lim.MaxDepth {
			if v.first == nil {
				v.first = &FormatError{Offset: o.Off, Msg: fmt.Sprintf("MARKs nested deeper than %d", v.lim.MaxDepth), Err: ErrLimit}
			}
			return true, nil
		}
		st.marks = append(st.marks, st.height())
	case opPop:
		switch {
		case st.avail() > 0:
			st.pop(1)
		case len(st.marks) > 0:
			st.marks = st.marks[:len(st.marks)-1]
		default:
			v.need(st, o, 1)
		}
	case opPopMark:
		if _, ok := st.popMark(); !ok {
			v.flag(o.Off, "POP_MARK without a MARK")
		}
	case opDup:
		v.need(st, o, 1)
		st.push(st.top())
	case opShortBinUni, opBinUnicode, opBinUnicode8:
		st.push(strItem(o, strUTF8))
	case opUnicode:
		st.push(strItem(o, strRawEsc))
	case opString:
		st.push(strItem(o, strQuoted))
	case opShortBinString, opBinString:
		st.push(strItem(o, strASCII))
	case opInt, opBinInt, opBinInt1, opBinInt2, opLong, opLong1, opLong4, opNone, opNewTrue, opNewFalse,
		opFloat, opBinFloat, opBinBytes, opShortBinBytes, opBinBytes8, opByteArray8,
		opEmptyList, opEmptyDict, opEmptyTuple, opEmptySet:
		st.push(unknownItem)
	case opAppend, opBuild:
		v.need(st, o, 2)
		st.pop(1)
	case opSetItem:
		v.need(st, o, 3)
		st.pop(2)
	case opAppends, opSetItems, opAddItems:
		n, ok := st.popMark()
		switch {
		case !ok:
			v.flag(o.Off, "opcode %s without a MARK", opName(o.Code))
		case o.Code == opSetItems && n%2 != 0:
			v.flag(o.Off, "SETITEMS with a key without a value")
		default:
			v.need(st, o, 1)
		}
	case opList, opTuple, opDict, opFrozenSet, opObj, opInst:
		if o.Code == opInst {
			v.lineGlobal(o)
		}
		n, ok := st.popMark()
		switch {
		case !ok:
			v.flag(o.Off, "opcode %s without a MARK", opName(o.Code))
		case o.Code == opDict && n%2 != 0:
			v.flag(o.Off, "DICT with a key without a value")
		case o.Code == opObj && n == 0:
			v.flag(o.Off, "OBJ without a class")
		}
		st.push(unknownItem)
	case opTuple1, opTuple2, opTuple3:
		k := int64(o.Code-opTuple1) + 1
		v.need(st, o, k)
		st.pop(k)
		st.push(unknownItem)
	case opReduce, opNewObj, opNewObjEx:
		k := int64(2)
		if o.Code == opNewObjEx {
			k = 3
		}
		v.need(st, o, k)
		st.pop(k)
		st.push(unknownItem)
	case opGlobal:
		v.lineGlobal(o)
		st.push(unknownItem)
	case opStackGlobal:
		v.need(st, o, 2)
		name := st.pop(1)
		module := st.pop(1)
		m, ok1 := v.resolve(module)
		n, ok2 := v.resolve(name)
		g := GlobalRef{Offset: o.Off, Op: "STACK_GLOBAL", Module: m, Name: n}
		if !ok1 || !ok2 {
			g.Module, g.Name, g.Dynamic = "", "", true
		}
		v.global(g)
		st.push(unknownItem)
	case opExt1, opExt2, opExt4:
		v.record(GlobalRef{Offset: o.Off, Op: opName(o.Code),
			Note: fmt.Sprintf("extension code %d (copyreg extension registry: imports whatever is registered)", o.Int)})
		st.push(unknownItem)
	case opPersID, opBinPersID:
		if o.Code == opBinPersID {
			v.need(st, o, 1)
			st.pop(1)
		}
		v.record(GlobalRef{Offset: o.Off, Op: opName(o.Code),
			Note: "a persistent id (plain pickle.load raises: no persistent_load)"})
		st.push(unknownItem)
	case opGet, opBinGet, opLongBinGet:
		i, ok := v.memoIndex(o)
		it := unknownItem
		if ok {
			m, found := v.memo[i]
			switch {
			case found:
				it = m.it
			case !v.memoLost:
				v.flag(o.Off, "memo index %d is read before it is written: plain pickle.load fails here", i)
			}
		}
		st.push(it)
	case opPut, opBinPut, opLongBinPut, opMemoize:
		v.need(st, o, 1)
		it := st.top()
		if o.Code == opMemoize {
			if v.memoLost {
				clear(v.memo) // the index, len(memo), is unknown
				return false, nil
			}
			v.memoPut(int64(len(v.memo)), it)
			return false, nil
		}
		i, ok := v.memoIndex(o)
		if !ok {
			v.memoLost = true
			clear(v.memo)
			return false, nil
		}
		v.memoPut(i, it)
	case opNextBuffer:
		v.flag(o.Off, "out-of-band buffer (NEXT_BUFFER): plain pickle.load fails here")
		st.push(unknownItem)
	case opReadOnlyBuffer:
		v.need(st, o, 1)
	default:
		v.flag(o.Off, "unexpected opcode 0x%02x", o.Code)
	}
	return false, nil
}

func strItem(o op, kind uint8) vitem {
	if o.PayloadLen > maxGlobalName {
		return unknownItem
	}
	return vitem{off: o.PayloadOff, n: int32(o.PayloadLen), kind: kind}
}

// memoIndex returns the index of a GET or PUT; false when it is not a
// plain decimal number (Python's int() accepts more than this model does).
func (v *verifier) memoIndex(o op) (int64, bool) {
	if opArgs[o.Code] != argLine {
		return o.Int, true
	}
	if o.PayloadLen > 18 || o.PayloadLen == 0 {
		return 0, false
	}
	b, err := v.src.readAt(o.PayloadOff, o.PayloadLen)
	if err != nil {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	i, err := strconv.ParseInt(string(b), 10, 64)
	return i, err == nil
}

// memoPut records a memo write. Past maxVerifyMemo slots, those written
// by earlier entries are forgotten (a later read of them gives an unknown
// item, never a wrong string).
func (v *verifier) memoPut(i int64, it vitem) {
	if _, ok := v.memo[i]; !ok && len(v.memo) >= maxVerifyMemo {
		v.memoLost = true
		for k, m := range v.memo {
			if m.gen < v.gen {
				delete(v.memo, k)
			}
		}
		if len(v.memo) >= maxVerifyMemo {
			return
		}
	}
	v.memo[i] = memoVal{it, v.gen}
}

// text reads a GLOBAL or INST line; false when it is too long to check.
func (v *verifier) text(off, n int64) (string, bool) {
	if n > maxGlobalName {
		return "", false
	}
	b, err := v.src.readAt(off, n)
	return string(b), err == nil
}

// resolve gives the str pickle.load makes of a string item; false when it
// is not known statically (not a string, too long, escapes).
func (v *verifier) resolve(it vitem) (string, bool) {
	if it.n < 0 {
		return "", false
	}
	b, err := v.src.readAt(it.off, int64(it.n))
	if err != nil {
		return "", false
	}
	switch it.kind {
	case strRawEsc: // raw-unicode-escape: Latin-1 but for \u and \U escapes
		if bytes.IndexByte(b, '\\') >= 0 {
			return "", false
		}
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r), true
	case strQuoted:
		if len(b) < 2 || b[0] != b[len(b)-1] || (b[0] != '\'' && b[0] != '"') {
			return "", false
		}
		b = b[1 : len(b)-1]
		if bytes.IndexByte(b, '\\') >= 0 {
			return "", false
		}
	}
	return string(b), true
}

// lineGlobal records the import of GLOBAL or INST (module and name are
// the opcode's two text lines).
func (v *verifier) lineGlobal(o op) {
	m, ok1 := v.text(o.PayloadOff, o.PayloadLen)
	n, ok2 := v.text(o.Payload2, o.Payload2L)
	g := GlobalRef{Offset: o.Off, Op: opName(o.Code), Module: m, Name: n}
	if !ok1 || !ok2 {
		g.Module, g.Name = "", ""
		g.Note = fmt.Sprintf("a global named by a line longer than %d bytes", maxGlobalName)
	}
	v.global(g)
}

// global records an import, allowed when its module and name are listed.
func (v *verifier) global(g GlobalRef) {
	g.Allowed = !g.Dynamic && g.Note == "" && v.allow[[2]string{g.Module, g.Name}]
	v.record(g)
}

// record adds a finding, attributed to the entry holding it.
func (v *verifier) record(g GlobalRef) {
	if v.seen[g.Offset] {
		return
	}
	e := v.cur
	if e == nil {
		es := v.r.entries
		i := sort.Search(len(es), func(i int) bool { return es[i].End() > g.Offset })
		if i < len(es) && es[i].Offset <= g.Offset {
			e = &es[i]
		}
	}
	if e != nil {
		g.InEntry, g.Key, g.Deleted, g.Entry = true, e.Key, !e.Live, e.Offset
	}
	v.rep.Imports++
	if !g.Allowed {
		v.rep.NotAllowed++
	}
	kept := &v.keptAllowed
	if !g.Allowed {
		kept = &v.keptDenied
	}
	if *kept >= maxVerifyGlobals {
		v.rep.Omitted++
		return
	}
	*kept++
	v.seen[g.Offset] = true // only recorded ones: the map stays bounded
	v.rep.Globals = append(v.rep.Globals, g)
}

// pyUTF8 tells whether Python decodes b as UTF-8 with "surrogatepass" (as
// pickle.load decodes SHORT_BINUNICODE): valid UTF-8, surrogates allowed.
func pyUTF8(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			if len(b) >= 3 && b[0] == 0xed && b[1] >= 0xa0 && b[1] <= 0xbf && b[2] >= 0x80 && b[2] <= 0xbf {
				n = 3
			} else {
				return false
			}
		}
		b = b[n:]
	}
	return true
}

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
