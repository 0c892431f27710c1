//go:build !nohdf5

package convert

// Attributes, Go -> HDF5: the "__attrs__" value checked (planAttrs), each
// value converted as h5py would write it (toAttrVal) and written (writeAttr).

/*
#include "hdf5_shim.h"
*/
import "C"
import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"strings"
	"unsafe"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
	"mmpbridge/pyval"
)

// ---------------------------------------------------------------------------
// Attributes, Go -> HDF5

// attrVal is an attribute as h5py would write the Python value: a numpy
// dtype (kind 's' for variable-length UTF-8 strings, 'a' for
// variable-length ASCII bytes), a shape and C-ordered elements.
type attrVal struct {
	dt    bridge.DType
	shape []int
	data  []byte   // numeric elements in dt's byte order
	strs  []string // kind s or a
	null  bool     // a null dataspace (h5py.Empty)
}

func (w *h5writer) planAttrs(v any) ([]h5attr, error) {
	objs, ok := v.(pyval.Dict)
	if !ok {
		return nil, w.unsupported(fmt.Sprintf("key %q", attrsKey), fmt.Sprintf("holds %T, not a dict of paths to dicts of attributes", v))
	}
	var out []h5attr
	for _, o := range objs {
		path, ok := o.Key.(string)
		attrs, ok2 := o.Value.(pyval.Dict)
		if !ok || !ok2 {
			if err := w.unsupported(fmt.Sprintf("key %q", attrsKey), fmt.Sprintf("entry %s is not a path with a dict of attributes", render.Repr(o.Key, 0))); err != nil {
				return nil, err
			}
			continue
		}
		reason := ""
		if !strings.HasPrefix(path, "/") {
			reason = "the path is not absolute"
		} else {
			reason = checkPath(path)
		}
		if reason == "" && w.tree[path] != 'd' {
			// Attributes of a group: the groups on the way must not be datasets.
			parts := strings.Split(path[1:], "/")
			for i := 1; i <= len(parts) && path != "/"; i++ {
				g := "/" + strings.Join(parts[:i], "/")
				if w.tree[g] == 'd' {
					reason = fmt.Sprintf("%q is a dataset, not a group", g)
					break
				}
			}
			if reason == "" && path != "/" {
				for i := 1; i <= len(parts); i++ {
					w.tree["/"+strings.Join(parts[:i], "/")] = 'g'
				}
			}
		}
		for _, a := range attrs {
			name, ok := a.Key.(string)
			member := fmt.Sprintf("attribute %s of %q", render.Repr(a.Key, 0), path)
			if ok {
				member = fmt.Sprintf("attribute %q of %q", name, path)
			}
			r := reason
			var val attrVal
			switch {
			case r != "":
			case !ok:
				r = "the attribute name is not a string"
			case name == "" || strings.IndexByte(name, 0) >= 0:
				r = "HDF5 attribute names cannot be empty or hold NUL"
			case a.Value == nil && w.meta[path] != nil && w.meta[path].emptyAttrs[name] != "":
				val, r = emptyAttrVal(w.meta[path].emptyAttrs[name])
			default:
				val, r = toAttrVal(a.Value)
			}
			if r != "" {
				if err := w.unsupported(member, r); err != nil {
					return nil, err
				}
				continue
			}
			out = append(out, h5attr{path: path, name: name, val: val})
		}
	}
	return out, nil
}

