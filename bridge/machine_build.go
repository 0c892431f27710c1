package bridge

import (
	"fmt"
	"math"
	"strings"
)

// BUILD: the states numpy writes for dtypes, arrays and masked arrays.

// build is BUILD: numpy's __setstate__ for a dtype, an array or a masked
// array just made; nothing for None on builtins (they have no
// __setstate__); an error or an opaque object otherwise.
func (m *machine) build(o op, inst, state ref) error {
	in := m.at(inst)
	switch in.kind {
	case kDTypeNew:
		return m.buildDType(o, inst, state)
	case kArrayNew:
		return m.buildArray(o, inst, state, false)
	case kMaskedNew:
		return m.buildArray(o, inst, state, true)
	case kOpaque:
		return nil
	case kDType, kArray, kMasked, kFromString, kScalar:
		return refuse(o.Off, "BUILD of a %s already built: pickle.load would change it after it was used", in.kind)
	case kGlobal:
		return refuse(o.Off, "BUILD of %s.%s itself: not modelled", m.at(inst).x.([2]string)[0], m.at(inst).x.([2]string)[1])
	}
	st := m.at(state)
	switch {
	case st.kind == kNone:
		return nil // no __setstate__, no state: nothing happens
	case in.kind == kODict && (st.kind == kDict || st.kind == kTuple):
		m.opaqueNode(inst, o.Off, "collections", "OrderedDict", "BUILD of an OrderedDict: instance attributes (CPython's pickler never writes them)")
		return nil
	case st.kind == kTuple && len(st.items) == 2:
		return fail(o.Off, "BUILD: slot state is not a dictionary")
	case st.kind == kDict:
		return fail(o.Off, "BUILD: '%s' object has no attribute '__dict__'", in.kind)
	}
	return fail(o.Off, "BUILD: state is not a dictionary")
}

// descrDType parses the first argument of numpy.dtype in numpy's own
// pickle of a plain dtype: "f8", "i4", "b1", "U3", "S5", "V8", "M8", "m8".
// descr is descrDType, remembered: files spell the same few dtypes over
// and over.
func (m *machine) descr(s string) (DType, bool) {
	if len(s) > maxDescr {
		return DType{}, false // not looked up: a long name shared through the memo would be hashed at each use
	}
	if r, ok := m.descrs[s]; ok {
		return r.d, r.ok
	}
	d, ok := descrDType(s)
	if len(m.descrs) < 1024 {
		if m.descrs == nil {
			m.descrs = map[string]descrResult{}
		}
		m.descrs[s] = descrResult{d, ok}
	}
	return d, ok
}

type structKey struct {
	state ref
	size  int
}

type descrResult struct {
	d  DType
	ok bool
}

// maxDescr is the longest descr numpy writes ("U2147483647"), maxDTypeName
// the longest str(dtype) fromstring is given ("datetime64[2147483647ms]").
const (
	maxDescr     = 12
	maxDTypeName = 40
	fieldCost    = 512
)

func descrDType(s string) (DType, bool) {
	if len(s) < 2 || len(s) > maxDescr || strings.ContainsAny(s, "<>|=[") {
		return DType{}, false
	}
	d, err := parseDType(s)
	if err != nil || d.Unit != "" || d.descr() != s {
		return DType{}, false
	}
	if d.Kind == 'M' || d.Kind == 'm' {
		return d, true // the unit comes with the state
	}
	if d.validate() != nil {
		return DType{}, false
	}
	return d, true
}

// dtypeStateOf is the BUILD state numpy writes for d (before the byte
// order and the datetime metadata): version, elsize, alignment, flags.
func dtypeStateOf(d DType) (version, elsize, align, flags int64) {
	switch d.Kind {
	case 'U':
		return 3, int64(d.ItemSize), 4, 8
	case 'S', 'V':
		return 3, int64(d.ItemSize), 1, 0
	case 'M', 'm':
		return 4, -1, -1, 0
	}
	return 3, -1, -1, 0
}

// datetimeUnits as numpy's dtype state names them (b'generic' for none).
var stateUnits = map[string]bool{"generic": true, "Y": true, "M": true, "W": true, "D": true, "h": true,
	"m": true, "s": true, "ms": true, "us": true, "ns": true, "ps": true, "fs": true, "as": true}

