package bridge

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"
)

// This file is the package's one model of pickle.load: an interpreter of
// pickle opcodes with CPython's semantics for the stack, the marks and the
// memo, that builds a graph of symbolic objects instead of running
// anything. It serves reading (arrays are recognised, other values built
// into Go values by values.go), rewriting and verification (verify.go).
//
// Objects are nodes. Each operation either builds what CPython would build
// (a list, a dict with Python's key equality, a numpy dtype whose state is
// exactly what numpy writes, an array that lies in the file), or fails where
// CPython raises (the value cannot be read), or, for a global outside the
// allow-list or an allowed callable given arguments numpy and CPython never
// write, yields an opaque node: something pickle.load builds that this
// package does not model. Opaque nodes are reported to the verifier; they
// are shown as undecoded objects when reading.
//
// A value is run on its own stack (it must leave exactly one item and never
// reach below its start: the entry's key and the entries before it), with
// the memo shared by the whole file: MEMOIZE writes at the memo's length so
// far, and analysis.go checks that no value reads or overwrites a memo slot
// of another entry, so that each value alone is what the whole-file
// pickle.load gives.

// kind is what a node is.
type kind uint8

const (
	kNone kind = iota
	kBool
	kInt // i, or x *big.Int
	kFloat
	kComplex // x complex128
	kStr     // payload at [i, i+n) of the file, or x string when decoded
	kBytes   // payload at [i, i+n) of the file
	kByteArray
	kList
	kTuple
	kDict  // items: k0, v0, k1, v1, ...
	kODict // collections.OrderedDict, items as kDict
	kSet
	kFrozenSet
	kSlice // items: start, stop, step
	kRange // items: start, stop, step
	kGlobal
	kDTypeNew // numpy.dtype(descr, False, True), x *dtypeNew, before BUILD
	kDType    // a built numpy dtype, x DType
	kArrayNew // _reconstruct(ndarray, (0,), b'b'), before BUILD
	kArray    // x *Array
	kMaskedNew
	kMasked     // x *Masked
	kScalar     // x *Scalar
	kFromString // mmappickle's fromstring(bytes, dtype): x *Array of one dimension
	kOpaque     // x *opaque
)

var kindNames = [...]string{
	kNone: "None", kBool: "bool", kInt: "int", kFloat: "float", kComplex: "complex",
	kStr: "str", kBytes: "bytes", kByteArray: "bytearray", kList: "list", kTuple: "tuple",
	kDict: "dict", kODict: "OrderedDict", kSet: "set", kFrozenSet: "frozenset",
	kSlice: "slice", kRange: "range", kGlobal: "global", kDTypeNew: "numpy.dtype",
	kDType: "numpy.dtype", kArrayNew: "numpy.ndarray", kArray: "numpy.ndarray",
	kMaskedNew: "numpy.ma.MaskedArray", kMasked: "numpy.ma.MaskedArray",
	kScalar: "numpy scalar", kFromString: "numpy.ndarray", kOpaque: "object",
}

func (k kind) String() string { return kindNames[k] }

// ref is a node's index in machine.nodes.
type ref int32

// node is one object of the value being built.
type node struct {
	kind  kind
	g     global // kGlobal: which callable
	flags nodeFlags
	i, n  int64 // see kind
	off   int64 // file offset of the opcode that made the node
	items []ref
	x     any
}

type nodeFlags uint8

const (
	// fNoDedup: a dict or set holds keys whose Python equality this package
	// does not model (numpy datetimes, ranges, dtypes, opaque objects):
	// duplicates cannot be told apart, so the value is shown undecoded.
	fNoDedup nodeFlags = 1 << iota
	// fCopied: a bytearray's bytes are a copy that pickle.load makes
	// (counted by the verifier's amplification check).
	fCopied
)

// opaque is what the machine knows of an object it does not model.
type opaque struct {
	module, name string // what made it: a global, or the type it came from
	why          string // for messages
	trusted      bool   // made by a global the verifier was told to trust
}

// dtypeNew is a numpy.dtype(descr, False, True) waiting for its state.
type dtypeNew struct{ descr string }

