//go:build !nohdf5

package convert

// HDF5 datatypes: which HDF5 types have an exact numpy dtype (h5typeOf),
// and the HDF5 type h5py writes for a numpy dtype (h5newType).

/*
#include "hdf5_shim.h"
*/
import "C"
import (
	"fmt"
	"math"
	"math/big"
	"strings"
	"unicode/utf8"
	"unsafe"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
	"mmpbridge/pyval"
)

// ---------------------------------------------------------------------------
// Datatypes

// h5typeOf maps an HDF5 datatype to the numpy dtype h5py reads it as, when
// that mapping is exact; otherwise it returns why not.
func h5typeOf(t C.hid_t) (d bridge.DType, reason string, err error) {
	size := int(C.H5Tget_size(t))
	class := C.H5Tget_class(t)
	switch class {
	case C.H5T_INTEGER, C.H5T_FLOAT:
		kinds := []byte{'i', 'u'}
		if class == C.H5T_FLOAT {
			kinds = []byte{'f'}
		}
		for _, k := range kinds {
			for _, be := range []bool{false, true} {
				if ok, err := h5equalNumeric(t, k, size, be); err != nil || ok {
					return numericDType(k, size, be), "", err
				}
			}
		}
		if class == C.H5T_FLOAT {
			return d, fmt.Sprintf("%d-byte floating-point type with no exact numpy dtype (IEEE float16/32/64 only)", size), nil
		}
		return d, fmt.Sprintf("%d-byte integer type with %d-bit precision has no exact numpy dtype", size, int(C.H5Tget_precision(t))), nil
	case C.H5T_STRING:
		v := C.H5Tis_variable_str(t)
		if v < 0 {
			return d, "", h5err("H5Tis_variable_str")
		}
		if v > 0 {
			return d, "variable-length strings have no fixed-size numpy dtype", nil
		}
		return bridge.DType{ByteOrder: '|', Kind: 'S', ItemSize: size}, "", nil
	case C.H5T_COMPOUND:
		if be, ok, err := h5isComplex(t); err != nil || ok {
			return numericDType('c', size, be), "", err
		}
		return h5compoundOf(t, 0) // a structured dtype (hdf5_compound.go)
	case C.H5T_ENUM:
		if ok, err := h5isBool(t); err != nil || ok {
			return bridge.DType{ByteOrder: '|', Kind: 'b', ItemSize: 1}, "", err
		}
		// Other enums read as their base integer type, as h5py's dtype
		// (the names are in h5enumMembers).
		super := C.H5Tget_super(t)
		if super < 0 {
			return d, "", h5err("H5Tget_super")
		}
		defer C.H5Tclose(super)
		if C.H5Tget_class(super) != C.H5T_INTEGER {
			return d, "enum type over a base type that is not an integer", nil
		}
		return h5typeOf(super)
	case C.H5T_OPAQUE:
		var buf [256]C.char
		C.h5_tag(t, &buf[0], C.size_t(len(buf)))
		tag := C.GoString(&buf[0])
		if tag == "" {
			// h5py reads an untagged opaque type as numpy void.
			return bridge.DType{ByteOrder: '|', Kind: 'V', ItemSize: size}, "", nil
		}
		if s, ok := strings.CutPrefix(tag, "NUMPY:"); ok {
			// h5py's opaque_dtype: datetime64/timedelta64 tagged with dtype.str.
			if dt, err := bridge.ParseDType(s); err == nil && (dt.Kind == 'M' || dt.Kind == 'm') && dt.ItemSize == size && dt.String() == s {
				return dt, "", nil
			}
		}
		return d, fmt.Sprintf("opaque type tagged %q", tag), nil
	case C.H5T_REFERENCE:
		return d, "object or region references", nil
	case C.H5T_VLEN:
		return d, "variable-length sequences", nil
	case C.H5T_ARRAY:
		return d, "array datatype (fixed-size array elements)", nil
	case C.H5T_BITFIELD:
		return d, "bitfield type", nil
	case C.H5T_TIME:
		return d, "time type", nil
	}
	if class < 0 {
		return d, "", h5err("H5Tget_class")
	}
	return d, fmt.Sprintf("datatype class %d", int(class)), nil
}

func numericDType(kind byte, size int, be bool) bridge.DType {
	d := bridge.DType{ByteOrder: '<', Kind: kind, ItemSize: size}
	if be {
		d.ByteOrder = '>'
	}
	if size == 1 {
		d.ByteOrder = '|'
	}
	return d
}