// buildDType checks numpy's dtype state tuple, exactly as numpy writes it:
// (3, byteorder, None, None, None, elsize, alignment, flags), and for
// datetimes (4, ..., (metadata {} or None, (unit, count, 1, 1))).
func (m *machine) buildDType(o op, inst, state ref) error {
	descr := m.at(inst).x.(*dtypeNew).descr
	d, _ := m.descr(descr)
	bad := func(what string) error {
		m.opaqueNode(inst, o.Off, "numpy", "dtype", fmt.Sprintf("numpy.dtype(%q) BUILD with %s: not the state numpy writes", descr, what))
		return nil
	}
	st := m.at(state)
	if st.kind == kOpaque {
		m.opaqueNode(inst, o.Off, "numpy", "dtype", "")
		return nil
	}
	version, elsize, align, flags := dtypeStateOf(d)
	n := 8
	if version == 4 {
		n = 9
	}
	if st.kind != kTuple || len(st.items) != n {
		return bad(fmt.Sprintf("a state %s", m.repr(state)))
	}
	it := st.items
	if v, ok := m.smallInt(it[0]); !ok || v != version {
		return bad("version " + m.repr(it[0]))
	}
	order, ok := m.str(it[1])
	if !ok || len(order) != 1 {
		return bad("byte order " + m.repr(it[1]))
	}
	natural := normalizeOrder('<', d.Kind, d.ItemSize)
	if (natural == '|') != (order[0] == '|') || (order[0] != '<' && order[0] != '>' && order[0] != '|') {
		return bad(fmt.Sprintf("byte order %q", order))
	}
	if d.Kind == 'V' && (!m.isNone(it[2]) || !m.isNone(it[3]) || !m.isNone(it[4])) {
		// A structured or subarray dtype (machine_struct.go). A state
		// shared through the memo and built from before gives the same
		// dtype again: a success freezes the fields dict, and the rest of
		// the state is immutable. Any other BUILD counts the work it does
		// (fieldCost: what checking and describing a field allocates),
		// so that a state rebuilt many times, failing at its last field,
		// costs no more than MaxValueBytes allows.
		key := structKey{state, d.ItemSize}
		sd, built := m.structs[key]
		if !built {
			if nn := m.at(it[3]); nn.kind == kTuple {
				if err := m.grow(o.Off, int64(len(nn.items))*fieldCost); err != nil {
					return err
				}
			}
			var why string
			if sd, why = m.structState(it, d.ItemSize, o.Off); why != "" {
				return bad(why)
			}
			if sd.ItemSize != d.ItemSize {
				return bad(fmt.Sprintf("element size %d for numpy.dtype(%q)", sd.ItemSize, descr))
			}
			if err := m.grow(o.Off, int64(len(sd.layout))); err != nil {
				return err
			}
			if m.structs == nil {
				m.structs = map[structKey]DType{}
			}
			m.structs[key] = sd
		}
		*m.at(inst) = node{kind: kDType, off: m.at(inst).off, x: sd}
		return nil
	}
	for _, i := range []int{2, 3, 4} {
		if !m.isNone(it[i]) {
			return bad("a subarray, names or fields on a dtype that is not void")
		}
	}
	for i, want := range []int64{elsize, align, flags} {
		if v, ok := m.smallInt(it[5+i]); !ok || v != want {
			return bad(fmt.Sprintf("%s %s (numpy writes %d)", [...]string{"element size", "alignment", "flags"}[i], m.repr(it[5+i]), want))
		}
	}
	d.ByteOrder = order[0]
	if version == 4 {
		md := m.at(it[8])
		if md.kind != kTuple || len(md.items) != 2 {
			return bad("datetime metadata " + m.repr(it[8]))
		}
		if meta := m.at(md.items[0]); meta.kind != kNone && !(meta.kind == kDict && len(meta.items) == 0) {
			return bad("dtype metadata " + m.repr(md.items[0]))
		}
		ut := m.at(md.items[1])
		if ut.kind != kTuple || len(ut.items) != 4 {
			return bad("datetime unit " + m.repr(md.items[1]))
		}
		unit, ok := m.bytesOf(ut.items[0])
		count, ok2 := m.smallInt(ut.items[1])
		one1, ok3 := m.smallInt(ut.items[2])
		one2, ok4 := m.smallInt(ut.items[3])
		if !ok || m.at(ut.items[0]).kind != kBytes || !stateUnits[string(unit)] || !ok2 || !ok3 || !ok4 ||
			count < 1 || count > math.MaxInt32 || one1 != 1 || one2 != 1 || (string(unit) == "generic" && count != 1) {
			return bad("datetime unit " + m.repr(md.items[1]))
		}
		if string(unit) != "generic" {
			d.Unit, d.UnitCount = canonicalUnit(string(unit)), int(count)
		}
		if meta := m.at(md.items[0]); meta.kind == kDict {
			// numpy keeps the dict itself as dtype.metadata: a
			// later SETITEM into it would give the dtype metadata.
			meta.flags |= fFrozen
		}
	}
	if err := d.validate(); err != nil {
		return bad(err.Error())
	}
	*m.at(inst) = node{kind: kDType, off: m.at(inst).off, x: d}
	return nil
}