// toAttrVal converts a generic value the way h5py's attrs[name] = value
// does (numpy.asarray): Python int -> int64, float -> float64, complex ->
// complex128, bool -> bool, str -> variable-length UTF-8, bytes ->
// variable-length ASCII; numpy scalars keep their dtype; lists and tuples
// become arrays (rectangular, one kind, ints and floats promoted to float64).
func toAttrVal(v any) (attrVal, string) {
	switch x := v.(type) {
	case bridge.Scalar: // as the bridge decodes numpy scalars
		return scalarAttrVal(&x)
	case *bridge.Scalar:
		return scalarAttrVal(x)
	case *bridge.Array:
		return arrayAttrVal(x)
	}
	var shape []int
	var flat []any
	var walk func(v any, depth int) string
	walk = func(v any, depth int) string {
		var list []any
		switch x := v.(type) {
		case []any:
			list = x
		case pyval.Tuple:
			list = x
		default:
			if depth < len(shape) {
				return "a ragged list (not rectangular)"
			}
			switch s := v.(type) {
			case bridge.Scalar:
				v = s.Value() // a numpy scalar in a list: its value
			case *bridge.Scalar:
				v = s.Value()
			}
			flat = append(flat, v)
			return ""
		}
		if depth == len(shape) {
			if len(flat) > 0 {
				return "a ragged list (not rectangular)"
			}
			shape = append(shape, len(list))
		} else if depth > len(shape) || shape[depth] != len(list) {
			return "a ragged list (not rectangular)"
		}
		if len(shape) > 32 {
			return "a list nested more than 32 deep"
		}
		for _, e := range list {
			if r := walk(e, depth+1); r != "" {
				return r
			}
		}
		return ""
	}
	if r := walk(v, 0); r != "" {
		return attrVal{}, r
	}
	if shape == nil {
		shape = []int{}
	}
	if int64(len(flat)) > maxAttrElems {
		return attrVal{}, "too many elements"
	}
	// The dtype numpy.asarray would give.
	kind := ""
	for _, e := range flat {
		k := scalarKind(e)
		switch {
		case k == "":
			return attrVal{}, fmt.Sprintf("%s has no HDF5 attribute form", render.Repr(e, 0))
		case kind == "" || kind == k:
			kind = k
		case isNumKind(kind) && isNumKind(k) && kind != "bool" && k != "bool":
			kind = promote(kind, k)
		default:
			return attrVal{}, fmt.Sprintf("a list mixing %s and %s", kind, k)
		}
	}
	if kind == "" {
		kind = "float64" // numpy.asarray([]) is float64
	}
	av := attrVal{shape: shape}
	switch kind {
	case "str", "bytes":
		av.dt.Kind = 's'
		if kind == "bytes" {
			av.dt.Kind = 'a'
		}
		for _, e := range flat {
			var s string
			switch x := e.(type) {
			case string:
				s = x
			case []byte:
				s = string(x)
			}
			if strings.IndexByte(s, 0) >= 0 {
				return attrVal{}, "a string holding NUL (HDF5 variable-length strings end at NUL)"
			}
			av.strs = append(av.strs, s)
		}
		return av, ""
	}
	dt, _ := bridge.ParseDType(kind)
	av.dt = dt
	for _, e := range flat {
		b, ok := scalarBytes(e, dt)
		if !ok {
			return attrVal{}, fmt.Sprintf("%s does not fit %s", render.Repr(e, 0), dt)
		}
		av.data = append(av.data, b...)
	}
	return av, ""
}

func scalarKind(v any) string {
	switch x := v.(type) {
	case bool:
		return "bool"
	case int, int64:
		return "int64"
	case *big.Int:
		if x.Sign() >= 0 && x.IsUint64() {
			return "uint64" // numpy.asarray(2**63) is uint64
		}
	case int8, int16, int32, uint8, uint16, uint32, uint64, float32, complex64:
		return fmt.Sprintf("%T", v)
	case float64:
		return "float64"
	case complex128:
		return "complex128"
	case string:
		return "str"
	case []byte:
		return "bytes"
	}
	return ""
}

func isNumKind(k string) bool { return k != "" && k != "str" && k != "bytes" }

// promote gives numpy's result type of two numeric kinds, simplified to
// what mixed Python lists produce: complex wins, then floats, then int64.
func promote(a, b string) string {
	rank := func(k string) int {
		switch {
		case strings.HasPrefix(k, "complex"):
			return 3
		case strings.HasPrefix(k, "float"):
			return 2
		}
		return 1
	}
	switch max(rank(a), rank(b)) {
	case 3:
		return "complex128"
	case 2:
		return "float64"
	}
	if a == "uint64" || b == "uint64" {
		return "float64" // numpy: int64 with uint64 is float64
	}
	return "int64"
}