// sink receives what the verifier reports; nil when reading.
type sink interface {
	imported(o op, module, name string, allowed bool)
	problem(off int64, msg string)
	warning(off int64, msg string)
	copied(n int64) // bytes pickle.load copies (array data, bytearrays)
}

// errStructure marks errors of the file's structure rather than of what a
// value builds: a value that reaches below its start or holds STOP.
var errStructure = errors.New("structure")

// machine runs one value at a time.
type machine struct {
	src   *source
	lim   Limits
	sink  sink
	trust map[[2]string]bool // globals trusted with any arguments (verify --allow)

	// The nodes, in chunks of chunkNodes: growing never copies them.
	chunks [][]node
	count  int
	stack  []ref
	marks  []int
	base   int // stack height where the value started (0, or the header's for a stream)

	// memo is this value's view of the file-wide memo: the slots it wrote.
	memo map[int64]ref
	// memoLen is the file-wide number of memo slots filled before the value,
	// plus the slots the value added: MEMOIZE's index.
	memoLen int64
	// owners, when set, is the file-wide record of which entry wrote each
	// slot (analysis.go); entry is the current entry's number.
	owners *memoOwners
	entry  int32
	stream bool // running the whole file as one pickle (verify of a broken file)

	ops   int64
	built int64 // estimate of the memory the nodes take
	keys  map[ref]string
	small map[int64]ref // interned None, bools and small ints

	// foreign is the first global outside the allow-list the value
	// imports (nil if none): a value built after importing it, even one
	// that discards it, is not plain data.
	foreign *opaque

	// maxSlot is the highest memo index written (the verifier's bound on
	// the memo array pickle.load allocates).
	maxSlot int64
}

func newMachine(src *source, lim Limits) *machine {
	return &machine{src: src, lim: lim.withDefaults(), memo: map[int64]ref{}}
}

// reset prepares the machine for a new value.
func (m *machine) reset(memoLen int64) {
	// Keep the first chunk; the others go (a big value's nodes are not
	// kept alive for the next value).
	if len(m.chunks) > 0 {
		clear(m.chunks[0])
		m.chunks[0] = m.chunks[0][:0]
		m.chunks = m.chunks[:1]
	}
	m.count = 0
	m.stack = m.stack[:0]
	m.marks = m.marks[:0]
	m.base = 0
	clear(m.memo)
	m.memoLen = memoLen
	m.ops, m.built = 0, 0
	m.foreign = nil
	if m.keys != nil {
		clear(m.keys)
	}
	if m.small != nil {
		clear(m.small)
	}
}

// fail is an error of the value: CPython raises here.
func fail(off int64, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Msg: "plain pickle.load fails here: " + fmt.Sprintf(format, args...)}
}

// refuse is an error of the value that CPython may not raise on, but that
// this package will not model (an array changed after it was built, say).
func refuse(off int64, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...), Err: ErrUnsupported}
}

func structErr(off int64, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...), Err: errStructure}
}

func limitErr(off int64, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...), Err: ErrLimit}
}

// grow counts n bytes of memory the value takes beyond its nodes (decoded
// text, copies, big ints, dict keys) against Limits.MaxValueBytes. Nodes
// themselves are bounded by Limits.MaxOps: at most one per opcode.
func (m *machine) grow(off, n int64) error {
	if m.built += n; m.built > m.lim.MaxValueBytes {
		return limitErr(off, "value builds more than %d bytes of objects", m.lim.MaxValueBytes)
	}
	return nil
}

func (m *machine) newNode(nd node) (ref, error) {
	if m.count >= math.MaxInt32 {
		return 0, limitErr(nd.off, "value has too many objects")
	}
	// The first chunk grows as a slice (most values are small); the
	// next ones are made whole.
	switch c := m.count >> chunkShift; {
	case c == 0:
		if len(m.chunks) == 0 {
			m.chunks = append(m.chunks, make([]node, 0, 16))
		}
		m.chunks[0] = append(m.chunks[0], nd)
	case c == len(m.chunks):
		m.chunks = append(m.chunks, make([]node, chunkNodes))
		fallthrough
	default:
		m.chunks[c][m.count&(chunkNodes-1)] = nd
	}
	m.count++
	return ref(m.count - 1), nil
}

const (
	chunkShift = 12
	chunkNodes = 1 << chunkShift
)