// h5equalNumeric tells whether t is exactly the standard integer (i, u) or
// IEEE float (f: 2, 4 or 8 bytes) of that size and byte order.
func h5equalNumeric(t C.hid_t, kind byte, size int, be bool) (bool, error) {
	var ref C.hid_t
	if kind == 'f' && size == 2 {
		ref = C.h5_float16(cbool(be))
		if ref < 0 {
			return false, h5err("creating the float16 type")
		}
		defer C.H5Tclose(ref)
	} else {
		ref = C.h5_predef(C.char(kind), C.int(size), cbool(be))
		if ref < 0 {
			return false, nil
		}
	}
	eq := C.H5Tequal(t, ref)
	if eq < 0 {
		return false, h5err("H5Tequal")
	}
	return eq > 0, nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// h5isComplex recognizes h5py's complex types: a compound of exactly the
// members r and i, two equal IEEE floats of 4 or 8 bytes at offsets 0 and
// size/2.
func h5isComplex(t C.hid_t) (be, ok bool, err error) {
	size := int(C.H5Tget_size(t))
	if C.H5Tget_nmembers(t) != 2 || (size != 8 && size != 16) {
		return false, false, nil
	}
	names := []string{"r", "i"}
	for i := range 2 {
		var buf [64]C.char
		if C.h5_member_name(t, C.uint(i), &buf[0], C.size_t(len(buf))) < 0 {
			return false, false, h5err("H5Tget_member_name")
		}
		if C.GoString(&buf[0]) != names[i] || int(C.H5Tget_member_offset(t, C.uint(i))) != i*size/2 {
			return false, false, nil
		}
	}
	var order [2]int
	for i := range 2 {
		mt := C.H5Tget_member_type(t, C.uint(i))
		if mt < 0 {
			return false, false, h5err("H5Tget_member_type")
		}
		found := -1
		for _, big := range []bool{false, true} {
			eq, err := h5equalNumeric(mt, 'f', size/2, big)
			if err != nil {
				C.H5Tclose(mt)
				return false, false, err
			}
			if eq {
				found = int(cbool(big))
			}
		}
		C.H5Tclose(mt)
		if found < 0 {
			return false, false, nil
		}
		order[i] = found
	}
	if order[0] != order[1] {
		return false, false, nil
	}
	return order[0] == 1, true, nil
}

// h5isBool recognizes h5py's boolean: an enum over int8 with exactly
// FALSE=0 and TRUE=1.
func h5isBool(t C.hid_t) (bool, error) {
	super := C.H5Tget_super(t)
	if super < 0 {
		return false, h5err("H5Tget_super")
	}
	ok, err := h5equalNumeric(super, 'i', 1, false)
	if err == nil && !ok {
		ok, err = h5equalNumeric(super, 'i', 1, true)
	}
	C.H5Tclose(super)
	if err != nil || !ok || C.H5Tget_nmembers(t) != 2 {
		return false, err
	}
	want := map[string]int8{"FALSE": 0, "TRUE": 1}
	for i := range 2 {
		var buf [64]C.char
		if C.h5_member_name(t, C.uint(i), &buf[0], C.size_t(len(buf))) < 0 {
			return false, h5err("H5Tget_member_name")
		}
		var v C.schar
		if C.H5Tget_member_value(t, C.uint(i), unsafe.Pointer(&v)) < 0 {
			return false, h5err("H5Tget_member_value")
		}
		name := C.GoString(&buf[0])
		if w, ok := want[name]; !ok || w != int8(v) {
			return false, nil
		}
		delete(want, name)
	}
	return true, nil
}

// h5newType creates the HDF5 type h5py writes for a numpy dtype, or says
// why there is no exact one. The caller closes it.
func h5newType(d bridge.DType) (t C.hid_t, reason string, err error) {
	be := d.ByteOrder == '>'
	switch d.Kind {
	case 'b':
		t = C.h5_bool()
	case 'i', 'u':
		p := C.h5_predef(C.char(d.Kind), C.int(d.ItemSize), cbool(be))
		if p < 0 {
			return -1, fmt.Sprintf("dtype %s", d), nil
		}
		t = C.H5Tcopy(p)
	case 'f':
		if d.ItemSize > 8 {
			return -1, fmt.Sprintf("dtype %s (long double) has no portable HDF5 type", d), nil
		}
		t = C.h5_float(C.int(d.ItemSize), cbool(be))
	case 'c':
		if d.ItemSize > 16 {
			return -1, fmt.Sprintf("dtype %s (long double complex) has no portable HDF5 type", d), nil
		}
		t = C.h5_complex(C.int(d.ItemSize), cbool(be))
	case 'S':
		t = C.h5_fixed_str(C.size_t(d.ItemSize))
	case 'V':
		if d.Fields() != nil {
			return h5newCompound(d) // hdf5_compound.go
		}
		if _, _, sub := d.SubArray(); sub {
			return h5newCompound(d)
		}
		tag, free := cstr("")
		defer free()
		t = C.h5_opaque(C.size_t(d.ItemSize), tag)
	case 'M', 'm':
		// h5py.opaque_dtype's form, which h5py reads back as this dtype.
		tag, free := cstr("NUMPY:" + d.String())
		defer free()
		t = C.h5_opaque(C.size_t(d.ItemSize), tag)
	case 'U':
		return -1, fmt.Sprintf("dtype %s: numpy unicode strings have no fixed-size HDF5 type (only whole datasets are written, as variable-length strings)", d), nil
	default:
		return -1, fmt.Sprintf("dtype %s has no HDF5 type", d), nil
	}
	if t < 0 {
		return -1, "", h5err("creating the HDF5 type of %s", d)
	}
	return t, "", nil
}

// maxEnumMembers bounds the members of an enum type read.
const maxEnumMembers = 1 << 16

// h5enumMembers returns an enum type's names and values, in the type's
// order: {name: int} (values of base, the type's base integer dtype).
func h5enumMembers(t C.hid_t, base bridge.DType) (pyval.Dict, string, error) {
	n := int(C.H5Tget_nmembers(t))
	if n < 0 {
		return nil, "", h5err("H5Tget_nmembers")
	}
	if n > maxEnumMembers {
		return nil, fmt.Sprintf("enum type with %d members (at most %d)", n, maxEnumMembers), nil
	}
	out := make(pyval.Dict, 0, n)
	raw := make([]byte, base.ItemSize)
	for i := range n {
		cn := C.H5Tget_member_name(t, C.uint(i))
		if cn == nil {
			return nil, "", h5err("H5Tget_member_name")
		}
		name := C.GoString(cn)
		C.H5free_memory(unsafe.Pointer(cn))
		if !utf8.ValidString(name) {
			return nil, fmt.Sprintf("enum member name %q is not valid UTF-8", name), nil
		}
		if C.H5Tget_member_value(t, C.uint(i), unsafe.Pointer(&raw[0])) < 0 {
			return nil, "", h5err("H5Tget_member_value")
		}
		out = append(out, pyval.DictItem{Key: name, Value: intValue(raw, base)})
	}
	return out, "", nil
}

// intValue decodes one integer element of dtype d (kind i or u) as int64,
// or *big.Int above int64.
func intValue(raw []byte, d bridge.DType) any {
	var u uint64
	for i := range raw {
		b := raw[i]
		if d.ByteOrder == '>' {
			b = raw[len(raw)-1-i]
		}
		u |= uint64(b) << (8 * i)
	}
	if d.Kind == 'u' {
		if u > math.MaxInt64 {
			return new(big.Int).SetUint64(u)
		}
		return int64(u)
	}
	shift := 64 - 8*uint(len(raw))
	return int64(u<<shift) >> shift
}

// h5newEnum creates the enum type over base (an integer dtype) with the
// members {name: int}, or says why it cannot.
func h5newEnum(base bridge.DType, members pyval.Dict) (C.hid_t, string, error) {
	if base.Kind != 'i' && base.Kind != 'u' {
		return -1, fmt.Sprintf("an enum over dtype %s (enums are over integers)", base), nil
	}
	if len(members) == 0 || len(members) > maxEnumMembers {
		return -1, fmt.Sprintf("an enum of %d members (1 to %d)", len(members), maxEnumMembers), nil
	}
	bt, reason, err := h5newType(base)
	if err != nil || reason != "" {
		return -1, reason, err
	}
	defer C.H5Tclose(bt)
	t := C.H5Tenum_create(bt)
	if t < 0 {
		return -1, "", h5err("H5Tenum_create")
	}
	for _, m := range members {
		name, ok := m.Key.(string)
		if !ok || name == "" || strings.IndexByte(name, 0) >= 0 {
			C.H5Tclose(t)
			return -1, fmt.Sprintf("enum member name %s is not a non-empty string without NUL", render.Repr(m.Key, 0)), nil
		}
		le, ok := scalarBytes(m.Value, bridge.DType{ByteOrder: '<', Kind: base.Kind, ItemSize: base.ItemSize})
		if !ok || !sameInt(intValue(le, bridge.DType{ByteOrder: '<', Kind: base.Kind, ItemSize: base.ItemSize}), m.Value) {
			C.H5Tclose(t)
			return -1, fmt.Sprintf("enum member %q: %s does not fit %s", name, render.Repr(m.Value, 0), base), nil
		}
		raw := normalizeOrder(le, bridge.DType{ByteOrder: '<', Kind: base.Kind, ItemSize: base.ItemSize}, base.ByteOrder)
		cn, free := cstr(name)
		rc := C.H5Tenum_insert(t, cn, unsafe.Pointer(&raw[0]))
		free()
		if rc < 0 {
			err := h5err("enum member %q", name)
			C.H5Tclose(t)
			return -1, err.Error(), nil
		}
	}
	return t, "", nil
}

// sameInt tells whether a decoded integer equals the Go integer v.
func sameInt(got, v any) bool {
	g := new(big.Int)
	switch x := got.(type) {
	case int64:
		g.SetInt64(x)
	case *big.Int:
		g.Set(x)
	}
	w := new(big.Int)
	switch x := v.(type) {
	case int:
		w.SetInt64(int64(x))
	case int64:
		w.SetInt64(x)
	case uint64:
		w.SetUint64(x)
	case *big.Int:
		w.Set(x)
	default:
		return false
	}
	return g.Cmp(w) == 0
}
