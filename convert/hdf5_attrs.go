//go:build !nohdf5

package convert

// Attributes, HDF5 -> Go: every object's attributes read into the value
// stored under "__attrs__" (readAttrs, readAttr), as h5py reads them: a
// variable-length string as str (an array of them as a list of str), a
// null dataspace (h5py.Empty) as None with its dtype recorded under
// "__empty_attrs__", anything else of a numpy dtype as a numpy scalar
// (scalar dataspace) or array of that exact dtype, byte order and shape
// (hdf5_pickle.go makes them numpy's pickles): np.int16(3) stays int16,
// |S11 stays bytes of 11, an enum its base integer. Reserved names
// (hdf5_meta.go) in the source are refused.

/*
#include "hdf5_shim.h"
*/
import "C"
import (
	"fmt"
	"unicode/utf8"
	"unsafe"

	"mmpbridge/bridge"
	"mmpbridge/pyval"
)

// maxAttrElems bounds the elements of one attribute read into memory.
const maxAttrElems = 1 << 24

// maxAttrBytes bounds the bytes of one attribute read into memory.
const maxAttrBytes = 1 << 28

func (r *h5reader) readAttrs(path string, n int64) error {
	cp, free := cstr(path)
	defer free()
	obj := C.H5Oopen(r.file, cp, C.H5P_DEFAULT)
	if obj < 0 {
		return h5err("%s: opening %q", r.src, path)
	}
	defer C.H5Oclose(obj)
	var items, empties pyval.Dict
	for i := int64(0); i < n; i++ {
		aid := C.h5_attr_by_idx(obj, C.hsize_t(i))
		if aid < 0 {
			return h5err("%s: attribute %d of %q", r.src, i, path)
		}
		name, v, empty, reason, err := readAttr(aid)
		C.H5Aclose(aid)
		member := fmt.Sprintf("attribute %q of %q", name, path)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", r.src, member, err)
		}
		if reason == "" && !utf8.ValidString(name) {
			reason = "its name is not valid UTF-8"
		}
		if reason == "" && isReserved(name) {
			reason = fmt.Sprintf("the name %q is reserved in __attrs__ for mmpconv's records of the dataset", name)
		}
		if reason != "" {
			if err := r.unsupported(member, reason); err != nil {
				return err
			}
			continue
		}
		items = append(items, pyval.DictItem{Key: name, Value: v})
		if empty != "" {
			empties = append(empties, pyval.DictItem{Key: name, Value: empty})
		}
	}
	if len(empties) > 0 {
		items = append(items, pyval.DictItem{Key: metaEmptyAttrs, Value: empties})
	}
	if len(items) > 0 {
		r.attrs = append(r.attrs, pyval.DictItem{Key: path, Value: items})
	}
	return nil
}