func (m *machine) at(r ref) *node { return &m.chunks[r>>chunkShift][r&(chunkNodes-1)] }

// push makes a node and pushes it.
func (m *machine) push(nd node) error {
	r, err := m.newNode(nd)
	if err != nil {
		return err
	}
	m.stack = append(m.stack, r)
	return nil
}

// pushSmall pushes None, a bool or an int that fits an int64. None, the
// bools and the ints CPython caches (-5 to 256) are shared nodes, which
// saves nodes and changes nothing: they compare by value.
func (m *machine) pushSmall(k kind, v int64, off int64) error {
	if k == kInt && (v < -5 || v > 256) {
		return m.push(node{kind: k, i: v, off: off})
	}
	key := v
	switch k {
	case kNone:
		key = 1000
	case kBool:
		key = 1001 + v
	}
	if m.small == nil {
		m.small = map[int64]ref{}
	}
	if r, ok := m.small[key]; ok {
		m.stack = append(m.stack, r)
		return nil
	}
	r, err := m.newNode(node{kind: k, i: v, off: off})
	if err != nil {
		return err
	}
	m.small[key] = r
	m.stack = append(m.stack, r)
	return nil
}

func (m *machine) pushInt(v pyInt, off int64) error {
	if v.big == nil {
		return m.pushSmall(kInt, v.small, off)
	}
	if err := m.grow(off, int64(len(v.big.Bits()))*8); err != nil {
		return err
	}
	return m.push(node{kind: kInt, x: v.big, off: off})
}

// fence is the stack height below which the innermost MARK (or the value's
// start) forbids popping.
func (m *machine) fence() int {
	if len(m.marks) > 0 {
		return m.marks[len(m.marks)-1]
	}
	return m.base
}

// underflow is the error for popping below the fence: inside a value it is
// a broken structure unless a MARK of the value is the fence.
func (m *machine) underflow(o op) error {
	if len(m.marks) > 0 || m.stream {
		return fail(o.Off, "%s: unpickling stack underflow", opName(o.Code))
	}
	return structErr(o.Off, "%s reaches below the start of the value: pickle.load would use the items of the entries before it", opName(o.Code))
}

// pop removes the top item.
func (m *machine) pop(o op) (ref, error) {
	if len(m.stack) <= m.fence() {
		return 0, m.underflow(o)
	}
	r := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	return r, nil
}

// top returns the top item without popping it.
func (m *machine) top(o op) (ref, error) {
	if len(m.stack) <= m.fence() {
		return 0, m.underflow(o)
	}
	return m.stack[len(m.stack)-1], nil
}

// popMark removes the items above the innermost MARK and the MARK.
func (m *machine) popMark(o op) ([]ref, error) {
	if len(m.marks) == 0 {
		if m.stream {
			return nil, fail(o.Off, "%s: could not find MARK", opName(o.Code))
		}
		return nil, structErr(o.Off, "%s without a MARK in the value: pickle.load would use the MARK of the file's header", opName(o.Code))
	}
	k := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	items := append([]ref(nil), m.stack[k:]...)
	m.stack = m.stack[:k]
	return items, nil
}

// run executes the opcodes of [off, off+n) and returns the one item they
// leave. The memo view must have been reset by the caller.
func (m *machine) run(off, n int64) (ref, error) {
	sc := m.src.scanner(off, off+n)
	for !sc.done() {
		o, err := sc.next()
		if err != nil {
			return 0, asStruct(err)
		}
		if m.ops++; m.ops > m.lim.MaxOps {
			return 0, limitErr(o.Off, "value has more than %d opcodes", m.lim.MaxOps)
		}
		if err := m.step(o); err != nil {
			return 0, err
		}
	}
	if len(m.marks) != 0 || len(m.stack) != m.base+1 {
		return 0, structErr(off, "value leaves %d items and %d marks on the stack, not one item", len(m.stack)-m.base, len(m.marks))
	}
	return m.stack[len(m.stack)-1], nil
}

// asStruct marks a scanner error (a bad opcode, a length running past the
// entry) as one of structure.
func asStruct(err error) error {
	var fe *FormatError
	if errors.As(err, &fe) && fe.Err == nil {
		c := *fe
		c.Err = errStructure
		return &c
	}
	return err
}

