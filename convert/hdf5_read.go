//go:build !nohdf5

package convert

// HDF5 -> mmappickle: the walk of the file (visit, links), the check of
// each dataset (planDataset, checkStorage) and its copy into the output
// (copyDataset, readBlocks). See hdf5.go for what converts how.

/*
#include "hdf5_shim.h"
*/
import "C"
import (
	"context"
	"fmt"
	"os"
	"syscall"
	"unicode/utf8"
	"unsafe"

	"mmpbridge/bridge"
	"mmpbridge/pyval"
)

// ---------------------------------------------------------------------------
// HDF5 -> mmappickle

type h5dataset struct {
	path, key string
	h         bridge.ArrayHeader
	nbytes    int64
	chunk     []int
	filters   []h5filter // the pipeline, in order (hdf5_chunks.go)
	isString  bool       // fixed-length string: read as null-padded, as h5py does
	empty     string     // null dataspace (h5py.Empty) of this type (emptyTypeName): the key holds None
	vlen      bool       // variable-length strings, read as numpy U (hdf5_vlen.go)
	asList    bool       // vlen read as a list of str (Options.VlenAsList)
	efileDir  bool       // external files are relative to the HDF5 file's directory
}

type objID struct {
	fileno uint64
	key    [16]byte
}

type h5reader struct {
	ctx      context.Context
	src      string
	opt      *Options
	file     C.hid_t
	seen     map[objID]string
	datasets []h5dataset
	attrs    pyval.Dict
}

func hdf5ToMmpkl(ctx context.Context, src string, out *bridge.File, opt *Options, p *progress) error {
	release, err := h5begin(ctx)
	if err != nil {
		return err
	}
	defer release()
	r := &h5reader{ctx: ctx, src: src, opt: opt, seen: map[objID]string{}}
	if err := r.open(); err != nil {
		return err
	}
	defer C.H5Fclose(r.file)
	if err := r.visit("/"); err != nil {
		return err
	}
	if len(r.attrs) > 0 {
		kept := r.datasets[:0]
		for _, d := range r.datasets {
			if d.key == attrsKey {
				if err := opt.skip(&UnsupportedError{File: src, Member: fmt.Sprintf("dataset %q", d.path), Reason: "its key " + attrsKey + " is where the file's attributes go"}); err != nil {
					return err
				}
				continue
			}
			kept = append(kept, d)
		}
		r.datasets = kept
	}
	var total int64
	for _, d := range r.datasets {
		total += d.nbytes
	}
	p.total.Add(total)
	if err := ensureSpace(src, out, total); err != nil {
		return err
	}
	masks := r.maskedPairs()
	for i := range r.datasets {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := &r.datasets[i]
		if _, isMask := masks.ofData[d.key]; isMask {
			continue
		}
		if m, ok := masks.byData[d.key]; ok {
			if err := r.copyMasked(out, d, m, r.fillOf(d), p); err != nil {
				return err
			}
			continue
		}
		if err := r.copyDataset(out, d, p); err != nil {
			return err
		}
	}
	if len(r.attrs) > 0 {
		// Numpy scalars and arrays among them are written as numpy
		// pickles them (bridge.Scalar, bridge.NDArray).
		if err := out.Put(attrsKey, r.attrs); err != nil {
			return err
		}
	}
	return nil
}

func (r *h5reader) open() error {
	fapl := C.h5_fapl()
	if fapl < 0 {
		return h5err("H5Pcreate")
	}
	defer C.H5Pclose(fapl)
	name, free := cstr(r.src)
	defer free()
	if _, err := os.Stat(r.src); err != nil {
		return err
	}
	r.file = h5openFile(func() C.hid_t { return C.h5_open_ro(name, fapl) })
	if r.file < 0 {
		return h5err("%s: cannot open as HDF5", r.src)
	}
	return nil
}

// h5openFile runs open (H5Fopen or H5Fcreate) and marks the descriptor
// HDF5 opened close-on-exec, under syscall.ForkLock as Go's own opens are:
// HDF5 opens without O_CLOEXEC, and a child process started meanwhile (by
// os/exec in another goroutine) would hold the file, and HDF5's lock on it,
// for the child's whole life ("unable to lock file" when it is opened
// next).
func h5openFile(open func() C.hid_t) C.hid_t {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	f := open()
	if f >= 0 {
		C.h5_cloexec(f)
	}
	return f
}

func (r *h5reader) unsupported(member, reason string) error {
	return r.opt.skip(&UnsupportedError{File: r.src, Member: member, Reason: reason})
}

func (r *h5reader) skipped(member, reason string) {
	if r.opt.Skipped != nil {
		r.opt.Skipped(member, reason)
	}
}