// scalarBytes encodes a Go scalar as one little-endian element of dt.
func scalarBytes(v any, dt bridge.DType) ([]byte, bool) {
	var bits uint64 // an integer, two's complement
	var re, im float64
	isInt := false
	switch x := v.(type) {
	case bool:
		if dt.Kind != 'b' {
			return nil, false
		}
		if x {
			return []byte{1}, true
		}
		return []byte{0}, true
	case int:
		bits, re, isInt = uint64(x), float64(x), true
	case int8:
		bits, re, isInt = uint64(x), float64(x), true
	case int16:
		bits, re, isInt = uint64(x), float64(x), true
	case int32:
		bits, re, isInt = uint64(x), float64(x), true
	case int64:
		bits, re, isInt = uint64(x), float64(x), true
	case uint8:
		bits, re, isInt = uint64(x), float64(x), true
	case uint16:
		bits, re, isInt = uint64(x), float64(x), true
	case uint32:
		bits, re, isInt = uint64(x), float64(x), true
	case uint64:
		bits, re, isInt = x, float64(x), true
	case *big.Int:
		if !x.IsUint64() {
			return nil, false
		}
		bits, isInt = x.Uint64(), true
		re = float64(bits)
	case float32:
		re = float64(x)
	case float64:
		re = x
	case complex64:
		re, im = float64(real(x)), float64(imag(x))
	case complex128:
		re, im = real(x), imag(x)
	default:
		return nil, false
	}
	out := make([]byte, dt.ItemSize)
	switch dt.Kind {
	case 'i', 'u':
		if !isInt {
			return nil, false
		}
		putLE(out, bits)
	case 'f':
		if im != 0 {
			return nil, false
		}
		putFloat(out, re)
	case 'c':
		putFloat(out[:dt.ItemSize/2], re)
		putFloat(out[dt.ItemSize/2:], im)
	default:
		return nil, false
	}
	return out, true
}

func putLE(b []byte, x uint64) {
	for i := range b {
		b[i] = byte(x >> (8 * i))
	}
}

// putFloat writes f as a little-endian float32 or float64 (len(b)).
func putFloat(b []byte, f float64) {
	if len(b) == 4 {
		putLE(b, uint64(math.Float32bits(float32(f))))
		return
	}
	putLE(b, math.Float64bits(f))
}

func (w *h5writer) writeAttr(a h5attr) error {
	var ids h5ids
	defer ids.close()
	if w.tree[a.path] != 'd' {
		if err := w.ensureGroups(a.path, true); err != nil {
			return err
		}
	}
	cp, free := cstr(a.path)
	defer free()
	obj := C.H5Oopen(w.file, cp, C.H5P_DEFAULT)
	if obj < 0 {
		return h5err("opening %q", a.path)
	}
	ids.add(obj, closeObj)
	var t C.hid_t
	switch a.val.dt.Kind {
	case 's', 'a':
		t = C.h5_vlen_str(cbool(a.val.dt.Kind == 's'))
		if t < 0 {
			return h5err("creating a string type")
		}
	default:
		var reason string
		var err error
		t, reason, err = h5newType(a.val.dt)
		if err != nil {
			return err
		}
		if reason != "" {
			return fmt.Errorf("attribute %q of %q: %s", a.name, a.path, reason)
		}
	}
	ids.add(t, closeType)
	var space C.hid_t
	if a.val.null {
		space = C.H5Screate(C.H5S_NULL)
	} else if len(a.val.shape) == 0 {
		space = C.H5Screate(C.H5S_SCALAR)
	} else {
		dims := make([]C.hsize_t, len(a.val.shape))
		for i, d := range a.val.shape {
			dims[i] = C.hsize_t(d)
		}
		space = C.H5Screate_simple(C.int(len(dims)), &dims[0], nil)
	}
	if space < 0 {
		return h5err("creating a dataspace")
	}
	ids.add(space, closeSpace)
	acpl := C.h5_acpl()
	if acpl < 0 {
		return h5err("H5Pcreate")
	}
	ids.add(acpl, closeProp)
	cn, freeName := cstr(a.name)
	defer freeName()
	if C.H5Aexists(obj, cn) > 0 {
		C.H5Adelete(obj, cn)
	}
	aid := C.H5Acreate2(obj, cn, t, space, acpl, C.H5P_DEFAULT)
	if aid < 0 {
		return h5err("creating attribute %q of %q", a.name, a.path)
	}
	ids.add(aid, closeAttr)
	var rc C.herr_t
	switch {
	case len(a.val.strs) > 0:
		ptrs := C.malloc(C.size_t(len(a.val.strs)) * C.size_t(unsafe.Sizeof(uintptr(0))))
		defer C.free(ptrs)
		ps := unsafe.Slice((**C.char)(ptrs), len(a.val.strs))
		for i, s := range a.val.strs {
			ps[i] = C.CString(s)
			defer C.free(unsafe.Pointer(ps[i]))
		}
		rc = C.H5Awrite(aid, t, ptrs)
	case len(a.val.data) > 0:
		rc = C.H5Awrite(aid, t, unsafe.Pointer(&a.val.data[0]))
	}
	if rc < 0 {
		return h5err("writing attribute %q of %q", a.name, a.path)
	}
	return nil
}

