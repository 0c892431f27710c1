package bridge

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"strings"

	"mmpbridge/pyval"
)

// This file holds what the machine knows of the callables a value may use:
// the numpy constructors of numpy's own pickles and of mmappickle's array
// encoding, and a few builtins, each with the argument shapes numpy and
// CPython write. Anything else they are given yields an opaque object,
// reported to the verifier.

// global is an allowed callable.
type global uint8

const (
	gNone global = iota
	gReconstruct
	gNdarray
	gDType
	gScalar
	gMaReconstruct
	gMaskedArray
	gFromString
	gReshape
	gSet
	gFrozenSet
	gComplex
	gByteArray
	gSlice
	gRange
	gOrderedDict
	gFromBuffer
)

// allowedGlobals are the callables the machine models, under every name
// numpy 1.x and 2.x pickles give them.
var allowedGlobals = map[[2]string]global{
	{"numpy.core.multiarray", "_reconstruct"}:  gReconstruct,
	{"numpy._core.multiarray", "_reconstruct"}: gReconstruct,
	{"numpy", "ndarray"}:                       gNdarray,
	{"numpy", "dtype"}:                         gDType,
	{"numpy.core.multiarray", "scalar"}:        gScalar,
	{"numpy._core.multiarray", "scalar"}:       gScalar,
	{"numpy.ma.core", "_mareconstruct"}:        gMaReconstruct,
	{"numpy.ma.core", "MaskedArray"}:           gMaskedArray,
	{"numpy.ma", "MaskedArray"}:                gMaskedArray,
	{"numpy.core.multiarray", "fromstring"}:    gFromString,
	{"numpy._core.multiarray", "fromstring"}:   gFromString,
	{"numpy.core.fromnumeric", "reshape"}:      gReshape,
	{"numpy._core.fromnumeric", "reshape"}:     gReshape,
	{"builtins", "set"}:                        gSet,
	{"builtins", "frozenset"}:                  gFrozenSet,
	{"builtins", "complex"}:                    gComplex,
	{"builtins", "bytearray"}:                  gByteArray,
	{"builtins", "slice"}:                      gSlice,
	{"builtins", "range"}:                      gRange,
	{"collections", "OrderedDict"}:             gOrderedDict,
	{"numpy.core.numeric", "_frombuffer"}:      gFromBuffer,
	{"numpy._core.numeric", "_frombuffer"}:     gFromBuffer,
}

// AllowedGlobals lists, as "module.name", the callables plain data may use:
// the numpy constructors of numpy's own pickles and of mmappickle's array
// encoding, under their numpy 1.x and 2.x names, and a few builtins. Each
// is allowed only with the arguments numpy and CPython give it.
func AllowedGlobals() []string {
	var out []string
	for k := range allowedGlobals {
		out = append(out, k[0]+"."+k[1])
	}
	sort.Strings(out)
	return out
}

// globalWarning is what a global's name tells about the numpy versions
// where plain pickle.load works.
func globalWarning(module, name string) string {
	switch {
	case name == "fromstring":
		return "mmappickle-profile array (" + module + ".fromstring): plain pickle.load fails on numpy >= 2.3"
	case module == "numpy._core.fromnumeric":
		return "numpy._core.fromnumeric (a numpy 2 name): plain pickle.load fails on numpy 1.x"
	case strings.HasPrefix(module, "numpy._core"):
		return module + " (a numpy 2 name): plain pickle.load fails on numpy < 1.26"
	}
	return ""
}

// maxAllowedName is the longest module or name of allowedGlobals: a longer
// one, shared through the memo and imported at each of many uses, is not
// looked up (hashed) at each.
var maxAllowedName = func() int {
	n := 0
	for k := range allowedGlobals {
		n = max(n, len(k[0]), len(k[1]))
	}
	return n
}()

// trustSet is the globals the verifier was told to trust.
type trustSet struct {
	names   map[[2]string]bool
	longest int // the longest module or name in names
}

func newTrustSet(gs []pyval.Global) trustSet {
	t := trustSet{names: map[[2]string]bool{}}
	for _, g := range gs {
		t.names[[2]string{g.Module, g.Name}] = true
		t.longest = max(t.longest, len(g.Module), len(g.Name))
	}
	return t
}