// objInfo returns the type, identity and attribute count of the object at
// an absolute path.
func (r *h5reader) objInfo(path string) (typ int, id objID, nattrs int64, err error) {
	cp, free := cstr(path)
	defer free()
	var ctype C.int
	var fileno C.ulong
	var key [16]C.uchar
	var na C.ulonglong
	if C.h5_obj_info(r.file, cp, &ctype, &fileno, &key[0], &na) < 0 {
		return 0, id, 0, h5err("%s: object %q", r.src, path)
	}
	id.fileno = uint64(fileno)
	for i := range key {
		id.key[i] = byte(key[i])
	}
	return int(ctype), id, int64(na), nil
}

// visit converts the object at path (reached for the first time): its
// attributes, and a group's members in name order, depth first.
func (r *h5reader) visit(path string) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	typ, id, nattrs, err := r.objInfo(path)
	if err != nil {
		return err
	}
	r.seen[id] = path
	if typ == C.H5O_TYPE_NAMED_DATATYPE {
		r.skipped(fmt.Sprintf("datatype %q", path), "named datatypes have no mmappickle form")
		return nil
	}
	if nattrs > 0 {
		if err := r.readAttrs(path, nattrs); err != nil {
			return err
		}
	}
	switch typ {
	case C.H5O_TYPE_DATASET:
		return r.planDataset(path)
	case C.H5O_TYPE_GROUP:
		return r.visitGroup(path)
	}
	r.skipped(fmt.Sprintf("object %q", path), "unknown object type")
	return nil
}

func (r *h5reader) visitGroup(path string) error {
	cp, free := cstr(path)
	defer free()
	g := C.H5Gopen2(r.file, cp, C.H5P_DEFAULT)
	if g < 0 {
		return h5err("%s: group %q", r.src, path)
	}
	defer C.H5Gclose(g)
	var info C.H5G_info_t
	if C.H5Gget_info(g, &info) < 0 {
		return h5err("%s: group %q", r.src, path)
	}
	for i := C.hsize_t(0); i < info.nlinks; i++ {
		n := C.h5_link_name(g, i, nil, 0)
		if n < 0 {
			return h5err("%s: link %d of group %q", r.src, i, path)
		}
		buf := make([]C.char, n+1)
		if C.h5_link_name(g, i, &buf[0], C.size_t(n+1)) < 0 {
			return h5err("%s: link %d of group %q", r.src, i, path)
		}
		name := C.GoStringN(&buf[0], C.int(n))
		child := path + "/" + name
		if path == "/" {
			child = "/" + name
		}
		switch lt := C.h5_link_type(g, &buf[0]); lt {
		case C.H5L_TYPE_HARD:
		case C.H5L_TYPE_SOFT, C.H5L_TYPE_EXTERNAL:
			var file, obj [4096]C.char
			if C.h5_link_val(g, &buf[0], cbool(lt == C.H5L_TYPE_EXTERNAL), &file[0], &obj[0], C.size_t(len(obj))) < 0 {
				return h5err("%s: link %q", r.src, child)
			}
			if lt == C.H5L_TYPE_SOFT {
				r.skipped(fmt.Sprintf("link %q", child), fmt.Sprintf("soft link %q -> %q (not followed; its target is converted under its own path)", child, C.GoString(&obj[0])))
			} else {
				r.skipped(fmt.Sprintf("link %q", child), fmt.Sprintf("external link %q -> %q (not followed)", child, C.GoString(&file[0])+":"+C.GoString(&obj[0])))
			}
			continue
		default:
			if lt < 0 {
				return h5err("%s: link %q", r.src, child)
			}
			r.skipped(fmt.Sprintf("link %q", child), "user-defined link (not followed)")
			continue
		}
		_, id, _, err := r.objInfo(child)
		if err != nil {
			return err
		}
		if first, ok := r.seen[id]; ok {
			r.skipped(fmt.Sprintf("link %q", child), fmt.Sprintf("another hard link to %q, converted there", first))
			continue
		}
		if err := r.visit(child); err != nil {
			return err
		}
	}
	return nil
}

