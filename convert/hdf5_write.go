//go:build !nohdf5

package convert

// mmappickle -> HDF5: the plan of the keys (paths, dtypes, conflicts) and
// the writing of each array, block by block (writeArray, blockWriter).

/*
#include "hdf5_shim.h"
*/
import "C"
import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"unsafe"

	"mmpbridge/bridge"
)

// ---------------------------------------------------------------------------
// mmappickle -> HDF5

type h5item struct {
	key, path string
	arr       *bridge.Array // nil for a null-dataspace dataset (__empty__)
}

type h5attr struct {
	path, name string
	val        attrVal
}

type h5writer struct {
	ctx     context.Context
	src     string
	opt     *Options
	file    C.hid_t
	lcpl    C.hid_t
	tree    map[string]byte    // path -> 'g' group, 'd' dataset (planned)
	created map[string]bool    // groups made so far
	meta    map[string]*h5meta // the reserved records of __attrs__, by path (hdf5_meta.go)
}

func mmpklToHDF5(ctx context.Context, src string, in *bridge.Reader, dst string, opt *Options, p *progress) error {
	release, err := h5begin(ctx)
	if err != nil {
		return err
	}
	defer release()
	w := &h5writer{ctx: ctx, src: src, opt: opt, tree: map[string]byte{"/": 'g'}, created: map[string]bool{"/": true}}
	items, attrs, total, err := w.plan(in)
	if err != nil {
		return err
	}
	p.total.Add(total)

	fapl := C.h5_fapl()
	if fapl < 0 {
		return h5err("H5Pcreate")
	}
	defer C.H5Pclose(fapl)
	w.lcpl = C.h5_lcpl()
	if w.lcpl < 0 {
		return h5err("H5Pcreate")
	}
	defer C.H5Pclose(w.lcpl)
	cdst, free := cstr(dst)
	defer free()
	w.file = h5openFile(func() C.hid_t { return C.h5_create(cdst, fapl) })
	if w.file < 0 {
		return h5err("%s: cannot create HDF5 file", dst)
	}
	closed := false
	defer func() {
		if !closed {
			C.H5Fclose(w.file)
		}
	}()
	// Errors name dst (the temporary file's name, which the caller
	// replaces by the user's) and the dataset.
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		write := w.writeArray
		if it.arr == nil {
			write = func(it h5item, _ *progress) error { return w.writeEmpty(it) }
		}
		if err := write(it, p); err != nil {
			return fmt.Errorf("%s: %w", dst, err)
		}
	}
	for _, a := range attrs {
		if err := w.writeAttr(a); err != nil {
			return fmt.Errorf("%s: %w", dst, err)
		}
	}
	closed = true
	if C.H5Fclose(w.file) < 0 {
		return h5err("%s: closing", dst)
	}
	return nil
}

func (w *h5writer) unsupported(member, reason string) error {
	return w.opt.skip(&UnsupportedError{File: w.src, Member: member, Reason: reason})
}

