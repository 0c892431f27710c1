package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// Plain Go types for Python values that have no Go counterpart. A generic
// (non-array) value decodes to nil (None), bool, int64 or *big.Int (int,
// int64 whenever it fits), float64, complex128, string, []byte (bytes),
// []any (list) or one of these types; numpy scalars decode to the Go scalar
// of their dtype (float32, int8, uint16, complex64, bool, ...).
type (
	// Tuple is a Python tuple.
	Tuple []any
	// Dict is a Python dict or collections.OrderedDict, in insertion order.
	// A key is any value hashable in Python: not a list, Dict, Set or
	// ByteArray, nor a Tuple holding one.
	Dict []DictItem
	// DictItem is one key-value pair of a Dict.
	DictItem struct{ Key, Value any }
	// Set is a Python set, in the order its pickle lists the elements
	// (CPython's iteration order); encodeValue writes them in the order given.
	Set []any
	// FrozenSet is a Python frozenset, ordered like Set.
	FrozenSet []any
	// ByteArray is a Python bytearray.
	ByteArray []byte
)

// Object is a value left undecoded because its pickle references a global
// outside the small allow-list of decodeValue (or a numpy scalar of a dtype
// without Go counterpart). Nothing of it is imported or run. Module and Name
// are the first such global ("?" when it is named by something other than
// two plain strings); Pickle is the value's pickle as stored (opcodes only,
// no PROTO, FRAME or STOP), so that it can be written back verbatim.
type Object struct {
	Module, Name string
	Pickle       []byte
}

// valueGlobals are the globals a decoded value may reference. numpy.dtype is
// only allowed alongside a numpy scalar constructor.
var valueGlobals = map[string]bool{
	"builtins.set":                  true,
	"builtins.frozenset":            true,
	"builtins.complex":              true,
	"builtins.bytearray":            true,
	"collections.OrderedDict":       true,
	"numpy.core.multiarray.scalar":  true,
	"numpy._core.multiarray.scalar": true,
	"numpy.dtype":                   true,
}

// decodeValue decodes the value pickle occupying file bytes [off, off+n):
// opcodes only, as mmappickle stores a value (no PROTO, FRAME or STOP).
//
// The opcodes are checked first without reading any payload (see scanValue);
// a value referencing a global outside valueGlobals comes back as an Object.
// Otherwise the bytes are read (at most lim.MaxValueBytes) and decoded with
// gopickle, each allowed global and each set opcode replaced beforehand by a
// class of this package (so gopickle builds no Go map from pickle data), and
// the result is converted to plain Go values (see converter): a container
// the pickle shares through its memo is shared in the result, one holding
// itself is an error, and so is an unhashable dict key or set element.
// Duplicate keys of a crafted pickle are kept as they come. Errors are
// *FormatErrors; memory use is proportional to n.
func decodeValue(src *source, off, n int64, lim Limits) (v any, err error) {
	lim = lim.withDefaults()
	if off < 0 || n < 0 || off > src.size || n > src.size-off {
		return nil, formatErr(max(off, 0), "value of %d bytes at offset %d runs past the end of the file", n, off)
	}
	if n > lim.MaxValueBytes {
		return nil, &FormatError{Offset: off, Msg: fmt.Sprintf("a %d-byte value exceeds the limit of %d bytes", n, lim.MaxValueBytes), Err: ErrLimit}
	}
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, formatErr(off, "cannot decode value: %s", clip(fmt.Sprint(p)))
		}
	}()
	s, err := scanValue(src, off, n, lim)
	if err != nil {
		return nil, err
	}
	raw, err := src.readAt(off, n)
	if err != nil {
		return nil, err
	}
	opaque := func(module, name string) (any, error) {
		p := raw
		if src.data != nil { // raw aliases the file's mapping
			p = bytes.Clone(raw)
		}
		return Object{Module: module, Name: name, Pickle: p}, nil
	}
	if s.opaque != nil {
		return opaque(s.opaque[0], s.opaque[1])
	}
	u := pickle.NewUnpickler(bytes.NewReader(s.rewrite(raw, off)))
	u.FindClass = findValueClass
	x, err := u.Load()
	var oe *opaqueError
	if errors.As(err, &oe) {
		return opaque(oe.module, oe.name)
	}
	if err != nil {
		return nil, formatErr(off, "cannot decode value: %s", clip(err.Error()))
	}
	// A value without shared containers yields at most one Go value per
	// byte; bound the expansion of containers shared through the memo
	// (a 200-byte pickle can otherwise expand to millions of lists).
	clim := lim
	clim.MaxOps = min(lim.MaxOps, max(n, 1<<16))
	c := converter{off: off, lim: clim, done: map[any]converted{}, busy: map[any]bool{}}
	r, err := c.convert(x, 0)
	if errors.As(err, &oe) {
		return opaque(oe.module, oe.name)
	}
	if err != nil {
		return nil, err
	}
	return r.v, nil
}