// planDataset checks a dataset and records it for copying.
func (r *h5reader) planDataset(path string) error {
	member := fmt.Sprintf("dataset %q", path)
	key := path[1:]
	if !utf8.ValidString(key) {
		return r.unsupported(member, "its name is not valid UTF-8 (mmappickle keys are UTF-8)")
	}
	if len(key) > 255 {
		return r.unsupported(member, fmt.Sprintf("its key is %d bytes long; mmappickle keys are at most 255 bytes", len(key)))
	}
	var ids h5ids
	defer ids.close()
	cp, free := cstr(path)
	defer free()
	did := C.H5Dopen2(r.file, cp, C.H5P_DEFAULT)
	if did < 0 {
		return h5err("%s: %s", r.src, member)
	}
	ids.add(did, closeDset)
	ft := C.H5Dget_type(did)
	if ft < 0 {
		return h5err("%s: %s: datatype", r.src, member)
	}
	ids.add(ft, closeType)
	space := C.H5Dget_space(did)
	if space < 0 {
		return h5err("%s: %s: dataspace", r.src, member)
	}
	ids.add(space, closeSpace)
	class := C.H5Tget_class(ft)
	vlen := false
	if class == C.H5T_STRING {
		v := C.H5Tis_variable_str(ft)
		if v < 0 {
			return h5err("%s: %s: H5Tis_variable_str", r.src, member)
		}
		vlen = v > 0
	}
	var dt bridge.DType
	var reason string
	var err error
	switch {
	case C.H5Sget_simple_extent_type(space) == C.H5S_NULL:
		// h5py.Empty: the key holds None, __empty__ names the type.
		name, reason, err := emptyTypeName(ft)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", r.src, member, err)
		}
		if reason != "" {
			return r.unsupported(member, reason)
		}
		enum, reason, err := r.enumOf(ft, class, name)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", r.src, member, err)
		}
		if reason != "" {
			return r.unsupported(member, reason)
		}
		r.datasets = append(r.datasets, h5dataset{path: path, key: key, empty: name})
		r.addMeta(path, metaEmpty, name)
		if enum != nil {
			r.addMeta(path, metaEnum, enum)
		}
		return nil
	case vlen:
		dt = bridge.DType{ByteOrder: '<', Kind: 'U', ItemSize: 4} // its length is found by scanVlen
	default:
		if dt, reason, err = h5typeOf(ft); err != nil {
			return fmt.Errorf("%s: %s: %w", r.src, member, err)
		}
		if reason != "" {
			return r.unsupported(member, reason)
		}
	}
	shape, reason, err := h5shape(space)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", r.src, member, err)
	}
	if reason != "" {
		return r.unsupported(member, reason)
	}
	d := h5dataset{path: path, key: key, h: bridge.ArrayHeader{DType: dt, Shape: shape}, isString: dt.Kind == 'S', vlen: vlen}
	if d.nbytes, err = d.h.NBytes(); err != nil {
		return r.unsupported(member, err.Error())
	}
	dcpl := C.H5Dget_create_plist(did)
	if dcpl < 0 {
		return h5err("%s: %s: creation properties", r.src, member)
	}
	ids.add(dcpl, closeProp)
	reason, err = r.checkStorage(dcpl, &d)
	if err == nil && reason == "" {
		err = readFilters(dcpl, &d)
	}
	if err == nil && reason == "" && vlen {
		reason, err = r.scanVlen(did, ft, &d)
	}
	if err != nil {
		return fmt.Errorf("%s: %s: %w", r.src, member, err)
	}
	if reason != "" {
		return r.unsupported(member, reason)
	}
	enum, reason, err := r.enumOf(ft, class, dt.String())
	if err != nil {
		return fmt.Errorf("%s: %s: %w", r.src, member, err)
	}
	if reason != "" {
		return r.unsupported(member, reason)
	}
	r.datasets = append(r.datasets, d)
	if d.chunk != nil {
		r.addMeta(path, metaLayout, layoutRecord(&d))
	}
	if enum != nil {
		r.addMeta(path, metaEnum, enum)
	}
	return nil
}

// enumOf returns the members of an enum type other than h5py's boolean
// (nil for any other type); dtype is the type's numpy dtype.
func (r *h5reader) enumOf(ft C.hid_t, class C.H5T_class_t, dtype string) (pyval.Dict, string, error) {
	if class != C.H5T_ENUM {
		return nil, "", nil
	}
	base, err := bridge.ParseDType(dtype)
	if err != nil || base.Kind == 'b' {
		return nil, "", nil
	}
	return h5enumMembers(ft, base)
}

// h5shape returns a dataspace's shape (nil for a scalar).
func h5shape(space C.hid_t) ([]int, string, error) {
	switch C.H5Sget_simple_extent_type(space) {
	case C.H5S_SCALAR:
		return []int{}, "", nil
	case C.H5S_NULL:
		return nil, "null dataspace (h5py.Empty): no array to hold", nil
	case C.H5S_SIMPLE:
	default:
		return nil, "", h5err("H5Sget_simple_extent_type")
	}
	nd := C.H5Sget_simple_extent_ndims(space)
	if nd < 0 {
		return nil, "", h5err("H5Sget_simple_extent_ndims")
	}
	dims := make([]C.hsize_t, max(nd, 1))
	if C.H5Sget_simple_extent_dims(space, &dims[0], nil) < 0 {
		return nil, "", h5err("H5Sget_simple_extent_dims")
	}
	shape := make([]int, nd)
	for i := range shape {
		if uint64(dims[i]) > 1<<62 {
			return nil, fmt.Sprintf("dimension of %d is too large", uint64(dims[i])), nil
		}
		shape[i] = int(dims[i])
	}
	return shape, "", nil
}

