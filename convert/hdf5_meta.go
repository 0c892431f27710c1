//go:build !nohdf5

package convert

// Records of what a dataset is beyond its array, kept in "__attrs__" under
// the dataset's path with reserved names, which are never written back as
// HDF5 attributes (and refused as the names of a source's attributes):
//
//	"__layout__": {"chunks": [100, 7], "compression": "gzip" or None,
//	               "compression_opts": 4 or None, "shuffle": bool, "fletcher32": bool}
//	    a chunked dataset's chunk shape and filters, as h5py's Dataset
//	    properties name them (other filters are not recorded). mmpkl ->
//	    HDF5 with Options.Layout == LayoutKeep creates the dataset so
//	    (shuffle, then deflate, then fletcher32, as h5py orders them);
//	    LayoutContiguous ignores it.
//	"__enum__": {"RED": 0, "GREEN": 1}
//	    the dataset's type is an HDF5 enum (h5py.enum_dtype) over its
//	    integer dtype, with these members in this order; mmpkl -> HDF5
//	    writes the enum type again (h5py's boolean enum is just bool).
//	"__empty__": "<f4"
//	    the dataset has a null dataspace (h5py.Empty) of this dtype
//	    (dtype.str, or "str" for variable-length strings); its key holds
//	    None. mmpkl -> HDF5 writes a None key so recorded as such a dataset.
//	"__empty_attrs__": {"name": "<i8"}
//	    the object's attribute "name" has a null dataspace of this dtype
//	    (its value in __attrs__ is None); written back so.

/*
#include "hdf5_shim.h"
*/
import "C"

import (
	"fmt"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
	"mmpbridge/pyval"
)

// addMeta adds a record to the attributes of path in __attrs__.
func (r *h5reader) addMeta(path, name string, v any) {
	for i := len(r.attrs) - 1; i >= 0; i-- {
		if r.attrs[i].Key == path {
			items, _ := r.attrs[i].Value.(pyval.Dict)
			r.attrs[i].Value = append(items, pyval.DictItem{Key: name, Value: v})
			return
		}
	}
	r.attrs = append(r.attrs, pyval.DictItem{Key: path, Value: pyval.Dict{{Key: name, Value: v}}})
}

// h5layout is a chunked dataset's storage.
type h5layout struct {
	chunks     []int
	gzip       int // deflate level, -1 for none
	shuffle    bool
	fletcher32 bool
}

const h5FilterFletcher32 = 3

// layoutRecord is the __layout__ record of a chunked dataset.
func layoutRecord(d *h5dataset) pyval.Dict {
	chunks := make([]any, len(d.chunk))
	for i, c := range d.chunk {
		chunks[i] = int64(c)
	}
	var comp, opts any
	shuffle, fletcher := false, false
	for _, f := range d.filters {
		switch f.id {
		case h5FilterDeflate:
			comp, opts = "gzip", int64(f.cd0)
		case h5FilterShuffle:
			shuffle = true
		case h5FilterFletcher32:
			fletcher = true
		}
	}
	return pyval.Dict{
		{Key: "chunks", Value: chunks},
		{Key: "compression", Value: comp},
		{Key: "compression_opts", Value: opts},
		{Key: "shuffle", Value: shuffle},
		{Key: "fletcher32", Value: fletcher},
	}
}