// step applies one opcode.
func (m *machine) step(o op) error {
	switch o.Code {
	case opMark:
		if len(m.marks) >= m.lim.MaxDepth*16 {
			return limitErr(o.Off, "more than %d open MARKs", m.lim.MaxDepth*16)
		}
		m.marks = append(m.marks, len(m.stack))
		return nil
	case opStop:
		return structErr(o.Off, "STOP inside a value: plain pickle.load stops reading here")
	case opProto, opFrame:
		if m.stream {
			return nil
		}
		return structErr(o.Off, "%s inside a value", opName(o.Code))
	case opPop:
		if len(m.marks) > 0 && m.marks[len(m.marks)-1] == len(m.stack) {
			m.marks = m.marks[:len(m.marks)-1]
			return nil
		}
		_, err := m.pop(o)
		return err
	case opPopMark:
		_, err := m.popMark(o)
		return err
	case opDup:
		r, err := m.top(o)
		if err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opNone:
		return m.pushSmall(kNone, 0, o.Off)
	case opNewTrue, opNewFalse:
		return m.pushSmall(kBool, b2i(o.Code == opNewTrue), o.Off)
	case opBinInt, opBinInt1, opBinInt2:
		return m.pushSmall(kInt, o.Int, o.Off)
	case opInt:
		line, err := m.payload(o)
		if err != nil {
			return err
		}
		v, isBool, err := parseIntLine(line)
		if err != nil {
			return fail(o.Off, "INT: %v", err)
		}
		if isBool {
			return m.pushSmall(kBool, v.small, o.Off)
		}
		return m.pushInt(v, o.Off)
	case opLong:
		line, err := m.payload(o)
		if err != nil {
			return err
		}
		v, err := parseLongLine(line)
		if err != nil {
			return fail(o.Off, "LONG: %v", err)
		}
		return m.pushInt(v, o.Off)
	case opLong1, opLong4:
		b, err := m.payload(o)
		if err != nil {
			return err
		}
		return m.pushInt(decodeLong(b), o.Off)
	case opFloat:
		line, err := m.payload(o)
		if err != nil {
			return err
		}
		f, err := parseFloatLine(line)
		if err != nil {
			return fail(o.Off, "FLOAT: %v", err)
		}
		return m.push(node{kind: kFloat, i: int64(math.Float64bits(f)), off: o.Off})
	case opBinFloat:
		return m.push(node{kind: kFloat, i: int64(math.Float64bits(o.Float)), off: o.Off})
	case opShortBinUni, opBinUnicode, opBinUnicode8:
		return m.pushUnicode(o)
	case opUnicode, opString, opBinString, opShortBinString:
		return m.pushText(o)
	case opShortBinBytes, opBinBytes, opBinBytes8:
		return m.push(node{kind: kBytes, i: o.PayloadOff, n: o.PayloadLen, off: o.Off})
	case opByteArray8:
		if err := m.grow(o.Off, o.PayloadLen); err != nil {
			return err
		}
		m.copied(o.PayloadLen)
		return m.push(node{kind: kByteArray, i: o.PayloadOff, n: o.PayloadLen, off: o.Off, flags: fCopied})
	case opEmptyList:
		return m.push(node{kind: kList, off: o.Off})
	case opEmptyTuple:
		return m.push(node{kind: kTuple, off: o.Off})
	case opEmptyDict:
		return m.push(node{kind: kDict, off: o.Off})
	case opEmptySet:
		return m.push(node{kind: kSet, off: o.Off})
	case opTuple1, opTuple2, opTuple3:
		k := int(o.Code-opTuple1) + 1
		if len(m.stack)-m.fence() < k {
			return m.underflow(o)
		}
		items := append([]ref(nil), m.stack[len(m.stack)-k:]...)
		m.stack = m.stack[:len(m.stack)-k]
		return m.pushContainer(kTuple, items, o.Off)
	case opTuple, opList:
		items, err := m.popMark(o)
		if err != nil {
			return err
		}
		k := kTuple
		if o.Code == opList {
			k = kList
		}
		return m.pushContainer(k, items, o.Off)
	case opDict:
		items, err := m.popMark(o)
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return fail(o.Off, "odd number of items for DICT")
		}
		r, err := m.newNode(node{kind: kDict, off: o.Off})
		if err != nil {
			return err
		}
		if err := m.setItems(o, r, items); err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opFrozenSet:
		items, err := m.popMark(o)
		if err != nil {
			return err
		}
		r, err := m.newNode(node{kind: kFrozenSet, off: o.Off})
		if err != nil {
			return err
		}
		if err := m.addItems(o, r, items); err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opAppend:
		v, err := m.pop(o)
		if err != nil {
			return err
		}
		t, err := m.top(o)
		if err != nil {
			return err
		}
		return m.appendItems(o, t, []ref{v})
	case opAppends, opSetItems, opAddItems:
		return m.markedUpdate(o)
	case opSetItem:
		v, err := m.pop(o)
		if err != nil {
			return err
		}
		k, err := m.pop(o)
		if err != nil {
			return err
		}
		t, err := m.top(o)
		if err != nil {
			return err
		}
		return m.setItems(o, t, []ref{k, v})
	case opGlobal:
		mod, err := m.lineText(o.PayloadOff, o.PayloadLen, o)
		if err != nil {
			return err
		}
		name, err := m.lineText(o.Payload2, o.Payload2L, o)
		if err != nil {
			return err
		}
		return m.pushGlobal(o, mod, name)
	case opStackGlobal:
		nr, err := m.pop(o)
		if err != nil {
			return err
		}
		mr, err := m.pop(o)
		if err != nil {
			return err
		}
		mod, ok1 := m.str(mr)
		name, ok2 := m.str(nr)
		if !ok1 || !ok2 {
			return fail(o.Off, "STACK_GLOBAL requires str")
		}
		return m.pushGlobal(o, mod, name)
	case opReduce:
		args, err := m.pop(o)
		if err != nil {
			return err
		}
		fn, err := m.pop(o)
		if err != nil {
			return err
		}
		r, err := m.call(o, fn, args)
		if err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opNewObj, opNewObjEx:
		var kw ref = -1
		var err error
		if o.Code == opNewObjEx {
			if kw, err = m.pop(o); err != nil {
				return err
			}
		}
		args, err := m.pop(o)
		if err != nil {
			return err
		}
		cls, err := m.pop(o)
		if err != nil {
			return err
		}
		r, err := m.newObj(o, cls, args, kw)
		if err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opObj, opInst:
		items, err := m.popMark(o)
		if err != nil {
			return err
		}
		var cls ref
		if o.Code == opInst {
			mod, err := m.lineText(o.PayloadOff, o.PayloadLen, o)
			if err != nil {
				return err
			}
			name, err := m.lineText(o.Payload2, o.Payload2L, o)
			if err != nil {
				return err
			}
			if err := m.pushGlobal(o, mod, name); err != nil {
				return err
			}
			cls = m.stack[len(m.stack)-1]
			m.stack = m.stack[:len(m.stack)-1]
		} else {
			if len(items) == 0 {
				return fail(o.Off, "OBJ: unpickling stack underflow")
			}
			cls, items = items[0], items[1:]
		}
		r, err := m.instantiate(o, cls, items)
		if err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opBuild:
		state, err := m.pop(o)
		if err != nil {
			return err
		}
		inst, err := m.top(o)
		if err != nil {
			return err
		}
		return m.build(o, inst, state)
	case opGet, opBinGet, opLongBinGet:
		return m.memoGet(o)
	case opPut, opBinPut, opLongBinPut, opMemoize:
		return m.memoPut(o)
	case opExt1, opExt2, opExt4:
		return fail(o.Off, "%s: unregistered extension code %d", opName(o.Code), o.Int)
	case opPersID, opBinPersID:
		return fail(o.Off, "%s: a persistent id, and pickle.load has no persistent_load", opName(o.Code))
	case opNextBuffer:
		return fail(o.Off, "NEXT_BUFFER: out-of-band data, and pickle.load was given no buffers")
	case opReadOnlyBuffer:
		return m.readOnlyBuffer(o)
	}
	return structErr(o.Off, "unexpected opcode 0x%02x", o.Code)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// payload reads an opcode's payload (a text line, a LONG1 body), bounded.
