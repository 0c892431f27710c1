package bridge

import (
	"errors"
	"fmt"
	"math"
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
//
// The machine's files: machine.go (nodes, stack, run), machine_step.go
// (each opcode), machine_items.go (containers, memo), machine_call.go
// (globals and calls), machine_build.go (BUILD of dtypes and arrays),
// machine_hash.go (Python's key equality), pytext.go (text opcodes).

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
	// nest is how deeply a tuple or frozenset nests tuples and
	// frozensets: 1 for one holding neither, 0 for other objects (see
	// keyNest).
	nest  uint16
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
	// fFrozen: a dict a structured dtype holds as its fields: changing it
	// would change the dtype after it was built.
	fFrozen
	// fViewed: a bytearray an array was built over (numpy's _frombuffer
	// views it, no copy): changing it would change the array after it
	// was built.
	fViewed
)

// opaque is what the machine knows of an object it does not model.
type opaque struct {
	module, name string // what made it: a global, or the type it came from
	why          string // for messages
	trusted      bool   // made by a global the verifier was told to trust
	foreign      bool   // made by (or from) a global outside the allow-list
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
	trust trustSet // globals trusted with any arguments (verify --allow)

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
	// longKeys are the short tokens standing for long keys (hashKey).
	longKeys map[string]string
	// structs are the structured dtypes built from each state
	// (buildDType), by state and item size.
	structs map[structKey]DType
	small   map[int64]ref // interned None, bools and small ints

	// foreign is the first global outside the allow-list the value
	// imports (nil if none): a value built after importing it, even one
	// that discards it, is not plain data.
	foreign *opaque

	// refArena holds the items of the value's containers (see refs).
	refArena []ref
	// interned are the short strings and globals seen by the machine,
	// shared across values (pickles name the same few many times).
	interned map[string]string
	globals  map[[2]string]any
	descrs   map[string]descrResult
	// dtypeNames are the str(dtype) names fromstring accepted.
	dtypeNames map[string]DType

	// maxSlot is the highest memo index written (the verifier's bound on
	// the memo array pickle.load allocates).
	maxSlot int64

	// polled counts the opcodes run, and polledBytes the bytes grown, since
	// Limits.stop was last called (poll); never reset with a value, so
	// that many small values are polled too.
	polled      int
	polledBytes int64
}

// Every pollOps opcodes, or pollBytes bytes built, the machine calls
// Limits.stop (WithInterrupt): often enough that no run goes on for long
// after an interruption, rarely enough to cost nothing measurable.
const (
	pollOps   = 512
	pollBytes = 1 << 20
)

// poll returns Limits.stop's error, if any.
func (m *machine) poll() error {
	m.polled, m.polledBytes = 0, 0
	if m.lim.stop == nil {
		return nil
	}
	return m.lim.stop()
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
	if cap(m.refArena) > 1<<20 {
		m.refArena = nil // a big value's items go
	}
	m.refArena = m.refArena[:0]
	if m.keys != nil {
		clear(m.keys)
	}
	m.longKeys, m.structs = nil, nil
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
	if m.polledBytes += n; m.polledBytes >= pollBytes {
		return m.poll()
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
	items := m.refs(m.stack[k:])
	m.stack = m.stack[:k]
	return items, nil
}

// refs copies rs into the value's arena of refs and returns the copy, its
// capacity its length (appending to it copies it out). The arena is reset
// with the value: nothing of a value is used after the next one starts.
func (m *machine) refs(rs []ref) []ref {
	n := len(m.refArena)
	m.refArena = append(m.refArena, rs...)
	return m.refArena[n:len(m.refArena):len(m.refArena)]
}

// run executes the opcodes of [off, off+n) and returns the one item they
// leave. The memo view must have been reset by the caller.
func (m *machine) run(off, n int64) (ref, error) {
	sc := m.src.scanner(off, off+n)
	var o op
	for !sc.done() {
		if err := sc.nextInto(&o); err != nil {
			return 0, asStruct(err)
		}
		if m.ops++; m.ops > m.lim.MaxOps {
			return 0, limitErr(o.Off, "value has more than %d opcodes", m.lim.MaxOps)
		}
		if m.polled++; m.polled >= pollOps {
			if err := m.poll(); err != nil {
				return 0, err
			}
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