func (t trustSet) has(module, name string) bool {
	return len(module) <= t.longest && len(name) <= t.longest && t.names[[2]string{module, name}]
}

// pushGlobal is GLOBAL, STACK_GLOBAL and INST's import: an allowed
// callable, or an opaque one (trusted when the verifier was told so).
func (m *machine) pushGlobal(o op, module, name string) error {
	var g global
	ok := false
	if len(module) <= maxAllowedName && len(name) <= maxAllowedName {
		g, ok = allowedGlobals[[2]string{module, name}]
	}
	trusted := m.trust.has(module, name)
	if m.sink != nil {
		m.sink.imported(o, module, name, ok || trusted)
		if w := globalWarning(module, name); w != "" && ok {
			m.sink.warning(o.Off, w)
		}
	}
	if ok {
		k := [2]string{module, name}
		x, seen := m.globals[k]
		if !seen {
			if m.globals == nil {
				m.globals = map[[2]string]any{}
			}
			x = k
			m.globals[k] = x
		}
		return m.push(node{kind: kGlobal, g: g, off: o.Off, x: x})
	}
	why := "a global outside the allow-list"
	if trusted {
		why = "a trusted global"
	}
	x := &opaque{module: module, name: name, why: why, trusted: trusted, foreign: true}
	if m.foreign == nil {
		m.foreign = x
	}
	return m.push(node{kind: kOpaque, off: o.Off, x: x})
}

// globalName returns module and name of an allowed global node.
func (m *machine) globalName(r ref) (string, string) {
	n := m.at(r).x.([2]string)
	return n[0], n[1]
}

// isFunction tells the allowed globals that are functions, not classes.
func (g global) isFunction() bool {
	switch g {
	case gReconstruct, gScalar, gMaReconstruct, gFromString, gReshape:
		return true
	}
	return false
}

// fromOpaque is the opaque result of calling or building an opaque
// object: it carries the same origin, and nothing new is reported.
func (m *machine) fromOpaque(off int64, src ref) (ref, error) {
	op := m.at(src).x.(*opaque)
	r, err := m.newOpaque(off, op.module, op.name, op.why, op.trusted)
	if err == nil {
		m.at(r).x.(*opaque).foreign = op.foreign
	}
	return r, err
}

// anyOpaque tells whether one of rs is opaque (already reported).
func (m *machine) anyOpaque(rs []ref) bool {
	for _, r := range rs {
		if m.at(r).kind == kOpaque {
			return true
		}
	}
	return false
}

// unexpected is the opaque result of an allowed callable given arguments
// numpy and CPython never write; it is reported unless an argument was
// already opaque.
func (m *machine) unexpected(o op, fn ref, args []ref, what string) (ref, error) {
	module, name := m.globalName(fn)
	why := fmt.Sprintf("%s.%s%s: %s", module, name, m.argsRepr(args), what)
	if !m.anyOpaque(args) {
		m.report(o.Off, why)
	}
	return m.newOpaque(o.Off, module, name, why, false)
}

// call is REDUCE: fn(*args).
func (m *machine) call(o op, fn, args ref) (ref, error) {
	f := m.at(fn)
	switch f.kind {
	case kOpaque:
		return m.fromOpaque(o.Off, fn)
	case kGlobal:
	default:
		return 0, fail(o.Off, "REDUCE: '%s' object is not callable", f.kind)
	}
	a := m.at(args)
	if a.kind == kOpaque {
		return m.unexpected(o, fn, []ref{args}, "arguments from an undecoded object")
	}
	if a.kind != kTuple {
		return 0, fail(o.Off, "REDUCE: argument list must be a tuple")
	}
	return m.callGlobal(o, fn, a.items)
}

// newObj is NEWOBJ and NEWOBJ_EX: cls.__new__(cls, *args, **kwargs), which
// numpy and CPython never write for the allowed classes.
func (m *machine) newObj(o op, cls, args, kw ref) (ref, error) {
	c := m.at(cls)
	switch {
	case c.kind == kOpaque:
		return m.fromOpaque(o.Off, cls)
	case c.kind != kGlobal || c.g.isFunction():
		return 0, fail(o.Off, "%s class argument isn't a type object", opName(o.Code))
	case m.at(args).kind != kTuple:
		return 0, fail(o.Off, "%s args argument isn't a tuple", opName(o.Code))
	case kw >= 0 && m.at(kw).kind != kDict:
		return 0, fail(o.Off, "NEWOBJ_EX kwargs argument isn't a dict")
	}
	return m.unexpected(o, cls, m.at(args).items, fmt.Sprintf("made by %s (not how numpy or CPython pickle it)", opName(o.Code)))
}