func (m *machine) payload(o op) ([]byte, error) {
	if err := m.grow(o.Off, o.PayloadLen); err != nil {
		return nil, err
	}
	return m.src.readAt(o.PayloadOff, o.PayloadLen)
}

// lineText decodes a GLOBAL or INST line: UTF-8, strict.
func (m *machine) lineText(off, n int64, o op) (string, error) {
	b, err := m.src.readAt(off, n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) { // strict: no surrogates either
		return "", fail(o.Off, "%s: module or name is not UTF-8", opName(o.Code))
	}
	return string(b), nil
}

// pushUnicode pushes a BINUNICODE-family string: UTF-8, surrogates allowed.
func (m *machine) pushUnicode(o op) error {
	b, err := m.src.readAt(o.PayloadOff, o.PayloadLen)
	if err != nil {
		return err
	}
	if i := decodeUTF8Pass(b); i >= 0 {
		return fail(o.Off, "'utf-8' codec can't decode byte 0x%02x in position %d", b[i], i)
	}
	return m.push(node{kind: kStr, i: o.PayloadOff, n: o.PayloadLen, off: o.Off})
}

// pushText pushes a string pickle.load decodes from text or ASCII.
func (m *machine) pushText(o op) error {
	b, err := m.payload(o)
	if err != nil {
		return err
	}
	var s string
	switch o.Code {
	case opUnicode:
		s, err = decodeRawUnicodeEscape(b)
	case opString:
		s, err = decodeStringLine(b)
	default:
		s, err = decodeASCII(b)
	}
	if err != nil {
		return fail(o.Off, "%s: %v", opName(o.Code), err)
	}
	return m.push(node{kind: kStr, i: -1, n: int64(len(s)), x: s, off: o.Off})
}