// buildArray applies numpy's array state, (1, shape, dtype, is_fortran,
// data), or the masked array's (1, shape, dtype, is_fortran, data, mask,
// fill_value), checked as numpy writes it: the data exactly the array's
// bytes (a list would be an object array), the fill None or a 0-d array of
// the data's dtype.
func (m *machine) buildArray(o op, inst, state ref, masked bool) error {
	what, name := "numpy.ndarray", "ndarray"
	module := "numpy"
	if masked {
		what, module, name = "numpy.ma.MaskedArray", "numpy.ma", "MaskedArray"
	}
	st := m.at(state)
	derived := st.kind == kOpaque || (st.kind == kTuple && m.anyOpaque(st.items))
	bad := func(why string) error {
		if derived {
			m.opaqueNode(inst, o.Off, module, name, "")
			m.at(inst).x.(*opaque).why = what + " from an undecoded object"
			return nil
		}
		m.opaqueNode(inst, o.Off, module, name, fmt.Sprintf("%s BUILD with %s: not the state numpy writes", what, why))
		return nil
	}
	n := 5
	if masked {
		n = 7
	}
	if st.kind != kTuple || len(st.items) != n {
		return bad("a state " + m.repr(state))
	}
	it := st.items
	if v, ok := m.smallInt(it[0]); !ok || v != 1 {
		return bad("version " + m.repr(it[0]))
	}
	shape, err := m.shapeOf(o, it[1], false)
	if err != nil {
		return err
	}
	if shape == nil {
		return bad("shape " + m.repr(it[1]))
	}
	if m.at(it[2]).kind != kDType {
		return bad("dtype " + m.repr(it[2]))
	}
	d := m.at(it[2]).x.(DType)
	fortran, ok := m.boolOf(it[3])
	if !ok {
		return bad("is_fortran " + m.repr(it[3]))
	}
	count, ok := shapeSize(shape)
	if !ok || count > (1<<62)/int64(d.ItemSize) {
		return fail(o.Off, "array is too big")
	}
	nbytes := count * int64(d.ItemSize)
	data := m.at(it[4])
	if data.kind == kList {
		return bad("a list of objects (an object array)")
	}
	if data.kind != kBytes {
		return bad("data " + m.repr(it[4]))
	}
	if data.n != nbytes {
		return fail(o.Off, "%s BUILD: buffer size %d does not match array size %d", what, data.n, nbytes)
	}
	m.copied(nbytes)
	a := &Array{DType: d, Shape: shape, Fortran: fortran, Profile: Portable, Offset: data.i, NBytes: nbytes}
	if !masked {
		*m.at(inst) = node{kind: kArray, off: m.at(inst).off, x: a}
		return nil
	}
	if d.layout != "" {
		// numpy gives a structured array a structured mask (a bool per
		// field), which Masked does not hold.
		return bad("a structured dtype (its mask is structured too: not represented)")
	}
	mask := m.at(it[5])
	if mask.kind != kBytes {
		return bad("mask " + m.repr(it[5]))
	}
	if mask.n != count {
		return fail(o.Off, "%s BUILD: mask buffer size %d does not match array size %d", what, mask.n, count)
	}
	m.copied(count)
	k := &Array{DType: boolDType, Shape: shape, Fortran: fortran, Profile: Portable, Offset: mask.i, NBytes: count}
	mk := &Masked{Data: a, Mask: k}
	switch f := m.at(it[6]); {
	case f.kind == kNone:
	case f.kind == kArray && len(f.x.(*Array).Shape) == 0 && fillCompatible(f.x.(*Array).DType, d):
		fill, err := m.fillFor(o, f.x.(*Array), d)
		if err != nil {
			return err
		}
		mk.Fill = fill
	default:
		return bad("fill value " + m.repr(it[6]))
	}
	*m.at(inst) = node{kind: kMasked, off: m.at(inst).off, x: mk}
	return nil
}

// fillCompatible: numpy writes a masked array's fill value as a 0-d array
// of the data's dtype (for datetimes, possibly of another unit or byte
// order, which numpy converts: machine_fill.go).
func fillCompatible(f, d DType) bool {
	if f == d {
		return true
	}
	return (d.Kind == 'M' || d.Kind == 'm') && f.Kind == d.Kind
}

func clipName(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