// instantiate is OBJ and INST: cls(*args), the call REDUCE makes (with no
// arguments, cls.__new__(cls), which for the allowed classes that take no
// argument is cls() again).
func (m *machine) instantiate(o op, cls ref, args []ref) (ref, error) {
	switch c := m.at(cls); c.kind {
	case kOpaque:
		return m.fromOpaque(o.Off, cls)
	case kGlobal:
		return m.callGlobal(o, cls, args)
	default:
		return 0, fail(o.Off, "%s: '%s' object is not callable", opName(o.Code), c.kind)
	}
}

// callGlobal applies an allowed callable to args.
func (m *machine) callGlobal(o op, fn ref, args []ref) (ref, error) {
	switch g := m.at(fn).g; g {
	case gDType:
		// numpy.dtype(descr, False, True): descr as numpy's pickle spells it.
		if len(args) != 3 || m.at(args[0]).kind != kStr || !m.isBool(args[1], false) || !m.isBool(args[2], true) {
			return m.unexpected(o, fn, args, "not how numpy pickles a dtype")
		}
		s, _ := m.str(args[0])
		if _, ok := m.descr(s); !ok {
			return m.unexpected(o, fn, args, fmt.Sprintf("dtype %q is not a plain numpy dtype (objects, structures, subarrays and other spellings are not plain data)", clipName(s)))
		}
		return m.newNode(node{kind: kDTypeNew, off: o.Off, x: &dtypeNew{descr: s}})
	case gReconstruct:
		// _reconstruct(ndarray, (0,), b'b'): an empty array BUILD fills.
		if len(args) != 3 || !m.isGlobal(args[0], gNdarray) || !m.isZeroTuple(args[1]) || !m.isBytes(args[2], "b") {
			return m.unexpected(o, fn, args, "not how numpy pickles an array")
		}
		return m.newNode(node{kind: kArrayNew, off: o.Off})
	case gMaReconstruct:
		// _mareconstruct(MaskedArray, ndarray, (0,), 'b').
		if len(args) != 4 || !m.isGlobal(args[0], gMaskedArray) || !m.isGlobal(args[1], gNdarray) ||
			!m.isZeroTuple(args[2]) || !m.isStr(args[3], "b") {
			return m.unexpected(o, fn, args, "not how numpy pickles a masked array")
		}
		return m.newNode(node{kind: kMaskedNew, off: o.Off})
	case gScalar:
		return m.callScalar(o, fn, args)
	case gFromString:
		return m.callFromString(o, fn, args)
	case gReshape:
		return m.callReshape(o, fn, args)
	case gFromBuffer:
		return m.callFromBuffer(o, fn, args)
	case gMaskedArray:
		return m.callMaskedArray(o, fn, args)
	case gSet, gFrozenSet:
		k := kSet
		if g == gFrozenSet {
			k = kFrozenSet
		}
		var items []ref
		switch {
		case len(args) == 0:
		case len(args) == 1 && (m.at(args[0]).kind == kList || m.at(args[0]).kind == kTuple):
			items = m.at(args[0]).items
		default:
			return m.unexpected(o, fn, args, "not how CPython pickles a set")
		}
		// One call adds every item of a list that may be shared through
		// the memo: the work counts at each call, as a set entry each
		// (CPython's are 16 bytes), duplicates included.
		if err := m.grow(o.Off, 16*int64(len(items))); err != nil {
			return 0, err
		}
		r, err := m.newNode(node{kind: k, nest: 1, off: o.Off})
		if err != nil {
			return 0, err
		}
		for _, it := range items {
			if err := m.keyNest(o, r, it); err != nil {
				return 0, err
			}
			if err := m.setAdd(o, r, it); err != nil {
				return 0, err
			}
		}
		return r, nil
	case gComplex:
		if len(args) != 2 {
			return m.unexpected(o, fn, args, "not how CPython pickles a complex number")
		}
		var p [2]float64
		for i, a := range args {
			f, ok, err := m.toFloat(o, a)
			if err != nil {
				return 0, err
			}
			if !ok {
				return m.unexpected(o, fn, args, "not how CPython pickles a complex number")
			}
			p[i] = f
		}
		return m.newNode(node{kind: kComplex, off: o.Off, x: complex(p[0], p[1])})
	case gByteArray:
		switch {
		case len(args) == 0:
			return m.newNode(node{kind: kByteArray, off: o.Off, x: []byte{}})
		case len(args) == 1 && m.at(args[0]).kind == kBytes:
			b := m.at(args[0])
			if err := m.grow(o.Off, b.n); err != nil {
				return 0, err
			}
			m.copied(b.n)
			return m.newNode(node{kind: kByteArray, off: o.Off, i: b.i, n: b.n, flags: fCopied})
		}
		return m.unexpected(o, fn, args, "not how CPython pickles a bytearray")
	case gSlice:
		if len(args) != 3 {
			return m.unexpected(o, fn, args, "not how CPython pickles a slice")
		}
		for _, a := range args {
			if k := m.at(a).kind; k != kInt && k != kNone {
				return m.unexpected(o, fn, args, "a slice of other than ints and None")
			}
		}
		return m.newNode(node{kind: kSlice, off: o.Off, items: append([]ref(nil), args...)})
	case gRange:
		if len(args) != 3 || m.at(args[0]).kind != kInt || m.at(args[1]).kind != kInt || m.at(args[2]).kind != kInt {
			return m.unexpected(o, fn, args, "not how CPython pickles a range")
		}
		if v, _ := m.intOf(args[2]); v.big == nil && v.small == 0 {
			return 0, fail(o.Off, "range() arg 3 must not be zero")
		}
		return m.newNode(node{kind: kRange, off: o.Off, items: append([]ref(nil), args...)})
	case gOrderedDict:
		if len(args) != 0 {
			return m.unexpected(o, fn, args, "not how CPython pickles an OrderedDict")
		}
		return m.newNode(node{kind: kODict, off: o.Off})
	}
	return m.unexpected(o, fn, args, "not how numpy pickles anything (numpy.ndarray is only an argument of _reconstruct)")
}