// str returns the Go (canonical) string of a str node.
func (m *machine) str(r ref) (string, bool) {
	nd := m.at(r)
	if nd.kind != kStr {
		return "", false
	}
	if s, ok := nd.x.(string); ok {
		return s, true
	}
	b, err := m.src.readAt(nd.i, nd.n)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// bytesOf returns the content of a bytes or bytearray node (aliasing the
// mapping when there is one).
func (m *machine) bytesOf(r ref) ([]byte, bool) {
	nd := m.at(r)
	if nd.kind != kBytes && nd.kind != kByteArray {
		return nil, false
	}
	if b, ok := nd.x.([]byte); ok {
		return b, true
	}
	b, err := m.src.readAt(nd.i, nd.n)
	return b, err == nil
}

// intOf returns the value of an int (not a bool) node.
func (m *machine) intOf(r ref) (pyInt, bool) {
	nd := m.at(r)
	if nd.kind != kInt {
		return pyInt{}, false
	}
	if b, ok := nd.x.(*big.Int); ok {
		return pyInt{big: b}, true
	}
	return pyInt{small: nd.i}, true
}

// smallInt returns an int node's value when it fits an int64.
func (m *machine) smallInt(r ref) (int64, bool) {
	v, ok := m.intOf(r)
	if !ok || v.big != nil {
		return 0, false
	}
	return v.small, true
}

func (m *machine) isNone(r ref) bool { return m.at(r).kind == kNone }

func (m *machine) boolOf(r ref) (bool, bool) {
	nd := m.at(r)
	return nd.i != 0, nd.kind == kBool
}

func (m *machine) floatOf(r ref) float64 { return math.Float64frombits(uint64(m.at(r).i)) }

// pushContainer pushes a new list or tuple holding items.
func (m *machine) pushContainer(k kind, items []ref, off int64) error {
	return m.push(node{kind: k, items: items, off: off})
}

// markedUpdate is APPENDS, SETITEMS and ADDITEMS: the items above the MARK
// go into the object below it. With no items nothing happens, whatever the
// object is (CPython returns before looking at it).
func (m *machine) markedUpdate(o op) error {
	if len(m.marks) == 0 {
		if m.stream {
			return fail(o.Off, "%s: could not find MARK", opName(o.Code))
		}
		return structErr(o.Off, "%s without a MARK in the value", opName(o.Code))
	}
	// The object is the item just below the MARK; CPython looks for it
	// even when there are no items.
	if k := m.marks[len(m.marks)-1]; k-1 < m.base {
		if !m.stream {
			return structErr(o.Off, "%s reaches below the start of the value", opName(o.Code))
		}
		return fail(o.Off, "%s: unpickling stack underflow", opName(o.Code))
	}
	items, err := m.popMark(o)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	t := m.stack[len(m.stack)-1]
	switch o.Code {
	case opAppends:
		return m.appendItems(o, t, items)
	case opSetItems:
		if len(items)%2 != 0 {
			return fail(o.Off, "odd number of items for SETITEMS")
		}
		return m.setItems(o, t, items)
	}
	return m.addItems(o, t, items)
}

// appendItems is APPEND(S) on t: list.append/extend for a list.
func (m *machine) appendItems(o op, t ref, items []ref) error {
	nd := m.at(t)
	switch nd.kind {
	case kList:
		nd.items = append(nd.items, items...)
		return nil
	case kOpaque:
		return nil
	case kByteArray:
		m.opaqueNode(t, o.Off, "builtins", "bytearray", fmt.Sprintf("%s on a bytearray (CPython's pickler never writes it)", opName(o.Code)))
		return nil
	case kArray, kMasked, kFromString:
		return refuse(o.Off, "%s on an array after it was built: not modelled", opName(o.Code))
	}
	return fail(o.Off, "%s: %s object has no attribute 'append'", opName(o.Code), nd.kind)
}

// setItems is SETITEM(S) and DICT: key, value pairs into t.
func (m *machine) setItems(o op, t ref, items []ref) error {
	nd := m.at(t)
	switch nd.kind {
	case kDict, kODict:
		for i := 0; i < len(items); i += 2 {
			if err := m.dictSet(o, t, items[i], items[i+1]); err != nil {
				return err
			}
		}
		return nil
	case kList:
		for i := 0; i < len(items); i += 2 {
			if err := m.listSet(o, t, items[i], items[i+1]); err != nil {
				return err
			}
		}
		return nil
	case kOpaque:
		return nil
	case kByteArray:
		m.opaqueNode(t, o.Off, "builtins", "bytearray", "item assignment on a bytearray (CPython's pickler never writes it)")
		return nil
	case kArray, kMasked, kFromString, kArrayNew, kMaskedNew:
		return refuse(o.Off, "%s on an array: pickle.load would change the array, so the file's bytes are not its value", opName(o.Code))
	}
	return fail(o.Off, "%s: '%s' object does not support item assignment", opName(o.Code), nd.kind)
}

// listSet is list[k] = v: k an int (or bool) within the list.
func (m *machine) listSet(o op, t, k, v ref) error {
	kn := m.at(k)
	var i int64
	switch kn.kind {
	case kBool:
		i = kn.i
	case kInt:
		x, ok := m.smallInt(k)
		if !ok {
			return fail(o.Off, "%s: cannot fit 'int' into an index-sized integer", opName(o.Code))
		}
		i = x
	case kSlice:
		m.opaqueNode(t, o.Off, "builtins", "list", "slice assignment to a list (CPython's pickler never writes it)")
		return nil
	default:
		return fail(o.Off, "%s: list indices must be integers or slices, not %s", opName(o.Code), kn.kind)
	}
	items := m.at(t).items
	if i < 0 {
		i += int64(len(items))
	}
	if i < 0 || i >= int64(len(items)) {
		return fail(o.Off, "%s: list assignment index out of range", opName(o.Code))
	}
	items[i] = v
	return nil
}

// addItems is ADDITEMS and FROZENSET: hashable items into a set.
func (m *machine) addItems(o op, t ref, items []ref) error {
	nd := m.at(t)
	switch nd.kind {
	case kSet, kFrozenSet:
		if nd.kind == kFrozenSet && o.Code == opAddItems {
			return fail(o.Off, "ADDITEMS: 'frozenset' object has no attribute 'add'")
		}
		for _, it := range items {
			if err := m.setAdd(o, t, it); err != nil {
				return err
			}
		}
		return nil
	case kOpaque:
		return nil
	}
	return fail(o.Off, "ADDITEMS: '%s' object has no attribute 'add'", nd.kind)
}

// readOnlyBuffer is READONLY_BUFFER: a no-op on bytes, a memoryview of a
// bytearray, an error on anything without the buffer protocol.
func (m *machine) readOnlyBuffer(o op) error {
	t, err := m.top(o)
	if err != nil {
		return err
	}
	switch m.at(t).kind {
	case kBytes:
		m.report(o.Off, "READONLY_BUFFER (protocol 5 buffers are not plain data)")
		return nil
	case kByteArray, kArray, kOpaque:
		m.opaqueNode(t, o.Off, "builtins", "memoryview", "READONLY_BUFFER (protocol 5 buffers are not plain data)")
		return nil
	}
	return fail(o.Off, "READONLY_BUFFER: memoryview: a bytes-like object is required, not '%s'", m.at(t).kind)
}

// opaqueNode turns node r into an opaque object (in place, so every
// reference to it sees the change) and reports why.
func (m *machine) opaqueNode(r ref, off int64, module, name, why string) {
	nd := m.at(r)
	*nd = node{kind: kOpaque, off: nd.off, x: &opaque{module: module, name: name, why: why}}
	if why != "" {
		m.report(off, why)
	}
}

// newOpaque makes an opaque node.
func (m *machine) newOpaque(off int64, module, name, why string, trusted bool) (ref, error) {
	return m.newNode(node{kind: kOpaque, off: off, x: &opaque{module: module, name: name, why: why, trusted: trusted}})
}

// report tells the verifier that what pickle.load does here is not plain
// data.
func (m *machine) report(off int64, msg string) {
	if m.sink != nil {
		m.sink.problem(off, msg)
	}
}

func (m *machine) warn(off int64, msg string) {
	if m.sink != nil {
		m.sink.warning(off, msg)
	}
}

func (m *machine) copied(n int64) {
	if m.sink != nil {
		m.sink.copied(n)
	}
}

// memoIndex returns the slot a GET or PUT names. ok is false when CPython
// raises on the index (not a number, negative, too large).
func (m *machine) memoIndex(o op) (int64, error) {
	if opArgs[o.Code] != argLine {
		return o.Int, nil
	}
	b, err := m.src.readAt(o.PayloadOff, o.PayloadLen)
	if err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, fail(o.Off, "%s: pickle data was truncated", opName(o.Code))
	}
	v, ok := parseMemoLine(b)
	if !ok {
		return 0, fail(o.Off, "%s: invalid literal for int() with base 10", opName(o.Code))
	}
	if !v.IsInt64() {
		return 0, fail(o.Off, "%s: Python int too large to convert to C ssize_t", opName(o.Code))
	}
	i := v.Int64()
	if i < 0 {
		if o.Code == opPut {
			return 0, fail(o.Off, "negative PUT argument")
		}
		return 0, fail(o.Off, "Memo value not found at index %d", i)
	}
	return i, nil
}