// clip shortens a message from gopickle, which may print a container,
// before the first pointer it prints (which would differ between runs).
func clip(s string) string {
	if i := strings.Index(s, "(0x"); i >= 0 {
		s = s[:i] + "..."
	}
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// strRef locates a string payload in the file; n < 0: not a known string.
type strRef struct{ off, n int64 }

var noStr = strRef{n: -1}

// memoSlot is what scanValue knows of a memo entry.
type memoSlot struct {
	depth int32
	str   strRef
}

// valueScan checks a value's opcodes before anything is decoded. It keeps a
// model of the unpickler's stack in which each item is only the bound of its
// container nesting, and notes the string pushed by the last two pushes, to
// name the global of a STACK_GLOBAL.
type valueScan struct {
	src    *source
	lim    Limits
	stack  []int32 // nesting bound of each stack item, or isClass
	marks  []int   // stack heights at each open MARK
	memo   map[int64]memoSlot
	last   strRef // the string on top of the stack, if known
	prev   strRef // the string under it, if known
	opaque *[2]string
	scalar bool // a numpy scalar constructor is referenced
	dtype  bool // numpy.dtype is referenced
	// unsupported is the first construct the decoder does not take in a
	// value that is not opaque (calling something other than a class).
	unsupported error
	subs        []substitution
}

// substitution replaces the opcode at file bytes [off, end) before gopickle
// sees the value.
type substitution struct {
	off, end int64
	with     []byte
}

// scanValue checks every opcode of the value at [off, off+n) against the
// limits and the memo, without reading payloads (but for the few short
// strings naming a global). It also plans the opcode substitutions that
// make gopickle build this package's classes.
func scanValue(src *source, off, n int64, lim Limits) (*valueScan, error) {
	s := &valueScan{src: src, lim: lim, memo: map[int64]memoSlot{}, last: noStr, prev: noStr}
	sc := src.scanner(off, off+n)
	var ops int64
	for !sc.done() {
		o, err := sc.next()
		if err != nil {
			return nil, err
		}
		if ops++; ops > lim.MaxOps {
			return nil, &FormatError{Offset: o.Off, Msg: fmt.Sprintf("value has more than %d opcodes", lim.MaxOps), Err: ErrLimit}
		}
		if err := s.step(o); err != nil {
			return nil, err
		}
	}
	if len(s.stack) != 1 || len(s.marks) != 0 {
		return nil, formatErr(off, "value leaves %d items and %d marks on the stack, not one item", len(s.stack), len(s.marks))
	}
	if s.opaque == nil && s.dtype && !s.scalar {
		s.opaque = &[2]string{"numpy", "dtype"}
	}
	if s.opaque == nil && s.unsupported != nil {
		return nil, s.unsupported
	}
	return s, nil
}

// isClass marks a stack item pushed by GLOBAL or STACK_GLOBAL.
const isClass = -1

// callee checks that the item i places below the stack top is a class: the
// only thing the decoded pickle of a value may call.
func (s *valueScan) callee(o op, i int) {
	if j := len(s.stack) - 1 - i; j >= s.floor() && s.stack[j] != isClass && s.unsupported == nil {
		s.unsupported = formatErr(o.Off, "opcode 0x%02x calls something other than a class", o.Code)
	}
}

// floor is the stack height below which the innermost MARK forbids popping.
func (s *valueScan) floor() int {
	if len(s.marks) == 0 {
		return 0
	}
	return s.marks[len(s.marks)-1]
}

func (s *valueScan) push(o op, d int32) error {
	if int(d) > s.lim.MaxDepth {
		return &FormatError{Offset: o.Off, Msg: fmt.Sprintf("containers nested deeper than %d", s.lim.MaxDepth), Err: ErrLimit}
	}
	s.stack = append(s.stack, d)
	return nil
}

// pop removes k items above the innermost MARK and returns the largest
// nesting bound among them.
func (s *valueScan) pop(o op, k int) (int32, error) {
	if len(s.stack)-s.floor() < k {
		return 0, formatErr(o.Off, "opcode 0x%02x: stack underflow", o.Code)
	}
	var d int32
	for _, x := range s.stack[len(s.stack)-k:] {
		d = max(d, x) // isClass counts as 0
	}
	s.stack = s.stack[:len(s.stack)-k]
	return d, nil
}

// popMark removes the items above the innermost MARK, and the MARK.
func (s *valueScan) popMark(o op) (int32, error) {
	if len(s.marks) == 0 {
		return 0, formatErr(o.Off, "opcode 0x%02x without a MARK", o.Code)
	}
	d, _ := s.pop(o, len(s.stack)-s.floor())
	s.marks = s.marks[:len(s.marks)-1]
	return d, nil
}

// pairs checks that DICT and SETITEMS find keys and values in pairs.
func (s *valueScan) pairs(o op) error {
	if (o.Code == opDict || o.Code == opSetItems) && len(s.marks) > 0 && (len(s.stack)-s.floor())%2 != 0 {
		return formatErr(o.Off, "opcode 0x%02x: a key without a value", o.Code)
	}
	return nil
}

// raise notes that the item on top of the stack now holds items nested d deep.
func (s *valueScan) raise(o op, d int32) error {
	if len(s.stack) == s.floor() {
		return formatErr(o.Off, "opcode 0x%02x: stack underflow", o.Code)
	}
	top := &s.stack[len(s.stack)-1]
	if d+1 > *top {
		if int(d+1) > s.lim.MaxDepth {
			return &FormatError{Offset: o.Off, Msg: fmt.Sprintf("containers nested deeper than %d", s.lim.MaxDepth), Err: ErrLimit}
		}
		*top = d + 1
	}
	return nil
}

// step applies one opcode to the model.
func (s *valueScan) step(o op) (err error) {
	str := noStr // the string this opcode pushes, if any
	keep := false
	var d int32
	switch o.Code {
	case opFrame, opProto, opStop, opPersID, opBinPersID, opExt1, opExt2, opExt4, opNextBuffer, opReadOnlyBuffer:
		return formatErr(o.Off, "opcode 0x%02x is not allowed inside a value", o.Code)
	case opMark:
		if len(s.marks) >= s.lim.MaxDepth {
			return &FormatError{Offset: o.Off, Msg: fmt.Sprintf("MARKs nested deeper than %d", s.lim.MaxDepth), Err: ErrLimit}
		}
		s.marks = append(s.marks, len(s.stack))
	case opPop:
		if len(s.marks) > 0 && s.floor() == len(s.stack) {
			s.marks = s.marks[:len(s.marks)-1]
		} else {
			_, err = s.pop(o, 1)
		}
	case opPopMark:
		_, err = s.popMark(o)
	case opDup:
		if len(s.stack) == s.floor() {
			return formatErr(o.Off, "DUP of an empty stack")
		}
		s.stack = append(s.stack, s.stack[len(s.stack)-1])
	case opShortBinUni, opBinUnicode, opBinUnicode8:
		str = strRef{o.PayloadOff, o.PayloadLen}
		err = s.push(o, 0)
	case opFloat, opInt, opBinInt, opBinInt1, opLong, opBinInt2, opNone, opString, opBinString,
		opShortBinString, opUnicode, opBinFloat, opNewTrue, opNewFalse, opBinBytes, opShortBinBytes,
		opBinBytes8, opByteArray8:
		err = s.push(o, 0)
	case opLong1, opLong4:
		if o.PayloadLen == 0 { // gopickle cannot decode an empty LONG (0)
			s.subs = append(s.subs, substitution{o.Off, o.End, []byte{opBinInt1, 0}})
		}
		err = s.push(o, 0)
	case opEmptyList, opEmptyDict, opEmptyTuple:
		err = s.push(o, 1)
	case opEmptySet:
		s.subs = append(s.subs, substitution{o.Off, o.End, []byte("(immpbridge\nEMPTY_SET\n")})
		err = s.push(o, 1)
	case opAppend:
		if d, err = s.pop(o, 1); err == nil {
			err = s.raise(o, d)
		}
	case opSetItem:
		if d, err = s.pop(o, 2); err == nil {
			err = s.raise(o, d)
		}
	case opAppends, opSetItems, opAddItems:
		if err = s.pairs(o); err != nil {
			return err
		}
		if d, err = s.popMark(o); err == nil {
			err = s.raise(o, d)
		}
	case opFrozenSet, opList, opTuple, opDict, opObj, opInst:
		if o.Code == opObj {
			if len(s.stack) == s.floor() {
				return formatErr(o.Off, "OBJ without a class")
			}
			s.callee(o, len(s.stack)-1-s.floor())
		}
		if err = s.pairs(o); err != nil {
			return err
		}
		if o.Code == opFrozenSet {
			s.subs = append(s.subs, substitution{o.Off, o.End, []byte("immpbridge\nFROZENSET\n")})
		}
		if o.Code == opInst {
			s.global(o, s.line(o.PayloadOff, o.PayloadLen), s.line(o.Payload2, o.Payload2L))
		}
		if d, err = s.popMark(o); err == nil {
			err = s.push(o, d+1)
		}
	case opTuple1, opTuple2, opTuple3:
		if d, err = s.pop(o, int(o.Code-opTuple1)+1); err == nil {
			err = s.push(o, d+1)
		}
	case opReduce, opNewObj, opNewObjEx:
		k := 2
		if o.Code == opNewObjEx {
			k = 3
		}
		s.callee(o, k-1)
		if o.Code != opReduce && s.unsupported == nil { // no class here has __new__
			s.unsupported = formatErr(o.Off, "opcode 0x%02x is not supported in a value", o.Code)
		}
		if d, err = s.pop(o, k); err == nil {
			err = s.push(o, d)
		}
	case opBuild:
		if d, err = s.pop(o, 1); err == nil {
			err = s.raise(o, d-1)
		}
	case opGlobal:
		s.global(o, s.line(o.PayloadOff, o.PayloadLen), s.line(o.Payload2, o.Payload2L))
		err = s.push(o, isClass)
	case opStackGlobal:
		module, name := "?", "?"
		if s.last.n >= 0 && s.prev.n >= 0 {
			module, name = s.line(s.prev.off, s.prev.n), s.line(s.last.off, s.last.n)
		}
		if _, err = s.pop(o, 2); err == nil {
			s.global(o, module, name)
			err = s.push(o, isClass)
		}
	case opGet, opBinGet, opLongBinGet:
		i, err := memoIndex(s.src, o)
		if err != nil {
			return err
		}
		m, ok := s.memo[i]
		if !ok {
			return formatErr(o.Off, "memo index %d is read before it is written", i)
		}
		str = m.str
		err = s.push(o, m.depth)
		if err != nil {
			return err
		}
	case opPut, opBinPut, opLongBinPut, opMemoize:
		i := int64(len(s.memo))
		if o.Code != opMemoize {
			if i, err = memoIndex(s.src, o); err != nil {
				return err
			}
		}
		if len(s.stack) == s.floor() {
			return formatErr(o.Off, "memo write with an empty stack")
		}
		s.memo[i] = memoSlot{s.stack[len(s.stack)-1], s.last}
		keep = true
	default:
		return formatErr(o.Off, "unexpected opcode 0x%02x", o.Code)
	}
	if err != nil {
		return err
	}
	switch {
	case str.n >= 0:
		s.prev, s.last = s.last, str
	case !keep:
		s.prev, s.last = noStr, noStr
	}
	return nil
}

// maxGlobalName bounds the module and name strings read for STACK_GLOBAL.
const maxGlobalName = 1024

// line returns the text at [off, off+n) of the file, "?" when too long.
func (s *valueScan) line(off, n int64) string {
	if n > maxGlobalName {
		return "?"
	}
	b, err := s.src.readAt(off, n)
	if err != nil {
		return "?"
	}
	return string(b)
}

// global notes a referenced global: the first one outside the allow-list
// makes the value opaque; an allowed one is replaced by this package's class.
func (s *valueScan) global(o op, module, name string) {
	qual := module + "." + name
	if !valueGlobals[qual] {
		if s.opaque == nil {
			s.opaque = &[2]string{module, name}
		}
		return
	}
	switch qual {
	case "numpy.dtype":
		s.dtype = true
	case "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar":
		s.scalar = true
	}
	with := []byte{o.Code} // GLOBAL or INST
	if o.Code == opStackGlobal {
		with = []byte{opPop, opPop, opGlobal}
	}
	with = append(with, "mmpbridge\n"+qual+"\n"...)
	s.subs = append(s.subs, substitution{o.Off, o.End, with})
}

// memoIndex returns the memo index argument of a PUT or GET opcode.
func memoIndex(src *source, o op) (int64, error) {
	if opArgs[o.Code] != argLine {
		return o.Int, nil
	}
	b, err := src.readAt(o.PayloadOff, o.PayloadLen)
	if err != nil {
		return 0, err
	}
	i, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || i < 0 {
		return 0, formatErr(o.Off, "bad memo index %q", b)
	}
	return i, nil
}

// rewrite returns the program gopickle runs: PROTO 4, the value with its
// substitutions applied, STOP. raw holds file bytes [off, off+len(raw)).
func (s *valueScan) rewrite(raw []byte, off int64) []byte {
	out := make([]byte, 0, len(raw)+3+32*len(s.subs))
	out = append(out, opProto, 4)
	pos := off
	for _, sub := range s.subs {
		out = append(out, raw[pos-off:sub.off-off]...)
		out = append(out, sub.with...)
		pos = sub.end
	}
	out = append(out, raw[pos-off:]...)
	return append(out, opStop)
}

// opaqueError: the value holds something decodeValue returns as an Object.
type opaqueError struct{ module, name string }

func (e *opaqueError) Error() string { return "cannot represent " + e.module + "." + e.name }

// pyClass is a class findValueClass gives gopickle.
type pyClass struct {
	module, name string
	call         func(args []any) (any, error)
}

func (c *pyClass) Call(args ...any) (any, error) {
	v, err := c.call(args)
	if err != nil {
		err = fmt.Errorf("%s.%s(): %w", c.module, c.name, err)
	}
	return v, err
}

// pySet, pyFrozenSet and pyODict are what gopickle builds for sets, frozensets
// and OrderedDicts: ordered, and with no Go map keyed by pickle data.
type (
	pySet       struct{ items []any }
	pyFrozenSet struct{ items []any }
	pyODict     struct{ items []types.DictEntry }
)

func (s *pySet) Add(v any)      { s.items = append(s.items, v) }
func (d *pyODict) Set(k, v any) { d.items = append(d.items, types.DictEntry{Key: k, Value: v}) }

// iterable returns the items of a list, tuple or set argument.
func iterable(args []any) ([]any, error) {
	if len(args) > 1 {
		return nil, fmt.Errorf("%d arguments given", len(args))
	}
	if len(args) == 0 {
		return nil, nil
	}
	switch x := args[0].(type) {
	case *types.List:
		return append([]any(nil), *x...), nil
	case *types.Tuple:
		return append([]any(nil), *x...), nil
	case *pySet:
		return append([]any(nil), x.items...), nil
	case *pyFrozenSet:
		return append([]any(nil), x.items...), nil
	}
	return nil, errors.New("argument is not a list, tuple or set")
}

// valueClasses are the classes gopickle may call, under the names the
// substitutions of scanValue give them (in module "mmpbridge").
var valueClasses = map[string]func(args []any) (any, error){
	"EMPTY_SET": func([]any) (any, error) { return &pySet{}, nil },
	"FROZENSET": func(args []any) (any, error) { return &pyFrozenSet{items: args}, nil },
	"builtins.set": func(args []any) (any, error) {
		items, err := iterable(args)
		return &pySet{items}, err
	},
	"builtins.frozenset": func(args []any) (any, error) {
		items, err := iterable(args)
		return &pyFrozenSet{items}, err
	},
	"builtins.complex": func(args []any) (any, error) {
		var p [2]float64
		if len(args) > 2 {
			return nil, fmt.Errorf("%d arguments given", len(args))
		}
		for i, a := range args {
			switch a := a.(type) {
			case float64:
				p[i] = a
			case int:
				p[i] = float64(a)
			default:
				return nil, fmt.Errorf("argument of type %T", a)
			}
		}
		return complex(p[0], p[1]), nil
	},
	"builtins.bytearray": func(args []any) (any, error) {
		if len(args) == 0 {
			return ByteArray{}, nil
		}
		if b, ok := args[0].([]byte); ok && len(args) == 1 {
			return ByteArray(bytes.Clone(b)), nil // b may be shared through the memo
		}
		return nil, errors.New("arguments other than one bytes")
	},
	"collections.OrderedDict": func(args []any) (any, error) {
		if len(args) != 0 {
			return nil, fmt.Errorf("%d arguments given", len(args))
		}
		return &pyODict{}, nil
	},
	"numpy.dtype": func(args []any) (any, error) {
		if len(args) == 0 {
			return nil, errors.New("no arguments")
		}
		descr, _ := args[0].(string)
		return &npDType{descr: descr}, nil
	},
	"numpy.core.multiarray.scalar":  npScalar("numpy.core.multiarray"),
	"numpy._core.multiarray.scalar": npScalar("numpy._core.multiarray"),
}

func findValueClass(module, name string) (any, error) {
	f, ok := valueClasses[name]
	if !ok || module != "mmpbridge" {
		return nil, fmt.Errorf("global %s.%s is not allowed", module, name)
	}
	c := &pyClass{module: "builtins", name: "set", call: f}
	if name == "FROZENSET" {
		c.name = "frozenset"
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		c.module, c.name = name[:i], name[i+1:]
	}
	return c, nil
}

// npDType is a numpy.dtype as a numpy scalar's pickle builds it:
// dtype(descr, False, True) then BUILD with (version, byteorder, subarray,
// names, fields, ...).
type npDType struct {
	descr string
	order byte // '<', '>', '|' or '='; 0 before BUILD
	plain bool // BUILD gave no subarray, names or fields
}

func (d *npDType) PySetState(state any) error {
	t, ok := state.(*types.Tuple)
	if !ok || len(*t) < 5 {
		return errors.New("numpy.dtype: unexpected state")
	}
	bo, _ := (*t)[1].(string)
	if len(bo) != 1 {
		return errors.New("numpy.dtype: unexpected byte order")
	}
	d.order = bo[0]
	d.plain = (*t)[2] == nil && (*t)[3] == nil && (*t)[4] == nil
	return nil
}

// npScalar returns module.scalar(dtype, raw bytes): the Go scalar of the
// dtype for booleans, integers, floats and complex numbers of Go's sizes
// (byte order '>' is big-endian, any other little-endian), an opaqueError
// for any other dtype.
func npScalar(module string) func(args []any) (any, error) {
	return func(args []any) (any, error) { return scalarOf(module, args) }
}

func scalarOf(module string, args []any) (any, error) {
	opaque := &opaqueError{module, "scalar"}
	if len(args) != 2 {
		return nil, opaque
	}
	d, ok1 := args[0].(*npDType)
	b, ok2 := args[1].([]byte)
	if !ok1 || !ok2 || !d.plain || len(d.descr) < 2 {
		return nil, opaque
	}
	kind, size := d.descr[0], d.descr[1:]
	if strings.IndexByte("<>|=", kind) >= 0 { // an explicit order in the descr
		kind, size = size[0], size[1:]
	}
	n, err := strconv.Atoi(size)
	if err != nil || !strings.Contains(" b1 i1 i2 i4 i8 u1 u2 u4 u8 f4 f8 c8 c16 ", " "+string(kind)+size+" ") {
		return nil, opaque
	}
	if n != len(b) {
		return nil, fmt.Errorf("numpy scalar of dtype %s from %d bytes", d.descr, len(b))
	}
	big := d.order == '>'
	u := word(b, big)
	switch string(kind) + size {
	case "b1":
		return u != 0, nil
	case "i1":
		return int8(u), nil
	case "i2":
		return int16(u), nil
	case "i4":
		return int32(u), nil
	case "i8":
		return int64(u), nil
	case "u1":
		return uint8(u), nil
	case "u2":
		return uint16(u), nil
	case "u4":
		return uint32(u), nil
	case "u8":
		return u, nil
	case "f4":
		return math.Float32frombits(uint32(u)), nil
	case "f8":
		return math.Float64frombits(u), nil
	case "c8":
		return complex(math.Float32frombits(uint32(word(b[:4], big))), math.Float32frombits(uint32(word(b[4:], big)))), nil
	case "c16":
		return complex(math.Float64frombits(word(b[:8], big)), math.Float64frombits(word(b[8:], big))), nil
	}
	return nil, opaque
}

// word reads an unsigned integer of up to 8 bytes.
func word(b []byte, bigEndian bool) uint64 {
	var u uint64
	for i := range min(len(b), 8) {
		if bigEndian {
			u = u<<8 | uint64(b[i])
		} else {
			u |= uint64(b[i]) << (8 * i)
		}
	}
	return u
}

// converted is a value converted to plain Go types.
type converted struct {
	v        any
	n        int64 // values in it, shared ones counted at each use
	hashable bool  // by Python's rules: usable as a dict key or set element
}

// converter turns what gopickle built into plain Go values. Containers
// reached twice (through the memo) are converted once and shared; a
// container holding itself is an error, and so is a value that would expand
// to more than lim.MaxOps values or nest deeper than lim.MaxDepth.
type converter struct {
	off  int64
	lim  Limits
	done map[any]converted
	busy map[any]bool
}

func (c *converter) convert(x any, depth int) (converted, error) {
	switch x := x.(type) {
	case nil, bool, float64, string, []byte, complex128,
		int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, complex64:
		return converted{x, 1, true}, nil
	case ByteArray:
		return converted{x, 1, false}, nil
	case int:
		return converted{int64(x), 1, true}, nil
	case *big.Int:
		if x.IsInt64() {
			return converted{x.Int64(), 1, true}, nil
		}
		return converted{x, 1, true}, nil
	case *types.ByteArray:
		return converted{ByteArray(*x), 1, false}, nil
	case *types.List:
		return c.seq(x, *x, depth, 'l')
	case *types.Tuple:
		return c.seq(x, *x, depth, 't')
	case *pySet:
		return c.seq(x, x.items, depth, 's')
	case *pyFrozenSet:
		return c.seq(x, x.items, depth, 'f')
	case *types.Dict:
		return c.seq(x, dictItems(*x), depth, 'd')
	case *pyODict:
		return c.seq(x, dictItems(x.items), depth, 'd')
	case *pyClass:
		return converted{}, &opaqueError{x.module, x.name}
	case *npDType:
		return converted{}, &opaqueError{"numpy", "dtype"}
	}
	return converted{}, formatErr(c.off, "cannot decode value: unexpected %T", x)
}

// dictItems flattens dict entries to key, value, key, value...
func dictItems(d []types.DictEntry) []any {
	out := make([]any, 0, 2*len(d))
	for _, e := range d {
		out = append(out, e.Key, e.Value)
	}
	return out
}

// seq converts a container: kind 'l' list, 't' tuple, 's' set, 'f'
// frozenset, 'd' dict (items holding keys and values in turn).
func (c *converter) seq(ptr any, items []any, depth int, kind byte) (converted, error) {
	if r, ok := c.done[ptr]; ok {
		return r, nil
	}
	if c.busy[ptr] {
		return converted{}, formatErr(c.off, "cannot decode value: a container holds itself")
	}
	if depth >= c.lim.MaxDepth {
		return converted{}, &FormatError{Offset: c.off, Msg: fmt.Sprintf("containers nested deeper than %d", c.lim.MaxDepth), Err: ErrLimit}
	}
	c.busy[ptr] = true
	r := converted{n: 1, hashable: kind == 't' || kind == 'f'}
	out := make([]any, len(items))
	for i, x := range items {
		e, err := c.convert(x, depth+1)
		if err != nil {
			return converted{}, err
		}
		if !e.hashable && (kind == 's' || kind == 'f' || kind == 'd' && i%2 == 0) {
			return converted{}, formatErr(c.off, "cannot decode value: unhashable %s in a set or as a dict key", typeName(e.v))
		}
		out[i] = e.v
		r.hashable = r.hashable && e.hashable
		if r.n += e.n; r.n > c.lim.MaxOps {
			return converted{}, &FormatError{Offset: c.off, Msg: fmt.Sprintf("value expands to more than %d values", c.lim.MaxOps), Err: ErrLimit}
		}
	}
	switch kind {
	case 'l':
		r.v = out
	case 't':
		r.v = Tuple(out)
	case 's':
		r.v = Set(out)
	case 'f':
		r.v = FrozenSet(out)
	case 'd':
		d := make(Dict, len(out)/2)
		for i := range d {
			d[i] = DictItem{out[2*i], out[2*i+1]}
		}
		r.v = d
	}
	delete(c.busy, ptr)
	c.done[ptr] = r
	return r, nil
}

// typeName names the Python type of a decoded value, for messages.
func typeName(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case Dict:
		return "dict"
	case Set:
		return "set"
	case ByteArray:
		return "bytearray"
	case Tuple:
		return "tuple"
	}
	return fmt.Sprintf("%T", v)
}