// callScalar is numpy's scalar(dtype, bytes): exactly itemsize bytes of a
// built plain dtype.
func (m *machine) callScalar(o op, fn ref, args []ref) (ref, error) {
	if len(args) != 2 || m.at(args[0]).kind != kDType || m.at(args[1]).kind != kBytes {
		return m.unexpected(o, fn, args, "not how numpy pickles a scalar (a built dtype and its bytes)")
	}
	d := m.at(args[0]).x.(DType)
	b := m.at(args[1])
	if b.n != int64(d.ItemSize) {
		return m.unexpected(o, fn, args, fmt.Sprintf("a numpy scalar of dtype %s from %d bytes, not %d", d, b.n, d.ItemSize))
	}
	// Each scalar is a copy of the bytes, in pickle.load as here.
	if err := m.grow(o.Off, b.n); err != nil {
		return 0, err
	}
	raw, _ := m.bytesOf(args[1])
	s := &Scalar{DType: d, Raw: append([]byte(nil), raw...)}
	if d.Kind == 'b' && s.Raw[0] > 1 {
		s.Raw[0] = 1 // numpy.bool_ is True or False, whatever byte it is made of
	}
	if d.Kind == 'U' {
		if _, err := s.text(); err != nil {
			return 0, fail(o.Off, "numpy str_ scalar: %v", err)
		}
	}
	m.copied(b.n)
	return m.newNode(node{kind: kScalar, off: o.Off, x: s})
}