// emptyAttrVal is a null-dataspace attribute of a recorded dtype name.
func emptyAttrVal(name string) (attrVal, string) {
	d, reason := emptyType(name)
	if reason != "" {
		return attrVal{}, fmt.Sprintf("its %s record: %s", metaEmptyAttrs, reason)
	}
	if d.Kind == 'O' {
		d = bridge.DType{Kind: 's'}
	}
	return attrVal{dt: d, shape: []int{}, null: true}, ""
}

// scalarAttrVal is a numpy scalar as h5py writes it: its own dtype (a str_
// as a variable-length string).
func scalarAttrVal(s *bridge.Scalar) (attrVal, string) {
	switch s.DType.Kind {
	case 'U':
		str, ok := s.Value().(string)
		if !ok || strings.IndexByte(str, 0) >= 0 {
			return attrVal{}, "a numpy str_ that is not a string without NUL"
		}
		return attrVal{dt: bridge.DType{Kind: 's'}, shape: []int{}, strs: []string{str}}, ""
	case 'b', 'i', 'u', 'f', 'c', 'S', 'V', 'M', 'm':
		if len(s.Raw) != s.DType.ItemSize {
			return attrVal{}, fmt.Sprintf("a numpy scalar of dtype %s with %d bytes", s.DType, len(s.Raw))
		}
		return attrVal{dt: s.DType, shape: []int{}, data: s.Raw}, ""
	}
	return attrVal{}, fmt.Sprintf("a numpy scalar of dtype %s has no HDF5 attribute form", s.DType)
}

// arrayAttrVal is a numpy array as h5py writes it: its own dtype and
// shape, in C order (a U array as variable-length strings).
func arrayAttrVal(a *bridge.Array) (attrVal, string) {
	if a.NBytes > maxAttrBytes {
		return attrVal{}, fmt.Sprintf("an array of %d bytes is too large for an attribute (at most %d)", a.NBytes, maxAttrBytes)
	}
	if len(a.Shape) > 32 {
		return attrVal{}, fmt.Sprintf("%d dimensions (HDF5 allows 32)", len(a.Shape))
	}
	var buf bytes.Buffer
	buf.Grow(int(a.NBytes))
	if err := a.WriteC(&buf); err != nil {
		return attrVal{}, fmt.Sprintf("reading the array: %v", err)
	}
	if int64(buf.Len()) != a.NBytes {
		return attrVal{}, fmt.Sprintf("the array has %d of its %d bytes", buf.Len(), a.NBytes)
	}
	shape := append([]int{}, a.Shape...)
	if a.DType.Kind == 'U' {
		av := attrVal{dt: bridge.DType{Kind: 's'}, shape: shape}
		item := a.DType.ItemSize
		for o := 0; o+item <= buf.Len() && item > 0; o += item {
			sc := bridge.Scalar{DType: a.DType, Raw: buf.Bytes()[o : o+item]}
			str, ok := sc.Value().(string)
			if !ok || strings.IndexByte(str, 0) >= 0 {
				return attrVal{}, "a numpy str_ array holding something other than strings without NUL"
			}
			av.strs = append(av.strs, str)
		}
		if av.strs == nil {
			av.strs = []string{}
		}
		return av, ""
	}
	switch a.DType.Kind {
	case 'b', 'i', 'u', 'f', 'c', 'S', 'V', 'M', 'm':
		return attrVal{dt: a.DType, shape: shape, data: buf.Bytes()}, ""
	}
	return attrVal{}, fmt.Sprintf("an array of dtype %s has no HDF5 attribute form", a.DType)
}