// plan checks every key before anything is written: dtypes, paths and
// their conflicts, attribute values. It returns the arrays to write, the
// attributes and the bytes to copy.
func (w *h5writer) plan(in *bridge.Reader) (items []h5item, attrs []h5attr, total int64, err error) {
	var attrsVal any
	var fills []h5attr
	hasAttrs := false
	// The records of __attrs__ first: they say how to write the arrays.
	if kind, err := in.KindOf(attrsKey); err == nil && kind == bridge.KindValue {
		v, err := in.Get(attrsKey)
		if err != nil {
			return nil, nil, 0, wrapFile(w.src, err)
		}
		if w.meta, attrsVal, err = w.planMeta(v); err != nil {
			return nil, nil, 0, err
		}
	}
	for _, k := range in.Keys() {
		member := fmt.Sprintf("key %q", k)
		kind, err := in.KindOf(k)
		if err != nil {
			return nil, nil, 0, wrapFile(w.src, err)
		}
		var arrs []h5item
		switch kind {
		case bridge.KindValue:
			if k == attrsKey {
				hasAttrs = true
				continue
			}
			if m := w.meta["/"+k]; m != nil && m.empty != "" {
				v, err := in.Get(k)
				if err != nil {
					return nil, nil, 0, wrapFile(w.src, err)
				}
				if v == nil {
					arrs = []h5item{{key: k, path: "/" + k}}
					break
				}
			}
			if w.opt.Skipped != nil {
				w.opt.Skipped(member, "generic values have no HDF5 form")
			}
			continue
		case bridge.KindArray:
			a, err := in.Array(k)
			if err != nil {
				return nil, nil, 0, wrapFile(w.src, err)
			}
			arrs = []h5item{{key: k, path: "/" + k, arr: a}}
		case bridge.KindMasked:
			m, err := in.Masked(k)
			if err != nil {
				return nil, nil, 0, wrapFile(w.src, err)
			}
			// The mask goes to KEY.mask, as h5py's booleans, the fill
			// value (when kept) to the attribute fill_value of KEY.
			arrs = []h5item{{key: k, path: "/" + k, arr: m.Data}, {key: k, path: "/" + k + ".mask", arr: m.Mask}}
			fa, ok := m.Fill.(*bridge.Array)
			if isUnicode(m.Data.DType) && m.Fill != nil {
				// Attributes have no numpy unicode form (h5newType).
				if w.opt.Skipped != nil {
					w.opt.Skipped(member, "its fill value: a numpy unicode fill value is not written (the data and mask are)")
				}
			} else if ok && len(fa.Shape) == 0 && fa.DType == m.Data.DType {
				b := make([]byte, fa.NBytes)
				if _, err := fa.Section().ReadAt(b, 0); err != nil {
					return nil, nil, 0, fmt.Errorf("%s: key %q: fill value: %w", w.src, k, err)
				}
				fills = append(fills, h5attr{path: "/" + k, name: fillAttr, val: attrVal{dt: fa.DType, data: b}})
			}
		}
		reason := ""
		for _, it := range arrs {
			if it.arr != nil {
				reason = checkArrayForHDF5(it.arr)
				if reason == "" {
					reason = w.checkMeta(it)
				}
				if reason == "" && isUnicode(it.arr.DType) {
					if reason, err = w.checkUnicode(it.arr); err != nil {
						return nil, nil, 0, fmt.Errorf("%s: %w", member, err)
					}
				}
			} else if m := w.meta[it.path]; m.enum != nil {
				t, r, err := newEmptyType(m.empty, m.enum)
				if err != nil {
					return nil, nil, 0, err
				}
				if reason = r; r == "" {
					C.H5Tclose(t)
				}
			}
			if reason != "" {
				break
			}
			if reason = checkPath(it.path); reason != "" {
				break
			}
		}
		if reason == "" {
			reason = w.claim(arrs)
		}
		if reason != "" {
			if err := w.unsupported(member, reason); err != nil {
				return nil, nil, 0, err
			}
			continue
		}
		for _, it := range arrs {
			if it.arr != nil {
				total += it.arr.NBytes
			}
		}
		items = append(items, arrs...)
	}
	if hasAttrs {
		if attrs, err = w.planAttrs(attrsVal); err != nil {
			return nil, nil, 0, err
		}
	}
	for _, f := range fills {
		if slices.ContainsFunc(attrs, func(a h5attr) bool { return a.path == f.path && a.name == f.name }) {
			if err := w.unsupported(fmt.Sprintf("key %q", f.path[1:]), fmt.Sprintf("its fill value: %s already has an attribute %q", f.path, f.name)); err != nil {
				return nil, nil, 0, err
			}
			continue
		}
		attrs = append(attrs, f)
	}
	return items, attrs, total, nil
}

// fillAttr is the attribute of a masked array's data dataset that holds
// its fill value (a scalar of the data's dtype).
const fillAttr = "fill_value"

func checkArrayForHDF5(a *bridge.Array) string {
	if len(a.Shape) > 32 {
		return fmt.Sprintf("%d dimensions (HDF5 allows 32)", len(a.Shape))
	}
	if isUnicode(a.DType) {
		return "" // variable-length UTF-8 strings (hdf5_vlen_write.go)
	}
	t, reason, err := h5newType(a.DType)
	if err != nil {
		return err.Error()
	}
	if reason == "" {
		C.H5Tclose(t)
	}
	return reason
}

// checkPath tells why an absolute path cannot name an HDF5 object.
func checkPath(path string) string {
	if path == "/" {
		return ""
	}
	if strings.IndexByte(path, 0) >= 0 {
		return "the name holds a NUL character, which HDF5 names cannot"
	}
	for _, c := range strings.Split(path[1:], "/") {
		switch c {
		case "":
			return fmt.Sprintf("path %q has an empty component (leading, trailing or double slash)", path)
		case ".":
			return fmt.Sprintf("path %q has a component \".\", which HDF5 reads as the current group", path)
		}
	}
	return ""
}