// callFromString is mmappickle's numpy.core.multiarray.fromstring(bytes,
// str(dtype)): the whole bytes as a one-dimensional array.
func (m *machine) callFromString(o op, fn ref, args []ref) (ref, error) {
	if len(args) != 2 || m.at(args[0]).kind != kBytes || m.at(args[1]).kind != kStr {
		return m.unexpected(o, fn, args, "not how mmappickle writes an array")
	}
	name, _ := m.str(args[1])
	if len(name) > maxDTypeName {
		// Not parsed: a name shared through the memo would be at each use.
		return m.unexpected(o, fn, args, fmt.Sprintf("dtype %q is not a plain numpy dtype name", clipName(name)))
	}
	d, known := m.dtypeNames[name]
	if !known {
		var err error
		if d, err = ParseDType(name); err != nil {
			if strings.Contains(err.Error(), "object dtype") {
				return 0, fail(o.Off, "fromstring: cannot create an object array from a string")
			}
			return m.unexpected(o, fn, args, fmt.Sprintf("dtype %q is not a plain numpy dtype name", clipName(name)))
		}
		if d.Name() != name {
			return m.unexpected(o, fn, args, fmt.Sprintf("dtype %q is not spelled as str(dtype), as mmappickle writes it", clipName(name)))
		}
		if len(m.dtypeNames) < 1024 {
			if m.dtypeNames == nil {
				m.dtypeNames = map[string]DType{}
			}
			m.dtypeNames[name] = d
		}
	}
	b := m.at(args[0])
	if b.n%int64(d.ItemSize) != 0 {
		return 0, fail(o.Off, "fromstring: string size must be a multiple of element size")
	}
	m.copied(b.n)
	a := &Array{DType: d, Shape: []int{int(b.n / int64(d.ItemSize))}, Profile: Mmappickle, Offset: b.i, NBytes: b.n}
	return m.newNode(node{kind: kFromString, off: o.Off, x: a})
}

// callFromBuffer is numpy's pickle of an array at protocol 5:
// numpy.core.numeric._frombuffer(buffer, dtype, shape, order), which is
// frombuffer(buffer, dtype).reshape(shape, order=order). The buffer is the
// array's data (a bytearray, or bytes for a read-only array), in the file.
func (m *machine) callFromBuffer(o op, fn ref, args []ref) (ref, error) {
	if len(args) != 4 || m.at(args[1]).kind != kDType || m.at(args[3]).kind != kStr {
		return m.unexpected(o, fn, args, "not how numpy pickles an array")
	}
	b := m.at(args[0])
	if b.kind != kBytes && b.kind != kByteArray {
		return m.unexpected(o, fn, args, "not how numpy pickles an array (its data is not a bytes or bytearray of the pickle)")
	}
	order, _ := m.str(args[3])
	if order != "C" && order != "F" {
		return m.unexpected(o, fn, args, fmt.Sprintf("order %q: numpy writes C or F", clipName(order)))
	}
	shape, err := m.shapeOf(o, args[2], true)
	if err != nil {
		return 0, err
	}
	if shape == nil {
		return m.unexpected(o, fn, args, "a shape of other than non-negative ints")
	}
	d := m.at(args[1]).x.(DType)
	if d.ItemSize == 0 {
		return 0, fail(o.Off, "frombuffer: itemsize cannot be zero in type")
	}
	if b.n%int64(d.ItemSize) != 0 {
		return 0, fail(o.Off, "frombuffer: buffer size must be a multiple of element size")
	}
	if n, ok := shapeSize(shape); !ok || n != b.n/int64(d.ItemSize) {
		return 0, fail(o.Off, "cannot reshape array of size %d into shape %s", b.n/int64(d.ItemSize), shapeText(shape))
	}
	off := b.i
	if b.n == 0 {
		off = o.Off // nothing to map
	}
	if b.kind == kByteArray {
		// frombuffer views the bytearray: what changes it later
		// changes the array (machine_items.go refuses that).
		m.at(args[0]).flags |= fViewed
	}
	a := &Array{DType: d, Shape: shape, Fortran: order == "F", Profile: Portable, Offset: off, NBytes: b.n}
	return m.newNode(node{kind: kArray, off: o.Off, x: a})
}

// callReshape is mmappickle's numpy.core.fromnumeric.reshape(array, shape).
func (m *machine) callReshape(o op, fn ref, args []ref) (ref, error) {
	if len(args) != 2 || m.at(args[0]).kind != kFromString || m.at(args[1]).kind != kTuple {
		return m.unexpected(o, fn, args, "not how mmappickle writes an array")
	}
	src := m.at(args[0]).x.(*Array)
	shape, err := m.shapeOf(o, args[1], true)
	if err != nil {
		return 0, err
	}
	if shape == nil {
		return m.unexpected(o, fn, args, "a shape of other than non-negative ints")
	}
	if n, ok := shapeSize(shape); !ok || n != src.Size() {
		return 0, fail(o.Off, "cannot reshape array of size %d into shape %s", src.Size(), shapeText(shape))
	}
	a := *src
	a.Shape = shape
	return m.newNode(node{kind: kArray, off: o.Off, x: &a})
}

