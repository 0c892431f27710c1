//go:build !nohdf5

package convert

// HDF5 compound types as numpy structured dtypes, both ways, the way h5py
// maps them: each member a field at its offset (nested compounds nest,
// array members are subarray fields), the compound's size the item size.
// h5py's complex {r, i} compound stays a complex number (h5typeOf checks it
// first).

/*
#include "hdf5_shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"mmpbridge/bridge"
)

// maxCompoundDepth bounds nesting (bridge refuses deeper dtypes too).
const maxCompoundDepth = 16

// h5compoundOf reads a compound type (not h5py's complex) as a structured
// dtype; reason says why it has none.
func h5compoundOf(t C.hid_t, depth int) (bridge.DType, string, error) {
	var d bridge.DType
	if depth >= maxCompoundDepth {
		return d, fmt.Sprintf("compound type nested more than %d deep", maxCompoundDepth), nil
	}
	n := int(C.H5Tget_nmembers(t))
	if n < 0 {
		return d, "", h5err("H5Tget_nmembers")
	}
	if n == 0 {
		return d, "compound type without members", nil
	}
	if n > 4096 {
		return d, fmt.Sprintf("compound type of %d members (4096 at most)", n), nil
	}
	size := int(C.H5Tget_size(t))
	fields := make([]bridge.Field, 0, n)
	for i := range n {
		cname := C.H5Tget_member_name(t, C.uint(i))
		if cname == nil {
			return d, "", h5err("H5Tget_member_name")
		}
		name := C.GoString(cname)
		C.H5free_memory(unsafe.Pointer(cname))
		off := int(C.H5Tget_member_offset(t, C.uint(i)))
		mt := C.H5Tget_member_type(t, C.uint(i))
		if mt < 0 {
			return d, "", h5err("H5Tget_member_type")
		}
		fd, reason, err := h5memberType(mt, depth)
		C.H5Tclose(mt)
		if err != nil || reason != "" {
			if reason != "" {
				reason = fmt.Sprintf("compound member %q: %s", name, reason)
			}
			return d, reason, err
		}
		fields = append(fields, bridge.Field{Name: name, DType: fd, Offset: off})
	}
	sd, err := bridge.StructDType(fields, size, false)
	if err != nil {
		return d, "compound type: " + err.Error(), nil
	}
	return sd, "", nil
}

// h5memberType is a compound member's dtype: any type h5typeOf reads,
// nested compounds, and array types as subarray dtypes.
func h5memberType(t C.hid_t, depth int) (bridge.DType, string, error) {
	switch C.H5Tget_class(t) {
	case C.H5T_COMPOUND:
		if be, ok, err := h5isComplex(t); err != nil || ok {
			return numericDType('c', int(C.H5Tget_size(t)), be), "", err
		}
		return h5compoundOf(t, depth+1)
	case C.H5T_ARRAY:
		var d bridge.DType
		nd := int(C.H5Tget_array_ndims(t))
		if nd < 1 || nd > 32 {
			return d, fmt.Sprintf("array type of %d dimensions", nd), nil
		}
		dims := make([]C.hsize_t, nd)
		if C.H5Tget_array_dims2(t, &dims[0]) < 0 {
			return d, "", h5err("H5Tget_array_dims2")
		}
		super := C.H5Tget_super(t)
		if super < 0 {
			return d, "", h5err("H5Tget_super")
		}
		defer C.H5Tclose(super)
		base, reason, err := h5memberType(super, depth+1)
		if err != nil || reason != "" {
			return d, reason, err
		}
		shape := make([]int, nd)
		for i, x := range dims {
			if x > 1<<31-1 {
				return d, fmt.Sprintf("array type of dimension %d", x), nil
			}
			shape[i] = int(x)
		}
		sd, err := bridge.SubArrayDType(base, shape)
		if err != nil {
			return d, "array type: " + err.Error(), nil
		}
		return sd, "", nil
	}
	return h5typeOf(t)
}

// h5newCompound builds the HDF5 type h5py writes for a structured or
// subarray dtype: a compound of the dtype's size with each field at its
// offset, subarrays as array types.
func h5newCompound(d bridge.DType) (C.hid_t, string, error) {
	if base, shape, ok := d.SubArray(); ok {
		bt, reason, err := h5newType(base)
		if err != nil || reason != "" {
			return -1, reason, err
		}
		defer C.H5Tclose(bt)
		dims := make([]C.hsize_t, len(shape))
		for i, s := range shape {
			dims[i] = C.hsize_t(s)
		}
		at := C.H5Tarray_create2(bt, C.uint(len(dims)), &dims[0])
		if at < 0 {
			return -1, "", h5err("creating the array type of %s", d)
		}
		return at, "", nil
	}
	fields := d.Fields()
	ct := C.H5Tcreate(C.H5T_COMPOUND, C.size_t(d.ItemSize))
	if ct < 0 {
		return -1, "", h5err("creating the compound type of %s", d)
	}
	for _, f := range fields {
		ft, reason, err := h5newType(f.DType)
		if err != nil || reason != "" {
			C.H5Tclose(ct)
			if reason != "" {
				reason = fmt.Sprintf("field %q: %s", f.Name, reason)
			}
			return -1, reason, err
		}
		name, free := cstr(f.Name)
		rc := C.H5Tinsert(ct, name, C.size_t(f.Offset), ft)
		free()
		C.H5Tclose(ft)
		if rc < 0 {
			C.H5Tclose(ct)
			return -1, "", h5err("adding field %q to the compound type", f.Name)
		}
	}
	return ct, "", nil
}