// parseLayout reads a __layout__ record, or says what is wrong with it.
func parseLayout(v any) (*h5layout, string) {
	rec, ok := v.(pyval.Dict)
	if !ok {
		return nil, fmt.Sprintf("%s is %s, not a dict", metaLayout, render.Repr(v, 0))
	}
	l := &h5layout{gzip: -1}
	compression, level := false, int64(-1)
	for _, it := range rec {
		k, _ := it.Key.(string)
		switch k {
		case "chunks":
			var list []any
			switch x := it.Value.(type) {
			case []any:
				list = x
			case pyval.Tuple:
				list = x
			case nil:
				continue
			default:
				return nil, fmt.Sprintf("%s chunks %s is not a list of sizes", metaLayout, render.Repr(it.Value, 0))
			}
			l.chunks = make([]int, len(list))
			for i, c := range list {
				n, ok := c.(int64)
				if !ok || n < 1 || n > 1<<32-1 {
					return nil, fmt.Sprintf("%s chunks %s is not a list of positive sizes", metaLayout, render.Repr(it.Value, 0))
				}
				l.chunks[i] = int(n)
			}
		case "compression":
			switch it.Value {
			case nil:
			case "gzip":
				compression = true
			default:
				return nil, fmt.Sprintf("%s compression %s: only \"gzip\" (or None) can be written", metaLayout, render.Repr(it.Value, 0))
			}
		case "compression_opts":
			if it.Value == nil {
				continue
			}
			n, ok := it.Value.(int64)
			if !ok || n < 0 || n > 9 {
				return nil, fmt.Sprintf("%s compression_opts %s is not a gzip level 0 to 9", metaLayout, render.Repr(it.Value, 0))
			}
			level = n
		case "shuffle", "fletcher32":
			b, ok := it.Value.(bool)
			if !ok {
				return nil, fmt.Sprintf("%s %s %s is not a bool", metaLayout, k, render.Repr(it.Value, 0))
			}
			if k == "shuffle" {
				l.shuffle = b
			} else {
				l.fletcher32 = b
			}
		default:
			return nil, fmt.Sprintf("%s has an unknown entry %s (chunks, compression, compression_opts, shuffle, fletcher32)", metaLayout, render.Repr(it.Key, 0))
		}
	}
	if compression {
		l.gzip = 4 // h5py's default level
		if level >= 0 {
			l.gzip = int(level)
		}
	}
	if l.chunks == nil {
		if compression || l.shuffle || l.fletcher32 {
			return nil, metaLayout + " has filters but no chunks"
		}
		return nil, ""
	}
	return l, ""
}

// fits tells why a layout cannot store an array of this shape and item
// size ("" if it can).
func (l *h5layout) fits(shape []int, item int) string {
	if len(shape) == 0 {
		return "a scalar dataset cannot be chunked"
	}
	if len(l.chunks) != len(shape) {
		return fmt.Sprintf("chunks %v for a %d-dimensional array", l.chunks, len(shape))
	}
	n := int64(item)
	for _, c := range l.chunks {
		n *= int64(c)
	}
	if n >= 1<<32 {
		return fmt.Sprintf("chunks %v of %d bytes (HDF5 allows under 4 GiB)", l.chunks, n)
	}
	return ""
}

// dcpl creates the dataset creation properties of the layout, and the
// maximum dimensions (unlimited where a chunk is larger than the array, as
// HDF5 requires of fixed dimensions).
func (l *h5layout) dcpl(shape []int) (C.hid_t, []C.hsize_t, error) {
	p := C.H5Pcreate(C.H5P_DATASET_CREATE)
	if p < 0 {
		return -1, nil, h5err("H5Pcreate")
	}
	dims := make([]C.hsize_t, len(l.chunks))
	var maxdims []C.hsize_t
	for i, c := range l.chunks {
		dims[i] = C.hsize_t(c)
		if c > shape[i] && maxdims == nil {
			maxdims = make([]C.hsize_t, len(shape))
			for j, s := range shape {
				maxdims[j] = C.hsize_t(s)
			}
		}
	}
	for i, c := range l.chunks {
		if c > shape[i] {
			maxdims[i] = C.H5S_UNLIMITED
		}
	}
	fail := func(what string) (C.hid_t, []C.hsize_t, error) {
		err := h5err("%s", what)
		C.H5Pclose(p)
		return -1, nil, err
	}
	if C.H5Pset_chunk(p, C.int(len(dims)), &dims[0]) < 0 {
		return fail(fmt.Sprintf("setting chunks %v", l.chunks))
	}
	if l.shuffle && C.H5Pset_shuffle(p) < 0 {
		return fail("H5Pset_shuffle")
	}
	if l.gzip >= 0 && C.H5Pset_deflate(p, C.uint(l.gzip)) < 0 {
		return fail("H5Pset_deflate")
	}
	if l.fletcher32 && C.H5Pset_fletcher32(p) < 0 {
		return fail("H5Pset_fletcher32")
	}
	return p, maxdims, nil
}

// h5meta is what __attrs__ records of one path.
type h5meta struct {
	layout     *h5layout
	enum       pyval.Dict
	empty      string
	emptyAttrs map[string]string
}