// copyDataset reserves the array in out and has HDF5 read the dataset into
// the reservation's mapping, block by block.
func (r *h5reader) copyDataset(out *bridge.File, d *h5dataset, p *progress) error {
	switch {
	case d.empty != "":
		return out.Put(d.key, nil)
	case d.vlen:
		return r.copyVlen(out, d, p)
	}
	member := fmt.Sprintf("dataset %q", d.path)
	var ids h5ids
	defer ids.close()
	var bp blockPlan
	if d.nbytes > 0 && len(d.h.Shape) > 0 {
		bp = planBlocks(d.h.Shape, d.h.DType.ItemSize, d.chunk)
	}
	dapl := C.h5_dapl()
	if dapl < 0 {
		return h5err("H5Pcreate")
	}
	ids.add(dapl, closeProp)
	if d.efileDir {
		prefix, free := cstr("${ORIGIN}")
		defer free()
		if C.H5Pset_efile_prefix(dapl, prefix) < 0 {
			return h5err("H5Pset_efile_prefix")
		}
	}
	cp, free := cstr(d.path)
	defer free()
	did := C.H5Dopen2(r.file, cp, dapl)
	if did < 0 {
		return h5err("%s: %s", r.src, member)
	}
	ids.add(did, closeDset)
	ft := C.H5Dget_type(did)
	if ft < 0 {
		return h5err("%s: %s: datatype", r.src, member)
	}
	ids.add(ft, closeType)
	mt := C.H5Tcopy(ft) // the memory type: no conversion (but string padding)
	if mt < 0 {
		return h5err("H5Tcopy")
	}
	ids.add(mt, closeType)
	if d.isString {
		// h5py reads fixed-length strings as null-padded (numpy S).
		if C.H5Tset_strpad(mt, C.H5T_STR_NULLPAD) < 0 {
			return h5err("H5Tset_strpad")
		}
	}
	if f, err := os.Open(r.src); err == nil {
		defer f.Close()
		if off, ok := r.contiguousSpan(did, mt, d, f); ok {
			return out.PutArray(d.key, d.h, &fileSpan{ctx: r.ctx, name: r.src, f: f, off: off, n: d.nbytes, p: p})
		}
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
		if len(d.h.Shape) == 0 {
			if C.H5Dread(did, mt, C.H5S_ALL, C.H5S_ALL, C.H5P_DEFAULT, unsafe.Pointer(&buf[0])) < 0 {
				return h5err("%s: reading %s", r.src, member)
			}
			p.add(d.nbytes)
		} else if d.fastChunks() {
			if err := r.readChunksParallel(did, mt, d, buf, slot, member, p); err != nil {
				return err
			}
		} else if err := r.readBlocks(did, mt, &bp, buf, member, p); err != nil {
			return err
		}
	}
	return slot.Commit()
}

// readBlocks has HDF5 read the dataset block by block into buf, the whole
// array's memory: the same hyperslab is selected in the file and in a
// dataspace of the array's shape over buf.
func (r *h5reader) readBlocks(did, mt C.hid_t, bp *blockPlan, buf []byte, member string, p *progress) error {
	fs := C.H5Dget_space(did)
	if fs < 0 {
		return h5err("%s: %s: dataspace", r.src, member)
	}
	defer C.H5Sclose(fs)
	nd := len(bp.dims)
	dims := make([]C.hsize_t, nd)
	for i, d := range bp.dims {
		dims[i] = C.hsize_t(d)
	}
	ms := C.H5Screate_simple(C.int(nd), &dims[0], nil)
	if ms < 0 {
		return h5err("H5Screate_simple")
	}
	defer C.H5Sclose(ms)
	start, count := make([]C.hsize_t, nd), make([]C.hsize_t, nd)
	for i := int64(0); i < bp.n; i++ {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		off, n := bp.block(i, start, count)
		if C.H5Sselect_hyperslab(fs, C.H5S_SELECT_SET, &start[0], nil, &count[0], nil) < 0 ||
			C.H5Sselect_hyperslab(ms, C.H5S_SELECT_SET, &start[0], nil, &count[0], nil) < 0 {
			return h5err("%s: %s: selecting block %d", r.src, member, i)
		}
		if C.H5Dread(did, mt, ms, fs, C.H5P_DEFAULT, unsafe.Pointer(&buf[0])) < 0 {
			return h5err("%s: reading %s", r.src, member)
		}
		if o, m := bp.done(i, off, n); m > 0 {
			C.h5_release(unsafe.Pointer(&buf[o]), C.size_t(m))
		}
		p.add(n)
	}
	return nil
}