// claim reserves the paths of a key's datasets (and their groups) in the
// planned tree, or says why they conflict with earlier ones.
func (w *h5writer) claim(arrs []h5item) string {
	add := map[string]byte{}
	get := func(p string) byte {
		if k, ok := add[p]; ok {
			return k
		}
		return w.tree[p]
	}
	for _, it := range arrs {
		parts := strings.Split(it.path[1:], "/")
		for i := 1; i < len(parts); i++ {
			g := "/" + strings.Join(parts[:i], "/")
			switch get(g) {
			case 'd':
				return fmt.Sprintf("%q would need a group where dataset %q is", it.path, g)
			case 0:
				add[g] = 'g'
			}
		}
		switch get(it.path) {
		case 'd':
			return fmt.Sprintf("dataset %q is already written", it.path)
		case 'g':
			return fmt.Sprintf("%q is already a group", it.path)
		}
		add[it.path] = 'd'
	}
	for p, k := range add {
		w.tree[p] = k
	}
	return ""
}

// ensureGroups creates the groups above path that do not exist yet.
func (w *h5writer) ensureGroups(path string, self bool) error {
	parts := strings.Split(path[1:], "/")
	n := len(parts) - 1
	if self {
		n++
	}
	for i := 1; i <= n; i++ {
		g := "/" + strings.Join(parts[:i], "/")
		if w.created[g] {
			continue
		}
		cg, free := cstr(g)
		id := C.H5Gcreate2(w.file, cg, w.lcpl, C.H5P_DEFAULT, C.H5P_DEFAULT)
		free()
		if id < 0 {
			return h5err("creating group %q", g)
		}
		C.H5Gclose(id)
		w.created[g] = true
	}
	return nil
}