// planMeta takes the reserved records out of the __attrs__ value: the
// records by path, and the value without them.
func (w *h5writer) planMeta(v any) (map[string]*h5meta, any, error) {
	objs, ok := v.(pyval.Dict)
	if !ok {
		return nil, v, nil // planAttrs refuses it
	}
	metas := map[string]*h5meta{}
	out := make(pyval.Dict, 0, len(objs))
	for _, o := range objs {
		path, ok := o.Key.(string)
		attrs, ok2 := o.Value.(pyval.Dict)
		if !ok || !ok2 {
			out = append(out, o)
			continue
		}
		kept := make(pyval.Dict, 0, len(attrs))
		m := &h5meta{}
		for _, a := range attrs {
			name, _ := a.Key.(string)
			if !isReserved(name) {
				kept = append(kept, a)
				continue
			}
			member := fmt.Sprintf("%s of %q in key %q", name, path, attrsKey)
			reason := ""
			switch name {
			case metaLayout:
				m.layout, reason = parseLayout(a.Value)
			case metaEnum:
				d, ok := a.Value.(pyval.Dict)
				if !ok || len(d) == 0 {
					reason = fmt.Sprintf("%s is %s, not a dict of names to integers", name, render.Repr(a.Value, 0))
				}
				m.enum = d
			case metaEmpty:
				s, ok := a.Value.(string)
				if !ok {
					reason = fmt.Sprintf("%s is %s, not a dtype name", name, render.Repr(a.Value, 0))
				} else if _, reason = emptyType(s); reason == "" {
					m.empty = s
				}
			case metaEmptyAttrs:
				d, ok := a.Value.(pyval.Dict)
				if !ok {
					reason = fmt.Sprintf("%s is %s, not a dict of attribute names to dtype names", name, render.Repr(a.Value, 0))
					break
				}
				m.emptyAttrs = map[string]string{}
				for _, e := range d {
					k, ok := e.Key.(string)
					s, ok2 := e.Value.(string)
					if !ok || !ok2 {
						reason = fmt.Sprintf("%s entry %s is not a name with a dtype name", name, render.Repr(e.Key, 0))
						break
					}
					m.emptyAttrs[k] = s
				}
			}
			if reason != "" {
				if err := w.unsupported(member, reason); err != nil {
					return nil, nil, err
				}
			}
		}
		metas[path] = m
		if len(kept) > 0 || len(attrs) == 0 {
			out = append(out, pyval.DictItem{Key: path, Value: kept})
		}
	}
	return metas, out, nil
}

// emptyType parses an __empty__ dtype name: "str", or a numpy dtype that
// has an HDF5 type.
func emptyType(s string) (bridge.DType, string) {
	if s == emptyStr {
		return bridge.DType{Kind: 'O'}, ""
	}
	d, err := bridge.ParseDType(s)
	if err != nil {
		return d, fmt.Sprintf("dtype %q: %v", s, err)
	}
	t, reason, err := h5newType(d)
	if err != nil {
		return d, err.Error()
	}
	if reason != "" {
		return d, reason
	}
	C.H5Tclose(t)
	return d, ""
}

// newEmptyType creates the HDF5 type of a null dataspace's dataset or
// attribute (with the enum members, if any).
func newEmptyType(s string, enum pyval.Dict) (C.hid_t, string, error) {
	d, reason := emptyType(s)
	if reason != "" {
		return -1, reason, nil
	}
	if d.Kind == 'O' {
		t := C.h5_vlen_str(1)
		if t < 0 {
			return -1, "", h5err("creating a string type")
		}
		return t, "", nil
	}
	if enum != nil {
		return h5newEnum(d, enum)
	}
	return h5newType(d)
}

// writeEmpty creates a null-dataspace dataset.
func (w *h5writer) writeEmpty(it h5item) error {
	if err := w.ensureGroups(it.path, false); err != nil {
		return err
	}
	m := w.meta[it.path]
	t, reason, err := newEmptyType(m.empty, m.enum)
	if err != nil {
		return err
	}
	if reason != "" {
		return fmt.Errorf("%s: key %q: %s", w.src, it.key, reason) // checked in plan
	}
	defer C.H5Tclose(t)
	space := C.H5Screate(C.H5S_NULL)
	if space < 0 {
		return h5err("creating a null dataspace")
	}
	defer C.H5Sclose(space)
	cp, free := cstr(it.path)
	defer free()
	did := C.H5Dcreate2(w.file, cp, t, space, w.lcpl, C.H5P_DEFAULT, C.H5P_DEFAULT)
	if did < 0 {
		return h5err("creating dataset %q", it.path)
	}
	C.H5Dclose(did)
	return nil
}