// readAttr reads an attribute as h5py does (see the top of this file). A
// null dataspace gives v nil and empty its dtype's name (emptyTypeName).
func readAttr(aid C.hid_t) (name string, v any, empty, reason string, err error) {
	nlen := C.H5Aget_name(aid, 0, nil)
	if nlen < 0 {
		return "", nil, "", "", h5err("H5Aget_name")
	}
	nbuf := make([]C.char, nlen+1)
	C.H5Aget_name(aid, C.size_t(nlen+1), &nbuf[0])
	name = C.GoStringN(&nbuf[0], C.int(nlen))

	var ids h5ids
	defer ids.close()
	ft := C.H5Aget_type(aid)
	if ft < 0 {
		return name, nil, "", "", h5err("H5Aget_type")
	}
	ids.add(ft, closeType)
	space := C.H5Aget_space(aid)
	if space < 0 {
		return name, nil, "", "", h5err("H5Aget_space")
	}
	ids.add(space, closeSpace)
	if C.H5Sget_simple_extent_type(space) == C.H5S_NULL {
		empty, reason, err := emptyTypeName(ft)
		return name, nil, empty, reason, err
	}
	shape, reason, err := h5shape(space)
	if err != nil || reason != "" {
		return name, nil, "", reason, err
	}
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
		if n > maxAttrElems {
			return name, nil, "", fmt.Sprintf("attribute of shape %v is too large (over %d elements)", shape, maxAttrElems), nil
		}
	}
	if C.H5Tget_class(ft) == C.H5T_STRING {
		vs := C.H5Tis_variable_str(ft)
		if vs < 0 {
			return name, nil, "", "", h5err("H5Tis_variable_str")
		}
		if vs > 0 {
			flat, err := readVlenAttr(aid, ft, space, n)
			if err != nil {
				return name, nil, "", "", err
			}
			if len(shape) == 0 {
				return name, flat[0], "", "", nil
			}
			return name, nest(flat, shape), "", "", nil
		}
	}
	dt, reason, err := h5typeOf(ft)
	if err != nil || reason != "" {
		return name, nil, "", reason, err
	}
	if dt.Fields() != nil {
		return name, nil, "", "compound (structured) attribute values are not kept (compound datasets are)", nil
	}
	if n*int64(dt.ItemSize) > maxAttrBytes {
		return name, nil, "", fmt.Sprintf("attribute of %d bytes is too large (over %d)", n*int64(dt.ItemSize), maxAttrBytes), nil
	}
	// The raw elements, in the file type's own layout (no conversion but
	// the padding of fixed-length strings, read null-padded as h5py does).
	mt := C.H5Tcopy(ft)
	if mt < 0 {
		return name, nil, "", "", h5err("H5Tcopy")
	}
	ids.add(mt, closeType)
	if dt.Kind == 'S' && C.H5Tset_strpad(mt, C.H5T_STR_NULLPAD) < 0 {
		return name, nil, "", "", h5err("H5Tset_strpad")
	}
	raw := make([]byte, max(n*int64(dt.ItemSize), 1))
	if C.H5Aread(aid, mt, unsafe.Pointer(&raw[0])) < 0 {
		return name, nil, "", "", h5err("H5Aread")
	}
	raw = raw[:n*int64(dt.ItemSize)]
	if dt.Kind == 'b' {
		for i, b := range raw {
			if b != 0 {
				raw[i] = 1
			}
		}
	}
	if len(shape) == 0 {
		return name, &bridge.Scalar{DType: dt, Raw: raw}, "", "", nil
	}
	return name, &bridge.NDArray{DType: dt, Shape: shape, Data: raw}, "", "", nil
}

// emptyTypeName names the type of a null dataspace's attribute or dataset
// as __attrs__ records it: the numpy dtype (dtype.str: "<f4", "|S5"),
// "str" for variable-length strings.
func emptyTypeName(ft C.hid_t) (string, string, error) {
	if C.H5Tget_class(ft) == C.H5T_STRING {
		vs := C.H5Tis_variable_str(ft)
		if vs < 0 {
			return "", "", h5err("H5Tis_variable_str")
		}
		if vs > 0 {
			return emptyStr, "", nil
		}
	}
	dt, reason, err := h5typeOf(ft)
	if err != nil || reason != "" {
		return "", reason, err
	}
	return dt.String(), "", nil
}

// readVlenAttr reads a variable-length string attribute's n strings: str,
// or []byte where not UTF-8.
func readVlenAttr(aid, ft, space C.hid_t, n int64) ([]any, error) {
	mt := C.H5Tcopy(ft)
	if mt < 0 {
		return nil, h5err("H5Tcopy")
	}
	defer C.H5Tclose(mt)
	buf := C.h5_read_vlen_attr(aid, mt, C.size_t(n))
	if buf == nil {
		return nil, h5err("H5Aread")
	}
	defer C.h5_free_vlen(mt, space, buf)
	flat := make([]any, 0, n)
	for _, p := range unsafe.Slice(buf, max(n, 1))[:n] {
		if p == nil {
			flat = append(flat, "")
			continue
		}
		b := []byte(C.GoString(p))
		if utf8.Valid(b) {
			flat = append(flat, string(b))
		} else {
			flat = append(flat, b)
		}
	}
	return flat, nil
}

// nest shapes a flat C-ordered list as nested lists.
func nest(flat []any, shape []int) []any {
	if len(shape) == 1 {
		return append([]any{}, flat...)
	}
	out := make([]any, shape[0])
	step := len(flat) / max(shape[0], 1)
	if shape[0] > 0 && step == 0 {
		// An inner dimension is 0: every row is an empty nest.
		for i := range out {
			out[i] = nest(nil, shape[1:])
		}
		return out
	}
	for i := range out {
		out[i] = nest(flat[i*step:(i+1)*step], shape[1:])
	}
	return out
}