func (w *h5writer) writeArray(it h5item, p *progress) error {
	member := fmt.Sprintf("key %q", it.key)
	a := it.arr
	if err := w.ensureGroups(it.path, false); err != nil {
		return err
	}
	var ids h5ids
	defer ids.close()
	ft, reason, err := w.newType(it)
	if err != nil {
		return err
	}
	if reason != "" {
		return fmt.Errorf("%s: %s: %s", w.src, member, reason) // checked in plan
	}
	ids.add(ft, closeType)
	var dcpl C.hid_t
	var maxdims *C.hsize_t
	layout := w.layoutOf(it)
	if layout != nil {
		var md []C.hsize_t
		if dcpl, md, err = layout.dcpl(a.Shape); err != nil {
			return fmt.Errorf("%s: %w", member, err)
		}
		if md != nil {
			maxdims = &md[0]
		}
	} else if dcpl = C.h5_contiguous_dcpl(); dcpl < 0 {
		return h5err("H5Pcreate")
	}
	ids.add(dcpl, closeProp)
	var space C.hid_t
	if len(a.Shape) == 0 {
		space = C.H5Screate(C.H5S_SCALAR)
	} else {
		dims := make([]C.hsize_t, len(a.Shape))
		for i, d := range a.Shape {
			dims[i] = C.hsize_t(d)
		}
		space = C.H5Screate_simple(C.int(len(dims)), &dims[0], maxdims)
	}
	if space < 0 {
		return h5err("creating the dataspace of %s", member)
	}
	ids.add(space, closeSpace)
	cp, free := cstr(it.path)
	defer free()
	did := C.H5Dcreate2(w.file, cp, ft, space, w.lcpl, dcpl, C.H5P_DEFAULT)
	if did < 0 {
		return h5err("creating dataset %q", it.path)
	}
	ids.add(did, closeDset)
	if a.NBytes == 0 {
		return nil
	}
	if len(a.Shape) == 0 {
		b := a.Bytes()
		if b == nil {
			b = make([]byte, a.NBytes)
			if _, err := a.Section().ReadAt(b, 0); err != nil {
				return fmt.Errorf("%s: %s: %w", w.src, member, err)
			}
		}
		if isUnicode(a.DType) {
			if err := writeStrings(did, ft, C.H5S_ALL, C.H5S_ALL, b, a.DType, nil, 0, it.path); err != nil {
				return err
			}
		} else if C.H5Dwrite(did, ft, C.H5S_ALL, C.H5S_ALL, C.H5P_DEFAULT, unsafe.Pointer(&b[0])) < 0 {
			return h5err("writing dataset %q", it.path)
		}
		p.add(a.NBytes)
		return nil
	}
	bw := &blockWriter{ctx: w.ctx, did: did, mt: ft, plan: planBlocks(a.Shape, a.DType.ItemSize, nil), path: it.path, p: p}
	if isUnicode(a.DType) {
		// C strings built block by block (hdf5_vlen_write.go).
		bw.str = &a.DType
		bw.plan = planBlocksOf(a.Shape, a.DType.ItemSize, nil, unicodeBlockTarget(a.DType))
	}
	bw.fs = C.H5Dget_space(did)
	if bw.fs < 0 {
		return h5err("H5Dget_space")
	}
	ids.add(bw.fs, closeSpace)
	bw.start, bw.count = make([]C.hsize_t, len(a.Shape)), make([]C.hsize_t, len(a.Shape))
	b := a.Bytes()
	if b != nil && !a.Fortran && layout != nil && bw.str == nil {
		// Chunked: blocks of whole chunks, each selected in the file and
		// in the whole mapped array, so that every chunk is written (and
		// compressed) once.
		return bw.writeChunked(b, layout.chunks)
	}
	if layout != nil {
		// Streamed C-order bytes: blocks of whole rows of chunks, when
		// such a row is not too big.
		row := int64(a.DType.ItemSize) * int64(layout.chunks[0])
		for _, d := range a.Shape[1:] {
			row *= int64(d)
		}
		target := max(row, hdf5BlockBytes) / row * row
		if bw.str != nil {
			// Strings: rows of chunks as long as a row is not more
			// strings than a block of them, else plain blocks (HDF5's
			// chunk cache completes the chunks).
			target = max(row, unicodeBlockTarget(a.DType)) / row * row
			if row > unicodeBlockTarget(a.DType) {
				target = 0
			}
		}
		if row <= maxChunkRowBytes && target > 0 {
			bw.plan = planBlocksOf(a.Shape, a.DType.ItemSize, nil, target)
		}
	}
	if b != nil && !a.Fortran {
		// C order straight from the mapping.
		for i := int64(0); i < bw.plan.n; i++ {
			if err := w.ctx.Err(); err != nil {
				return err
			}
			off, n := bw.plan.block(i, bw.start, bw.count)
			bw.off = off
			if err := bw.write(b[off : off+n]); err != nil {
				return err
			}
			C.h5_release(unsafe.Pointer(&b[off]), C.size_t(n))
		}
		return nil
	}
	// Fortran order (transposed on the way) or an array not mapped: C-order
	// bytes are gathered into one block at a time.
	bw.buf = make([]byte, 0, bw.plan.maxBytes())
	if err := a.WriteC(bw); err != nil {
		return fmt.Errorf("%s: %s: %w", w.src, member, err)
	}
	if bw.i != bw.plan.n {
		return fmt.Errorf("%s: %s: array data ended after %d of %d blocks", w.src, member, bw.i, bw.plan.n)
	}
	return nil
}

// blockWriter writes a dataset's C-ordered bytes block by block.
type blockWriter struct {
	ctx          context.Context
	did, mt, fs  C.hid_t
	plan         blockPlan
	path         string
	p            *progress
	start, count []C.hsize_t
	buf          []byte
	i            int64         // next block
	off, want    int64         // C-order byte offset and bytes of block i
	str          *bridge.DType // numpy unicode, written as C strings
}

// maxBytes is the size of the largest block.
func (bp *blockPlan) maxBytes() int64 {
	n := bp.item
	for _, s := range bp.shape {
		n *= int64(s)
	}
	return n
}

// write writes one block (the next hyperslab from the selection).
func (bw *blockWriter) write(b []byte) error {
	elems := C.hsize_t(int64(len(b)) / bw.plan.item)
	if C.H5Sselect_hyperslab(bw.fs, C.H5S_SELECT_SET, &bw.start[0], nil, &bw.count[0], nil) < 0 {
		return h5err("selecting a block of %q", bw.path)
	}
	ms := C.H5Screate_simple(1, &elems, nil)
	if ms < 0 {
		return h5err("H5Screate_simple")
	}
	if bw.str != nil {
		err := writeStrings(bw.did, bw.mt, ms, bw.fs, b, *bw.str, bw.plan.dims, bw.off/bw.plan.item, bw.path)
		C.H5Sclose(ms)
		if err != nil {
			return err
		}
		bw.p.add(int64(len(b)))
		return nil
	}
	rc := C.H5Dwrite(bw.did, bw.mt, ms, bw.fs, C.H5P_DEFAULT, unsafe.Pointer(&b[0]))
	if rc < 0 {
		// Before any other call: a call that succeeds clears the error
		// stack h5err reads.
		err := h5err("writing dataset %q", bw.path)
		C.H5Sclose(ms)
		return err
	}
	C.H5Sclose(ms)
	bw.p.add(int64(len(b)))
	return nil
}

