//go:build !nohdf5

package convert

// Variable-length string datasets (h5py's default for str), HDF5 ->
// mmappickle: a numpy '<U' array as long as the longest string in code
// points ('<U1' when there is none longer than 0), UTF-8 decoded (ASCII
// too); with Options.VlenAsList a generic value instead, a list of str
// (nested lists for n-d, a str for a scalar). A string that is not valid
// UTF-8 refuses the dataset. The strings are read by H5Dread into C memory
// in blocks of at most vlenBlockElems strings, each block reclaimed
// before the next: twice, once in the plan (scanVlen: validity, length)
// and once to copy.

/*
#include "hdf5_shim.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
	"unsafe"

	"mmpbridge/bridge"
)

// vlenBlockElems bounds the strings read at once.
var vlenBlockElems int64 = 1 << 16

// eachVlen reads the strings of a variable-length string dataset in C
// order, block by block: fn gets each block's strings (C memory, valid
// during the call) and the index of the first.
func (r *h5reader) eachVlen(did, ft C.hid_t, shape []int, fn func(first int64, strs [][]byte) error) error {
	mt := C.H5Tcopy(ft)
	if mt < 0 {
		return h5err("H5Tcopy")
	}
	defer C.H5Tclose(mt)
	fs := C.H5Dget_space(did)
	if fs < 0 {
		return h5err("H5Dget_space")
	}
	defer C.H5Sclose(fs)
	read := func(first int64, n int64, ms C.hid_t) error {
		buf := C.h5_read_vlen_block(did, mt, ms, fs, C.size_t(n))
		if buf == nil {
			return h5err("reading strings %d to %d", first, first+n)
		}
		defer C.h5_free_vlen(mt, ms, buf)
		strs := make([][]byte, n)
		for i, p := range unsafe.Slice(buf, max(n, 1))[:n] {
			if p != nil {
				strs[i] = unsafe.Slice((*byte)(unsafe.Pointer(p)), int(C.strlen(p)))
			}
		}
		return fn(first, strs)
	}
	if len(shape) == 0 {
		return read(0, 1, C.H5S_ALL)
	}
	n := int64(1)
	for _, s := range shape {
		n *= int64(s)
	}
	if n == 0 {
		return nil
	}
	// Contiguous runs of the C order, of at most vlenBlockElems strings.
	bp := planBlocksOf(shape, 1, nil, vlenBlockElems)
	start, count := make([]C.hsize_t, len(shape)), make([]C.hsize_t, len(shape))
	for i := int64(0); i < bp.n; i++ {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		off, cnt := bp.block(i, start, count)
		if C.H5Sselect_hyperslab(fs, C.H5S_SELECT_SET, &start[0], nil, &count[0], nil) < 0 {
			return h5err("selecting strings %d to %d", off, off+cnt)
		}
		elems := C.hsize_t(cnt)
		ms := C.H5Screate_simple(1, &elems, nil)
		if ms < 0 {
			return h5err("H5Screate_simple")
		}
		err := read(off, cnt, ms)
		C.H5Sclose(ms)
		if err != nil {
			return err
		}
	}
	return nil
}

// scanVlen checks that every string is UTF-8 and sets d's dtype ('<U' of
// the longest) and size, or marks it a list (Options.VlenAsList).
func (r *h5reader) scanVlen(did, ft C.hid_t, d *h5dataset) (string, error) {
	n := int64(1)
	for _, s := range d.h.Shape {
		n *= int64(s)
	}
	if r.opt.VlenAsList && n > maxAttrElems {
		return fmt.Sprintf("%d strings are too many for a list (at most %d; read as a numpy array instead, they have no such bound)", n, maxAttrElems), nil
	}
	longest, reason := 0, ""
	err := r.eachVlen(did, ft, d.h.Shape, func(first int64, strs [][]byte) error {
		for i, s := range strs {
			if !utf8.Valid(s) {
				reason = fmt.Sprintf("string %d (C order) is not valid UTF-8", first+int64(i))
				return errStop
			}
			longest = max(longest, utf8.RuneCount(s))
		}
		return nil
	})
	if err == errStop {
		return reason, nil
	}
	if err != nil {
		return "", err
	}
	if r.opt.VlenAsList {
		d.asList, d.nbytes = true, 0
		return "", nil
	}
	if int64(max(longest, 1))*4 > 1<<31-1 {
		return fmt.Sprintf("a string of %d code points is too long for a numpy dtype", longest), nil
	}
	d.h.DType = bridge.DType{ByteOrder: '<', Kind: 'U', ItemSize: 4 * max(longest, 1)}
	nb, err := d.h.NBytes()
	if err != nil {
		return err.Error(), nil
	}
	d.nbytes = nb
	return "", nil
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

var errStop error = stopErr{}

// copyVlen stores a variable-length string dataset: its '<U' array
// written into the reserved slot block by block, or its list of str.
func (r *h5reader) copyVlen(out *bridge.File, d *h5dataset, p *progress) error {
	member := fmt.Sprintf("dataset %q", d.path)
	cp, free := cstr(d.path)
	defer free()
	did := C.H5Dopen2(r.file, cp, C.H5P_DEFAULT)
	if did < 0 {
		return h5err("%s: %s", r.src, member)
	}
	defer C.H5Dclose(did)
	ft := C.H5Dget_type(did)
	if ft < 0 {
		return h5err("%s: %s: datatype", r.src, member)
	}
	defer C.H5Tclose(ft)
	if d.asList {
		var flat []any
		err := r.eachVlen(did, ft, d.h.Shape, func(_ int64, strs [][]byte) error {
			for _, s := range strs {
				flat = append(flat, string(s))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %s: %w", r.src, member, err)
		}
		var v any
		switch {
		case len(d.h.Shape) == 0:
			v = flat[0]
		default:
			v = nest(flat, d.h.Shape)
		}
		return out.Put(d.key, v)
	}
	slot, err := out.Reserve(d.key, d.h)
	if err != nil {
		return err
	}
	if d.nbytes > 0 {
		buf, err := slot.Bytes()
		if err != nil {
			return err
		}
		item := int64(d.h.DType.ItemSize)
		err = r.eachVlen(did, ft, d.h.Shape, func(first int64, strs [][]byte) error {
			b := buf[first*item : (first+int64(len(strs)))*item]
			clear(b)
			for i, s := range strs {
				o := int64(i) * item
				for len(s) > 0 && o < int64(i+1)*item { // (the file may have changed since scanVlen)
					c, n := utf8.DecodeRune(s)
					binary.LittleEndian.PutUint32(b[o:], uint32(c))
					s, o = s[n:], o+4
				}
			}
			C.h5_release(unsafe.Pointer(&b[0]), C.size_t(len(b)))
			p.add(int64(len(b)))
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %s: %w", r.src, member, err)
		}
	}
	return slot.Commit()
}
