//go:build !nohdf5

package convert

// numpy unicode arrays ('<U', '>U'), mmappickle -> HDF5: variable-length
// UTF-8 string datasets, as h5py writes
// create_dataset(k, data=a.astype(object), dtype=h5py.string_dtype()).
// Each element is its code points without the trailing NULs (numpy's
// str of the element), UTF-8 encoded. The plan reads every code point
// once (checkUnicode): a surrogate, a value above U+10FFFF or a NUL before
// the end of a string (HDF5 strings are C strings) refuses the key. The
// writing builds the C strings of one block at a time (at most
// vlenBlockElems strings, about hdf5BlockBytes of UTF-32), in C memory
// freed after its H5Dwrite.

/*
#include "hdf5_shim.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
	"unsafe"

	"mmpbridge/bridge"
)

// isUnicode tells whether an array's dtype is a numpy unicode string,
// written as variable-length UTF-8 strings.
func isUnicode(d bridge.DType) bool { return d.Kind == 'U' }

// h5newVlenStr creates h5py's variable-length UTF-8 string type.
func h5newVlenStr() (C.hid_t, error) {
	t := C.h5_vlen_utf8()
	if t < 0 {
		return -1, h5err("creating the variable-length string type")
	}
	return t, nil
}

// vlenFileItem is the size of a variable-length string in an HDF5 file
// (length and global heap ID), for the chunk size limit.
const vlenFileItem = 16

// unicodeBlockTarget is the size in UTF-32 bytes of the blocks an array of
// dtype d is written in: at most vlenBlockElems strings, about
// hdf5BlockBytes (at least one string).
func unicodeBlockTarget(d bridge.DType) int64 {
	item := int64(d.ItemSize)
	return min(vlenBlockElems, max(1, hdf5BlockBytes/item)) * item
}

// indexOf formats the index of element n (in storage order, Fortran or
// C) of an array of this shape as numpy does: (i, j), (i,), ().
func indexOf(shape []int, n int64, fortran bool) string {
	idx := make([]int64, len(shape))
	if fortran {
		for ax := range shape {
			idx[ax], n = n%int64(shape[ax]), n/int64(shape[ax])
		}
	} else {
		for ax := len(shape) - 1; ax >= 0; ax-- {
			idx[ax], n = n%int64(shape[ax]), n/int64(shape[ax])
		}
	}
	parts := make([]string, len(idx))
	for i, v := range idx {
		parts[i] = fmt.Sprint(v)
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// codePoint decodes the UTF-32 code point at b[0:4].
func codePoint(b []byte, be bool) uint32 {
	if be {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func validCodePoint(c uint32) bool {
	return c < utf8.MaxRune+1 && (c < 0xD800 || c > 0xDFFF)
}

// cpCheck follows the code points of one string: next says why the
// string, with c at position i, cannot be an HDF5 string, or "".
type cpCheck struct{ nul bool }

func (s *cpCheck) next(c uint32, i int64) string {
	switch {
	case !validCodePoint(c):
		return fmt.Sprintf("is not a valid Unicode code point (U+%04X at position %d of the string)", c, i)
	case c == 0:
		s.nul = true
	case s.nul:
		return "holds a NUL character before its end, which HDF5 strings (C strings) cannot"
	}
	return ""
}

// checkUnicode reads every code point of a unicode array, in storage
// order, in pieces of hdf5BlockBytes: it says why an element cannot be
// an HDF5 string, naming its index.
func (w *h5writer) checkUnicode(a *bridge.Array) (string, error) {
	item := int64(a.DType.ItemSize)
	if item == 0 || item%4 != 0 {
		return fmt.Sprintf("dtype %s has no whole code points", a.DType), nil
	}
	if a.NBytes == 0 {
		return "", nil
	}
	be := a.DType.ByteOrder == '>'
	fortran := a.Fortran && len(a.Shape) >= 2
	buf := make([]byte, min(a.NBytes, max(4, hdf5BlockBytes/4*4)))
	r := a.Section()
	var (
		pos  int64 // byte offset of buf[0]
		chk  cpCheck
		elem int64 = -1
	)
	for pos < a.NBytes {
		if err := w.ctx.Err(); err != nil {
			return "", err
		}
		n := min(int64(len(buf)), a.NBytes-pos)
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return "", fmt.Errorf("%s: reading its data: %w", w.src, err)
		}
		for o := int64(0); o < n; o += 4 {
			if e := (pos + o) / item; e != elem {
				elem, chk = e, cpCheck{}
			}
			if why := chk.next(codePoint(buf[o:], be), (pos+o)%item/4); why != "" {
				return fmt.Sprintf("element at %s %s", indexOf(a.Shape, elem, fortran), why), nil
			}
		}
		pos += n
	}
	return "", nil
}

// vlenBlock holds the C strings of one block: ptrs, an array of n char *
// into data. Both are C memory; free releases them.
type vlenBlock struct {
	ptrs, data unsafe.Pointer
}

func (v *vlenBlock) free() {
	C.free(v.ptrs)
	C.free(v.data)
}

// encodeUnicode builds the C strings of the elements in b (whole elements
// of dtype d, in C order), or says why element i cannot be one.
func encodeUnicode(b []byte, d bridge.DType) (v vlenBlock, bad int64, reason string) {
	item := d.ItemSize
	n := len(b) / item
	be := d.ByteOrder == '>'
	// UTF-8 takes at most 4 bytes per code point, as UTF-32: the strings
	// fit in len(b) bytes and a NUL each.
	size := len(b) + n
	v.ptrs = C.malloc(C.size_t(max(n, 1)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	v.data = C.malloc(C.size_t(max(size, 1)))
	if v.ptrs == nil || v.data == nil {
		v.free()
		return vlenBlock{}, -1, fmt.Sprintf("cannot allocate %d bytes for a block of strings", size)
	}
	ptrs := unsafe.Slice((**C.char)(v.ptrs), max(n, 1))
	data := unsafe.Slice((*byte)(v.data), max(size, 1))
	out := data[:0]
	for i := range n {
		elem := b[i*item : (i+1)*item]
		end := len(elem)
		for end >= 4 && codePoint(elem[end-4:], be) == 0 {
			end -= 4
		}
		start := len(out)
		var chk cpCheck
		for o := 0; o < len(elem); o += 4 {
			c := codePoint(elem[o:], be)
			if r := chk.next(c, int64(o/4)); r != "" {
				v.free()
				return vlenBlock{}, int64(i), r
			}
			if o < end {
				out = utf8.AppendRune(out, rune(c))
			}
		}
		out = append(out, 0)
		ptrs[i] = (*C.char)(unsafe.Pointer(&data[start]))
	}
	if len(out) > len(data) || (len(out) > 0 && &out[0] != &data[0]) {
		// Cannot happen (the bound above holds): the strings must be in
		// C memory.
		v.free()
		return vlenBlock{}, -1, "a block of strings outgrew its buffer"
	}
	return v, -1, ""
}

// writeStrings writes the strings of b (whole elements, C order, the
// first being C-order element first) with the selections ms and fs.
func writeStrings(did, mt, ms, fs C.hid_t, b []byte, d bridge.DType, shape []int, first int64, path string) error {
	v, bad, reason := encodeUnicode(b, d)
	if reason != "" {
		if bad >= 0 {
			return fmt.Errorf("dataset %q: element at %s %s", path, indexOf(shape, first+bad, false), reason)
		}
		return fmt.Errorf("dataset %q: %s", path, reason)
	}
	defer v.free()
	if C.H5Dwrite(did, mt, ms, fs, C.H5P_DEFAULT, v.ptrs) < 0 {
		return h5err("writing dataset %q", path)
	}
	return nil
}