// maxChunkRowBytes bounds the block gathered from streamed bytes to write
// whole rows of chunks.
const maxChunkRowBytes = 64 << 20

// writeChunked writes a C-ordered mapped array in blocks of whole chunks.
func (bw *blockWriter) writeChunked(b []byte, chunks []int) error {
	shape := bw.plan.dims
	bp := planBlocks(shape, int(bw.plan.item), chunks)
	dims := make([]C.hsize_t, len(shape))
	for i, d := range shape {
		dims[i] = C.hsize_t(d)
	}
	ms := C.H5Screate_simple(C.int(len(dims)), &dims[0], nil)
	if ms < 0 {
		return h5err("H5Screate_simple")
	}
	defer C.H5Sclose(ms)
	for i := int64(0); i < bp.n; i++ {
		if err := bw.ctx.Err(); err != nil {
			return err
		}
		off, n := bp.block(i, bw.start, bw.count)
		if C.H5Sselect_hyperslab(bw.fs, C.H5S_SELECT_SET, &bw.start[0], nil, &bw.count[0], nil) < 0 ||
			C.H5Sselect_hyperslab(ms, C.H5S_SELECT_SET, &bw.start[0], nil, &bw.count[0], nil) < 0 {
			return h5err("selecting a block of %q", bw.path)
		}
		if C.H5Dwrite(bw.did, bw.mt, ms, bw.fs, C.H5P_DEFAULT, unsafe.Pointer(&b[0])) < 0 {
			return h5err("writing dataset %q", bw.path)
		}
		if o, m := bp.done(i, off, n); m > 0 {
			C.h5_release(unsafe.Pointer(&b[o]), C.size_t(m))
		}
		bw.p.add(n)
	}
	return nil
}

// newType creates the HDF5 type of an array: h5py's for its dtype, or the
// enum recorded in __attrs__.
func (w *h5writer) newType(it h5item) (C.hid_t, string, error) {
	if m := w.meta[it.path]; m != nil && m.enum != nil {
		return h5newEnum(it.arr.DType, m.enum)
	}
	if isUnicode(it.arr.DType) {
		t, err := h5newVlenStr()
		return t, "", err
	}
	return h5newType(it.arr.DType)
}

// layoutOf is the recorded layout an array is written with (nil:
// contiguous).
func (w *h5writer) layoutOf(it h5item) *h5layout {
	if m := w.meta[it.path]; m != nil && m.layout != nil && w.opt.Layout == LayoutKeep {
		return m.layout
	}
	return nil
}

// checkMeta tells why an array cannot be written as __attrs__ records it.
func (w *h5writer) checkMeta(it h5item) string {
	if l := w.layoutOf(it); l != nil {
		item := it.arr.DType.ItemSize
		if isUnicode(it.arr.DType) {
			item = vlenFileItem
		}
		if r := l.fits(it.arr.Shape, item); r != "" {
			return fmt.Sprintf("its %s record: %s (a contiguous layout ignores it)", metaLayout, r)
		}
	}
	if m := w.meta[it.path]; m != nil && m.enum != nil {
		t, r, err := h5newEnum(it.arr.DType, m.enum)
		if err != nil {
			return err.Error()
		}
		if r != "" {
			return fmt.Sprintf("its %s record: %s", metaEnum, r)
		}
		C.H5Tclose(t)
	}
	return ""
}

// Write gathers streamed C-order bytes into blocks.
func (bw *blockWriter) Write(b []byte) (int, error) {
	done := 0
	for len(b) > 0 {
		if bw.i >= bw.plan.n {
			return done, io.ErrShortWrite
		}
		if len(bw.buf) == 0 {
			if err := bw.ctx.Err(); err != nil {
				return done, err
			}
			bw.off, bw.want = bw.plan.block(bw.i, bw.start, bw.count)
		}
		n := min(int64(len(b)), bw.want-int64(len(bw.buf)))
		bw.buf = append(bw.buf, b[:n]...)
		b, done = b[n:], done+int(n)
		if int64(len(bw.buf)) == bw.want {
			if err := bw.write(bw.buf); err != nil {
				return done, err
			}
			bw.buf = bw.buf[:0]
			bw.i++
		}
	}
	return done, nil
}