func (m *machine) memoGet(o op) error {
	i, err := m.memoIndex(o)
	if err != nil {
		return err
	}
	if r, ok := m.memo[i]; ok {
		m.stack = append(m.stack, r)
		return nil
	}
	if m.owners != nil {
		if e, ok := m.owners.owner(i); ok && e != m.entry {
			return &FormatError{Offset: o.Off, Msg: fmt.Sprintf("uses memo slot %d of the entry at offset %d: pickle.load would give a different value", i, m.owners.entryOffset(e)), Err: ErrSharedMemo}
		}
	}
	return fail(o.Off, "Memo value not found at index %d", i)
}

func (m *machine) memoPut(o op) error {
	r, err := m.top(o)
	if err != nil {
		return err
	}
	i := m.memoLen
	if o.Code != opMemoize {
		if i, err = m.memoIndex(o); err != nil {
			return err
		}
	}
	if m.owners != nil {
		if e, ok := m.owners.owner(i); ok && e != m.entry {
			return &FormatError{Offset: o.Off, Msg: fmt.Sprintf("writes memo slot %d of the entry at offset %d: pickle.load would give a different value", i, m.owners.entryOffset(e)), Err: ErrSharedMemo}
		}
		m.owners.write(i, m.entry)
	}
	if _, ok := m.memo[i]; !ok {
		m.memoLen++
	}
	m.memo[i] = r
	m.maxSlot = max(m.maxSlot, i)
	return nil
}