// callMaskedArray is mmappickle's numpy.ma.core.MaskedArray(data, mask).
func (m *machine) callMaskedArray(o op, fn ref, args []ref) (ref, error) {
	if len(args) != 2 || m.at(args[0]).kind != kArray || m.at(args[1]).kind != kArray {
		return m.unexpected(o, fn, args, "not how mmappickle writes a masked array")
	}
	d, k := m.at(args[0]).x.(*Array), m.at(args[1]).x.(*Array)
	if k.DType.Kind != 'b' {
		return m.unexpected(o, fn, args, fmt.Sprintf("a mask of dtype %s, not bool", k.DType))
	}
	if !slices.Equal(d.Shape, k.Shape) {
		return 0, fail(o.Off, "MaskedArray: mask of shape %s and data of shape %s are not compatible", shapeText(k.Shape), shapeText(d.Shape))
	}
	return m.newNode(node{kind: kMasked, off: o.Off, x: &Masked{Data: d, Mask: k}})
}

func shapeText(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	if len(s) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func (m *machine) isBool(r ref, v bool) bool {
	b, ok := m.boolOf(r)
	return ok && b == v
}

func (m *machine) isGlobal(r ref, g global) bool {
	nd := m.at(r)
	return nd.kind == kGlobal && nd.g == g
}

// isZeroTuple tells whether r is (0,), with a real int.
func (m *machine) isZeroTuple(r ref) bool {
	nd := m.at(r)
	if nd.kind != kTuple || len(nd.items) != 1 {
		return false
	}
	v, ok := m.smallInt(nd.items[0])
	return ok && v == 0
}

func (m *machine) isBytes(r ref, want string) bool {
	b, ok := m.bytesOf(r)
	return ok && m.at(r).kind == kBytes && string(b) == want
}

func (m *machine) isStr(r ref, want string) bool {
	s, ok := m.str(r)
	return ok && s == want
}

// toFloat converts an int, bool or float argument as Python's complex()
// does; ok is false for other kinds.
func (m *machine) toFloat(o op, r ref) (float64, bool, error) {
	nd := m.at(r)
	switch nd.kind {
	case kFloat:
		return m.floatOf(r), true, nil
	case kBool:
		return float64(nd.i), true, nil
	case kInt:
		v, _ := m.intOf(r)
		if v.big == nil {
			return float64(v.small), true, nil
		}
		f, _ := new(big.Float).SetInt(v.big).Float64()
		if math.IsInf(f, 0) {
			return 0, false, fail(o.Off, "int too large to convert to float")
		}
		return f, true, nil
	}
	return 0, false, nil
}

// shapeOf returns a tuple of ints as a shape: nil (no error) when r is
// not a tuple of ints (a bool, a float: not how numpy writes a shape) or,
// unless negOK, when a dimension is negative (reshape infers a -1); an error
// where numpy raises (a negative dimension, one over 2^62, more than 64).
func (m *machine) shapeOf(o op, r ref, negOK bool) ([]int, error) {
	nd := m.at(r)
	if nd.kind != kTuple {
		return nil, nil
	}
	if len(nd.items) > 64 {
		return nil, fail(o.Off, "maximum supported dimension for an ndarray is 64, found %d", len(nd.items))
	}
	shape := make([]int, len(nd.items))
	for i, it := range nd.items {
		if m.at(it).kind != kInt {
			return nil, nil
		}
		v, ok := m.smallInt(it)
		switch {
		case ok && v < 0 && negOK:
			return nil, nil
		case ok && v < 0:
			return nil, fail(o.Off, "negative dimensions are not allowed")
		case !ok || v > 1<<62:
			return nil, fail(o.Off, "array is too big (dimension %s)", m.repr(it))
		}
		shape[i] = int(v)
	}
	if len(shape) > 32 {
		m.warn(o.Off, fmt.Sprintf("array of %d dimensions: plain pickle.load fails on numpy 1.x (32 at most)", len(shape)))
	}
	return shape, nil
}
