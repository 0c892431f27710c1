//go:build !nohdf5

package convert

// A dataset's storage, HDF5 -> mmappickle: its chunk shape, filters the
// library can decode, external and virtual storage whose files exist
// (checkStorage, called by planDataset).

/*
#include "hdf5_shim.h"
*/
import "C"
import (
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// checkStorage reads the layout: chunk shape, filters the library can
// decode, external and virtual storage whose files exist.
func (r *h5reader) checkStorage(dcpl C.hid_t, d *h5dataset) (string, error) {
	switch C.H5Pget_layout(dcpl) {
	case C.H5D_CHUNKED:
		nd := len(d.h.Shape)
		dims := make([]C.hsize_t, max(nd, 1))
		if n := C.H5Pget_chunk(dcpl, C.int(len(dims)), &dims[0]); n < 0 {
			return "", h5err("H5Pget_chunk")
		}
		d.chunk = make([]int, nd)
		for i := range nd {
			d.chunk[i] = int(dims[i])
		}
	case C.H5D_VIRTUAL:
		var n C.size_t
		if C.H5Pget_virtual_count(dcpl, &n) < 0 {
			return "", h5err("H5Pget_virtual_count")
		}
		for i := C.size_t(0); i < n; i++ {
			var buf [4096]C.char
			if C.H5Pget_virtual_filename(dcpl, i, &buf[0], C.size_t(len(buf))) < 0 {
				return "", h5err("H5Pget_virtual_filename")
			}
			name := C.GoString(&buf[0])
			if name == "." {
				continue
			}
			// HDF5 fills the parts whose source file is missing with the
			// fill value: refuse rather than give made-up data.
			if r.findFile(name) == "" {
				return fmt.Sprintf("virtual dataset whose source file %q cannot be found", name), nil
			}
		}
	}
	nf := C.H5Pget_nfilters(dcpl)
	if nf < 0 {
		return "", h5err("H5Pget_nfilters")
	}
	for i := C.uint(0); i < C.uint(nf); i++ {
		var buf [256]C.char
		var id, avail C.int
		if C.h5_filter(dcpl, i, &buf[0], C.size_t(len(buf)), &id, &avail) < 0 {
			return "", h5err("H5Pget_filter2")
		}
		if avail == 0 {
			return fmt.Sprintf("filter %d (%s) cannot be decoded by this HDF5 library", int(id), C.GoString(&buf[0])), nil
		}
	}
	ne := C.H5Pget_external_count(dcpl)
	if ne < 0 {
		return "", h5err("H5Pget_external_count")
	}
	need := d.nbytes
	for i := C.uint(0); i < C.uint(ne); i++ {
		var buf [4096]C.char
		var off C.longlong
		var size C.ulonglong
		if C.h5_external(dcpl, i, &buf[0], C.size_t(len(buf)), &off, &size) < 0 {
			return "", h5err("H5Pget_external")
		}
		name := C.GoString(&buf[0])
		found := r.findFile(name)
		if found == "" {
			return fmt.Sprintf("external storage file %q cannot be found", name), nil
		}
		if !filepath.IsAbs(name) {
			if _, err := os.Stat(name); err != nil {
				d.efileDir = true // found beside the HDF5 file, not in the working directory
			}
		}
		use := need
		if uint64(size) != math.MaxUint64 {
			use = min(need, int64(size))
		}
		need -= use
		if st, err := os.Stat(found); err != nil || st.Size() < int64(off)+use {
			return fmt.Sprintf("external storage file %q is shorter than the data it holds", name), nil
		}
	}
	return "", nil
}

// findFile looks for a file named by the HDF5 file: as given (absolute or
// relative to the working directory), or relative to the HDF5 file.
func (r *h5reader) findFile(name string) string {
	if _, err := os.Stat(name); err == nil {
		return name
	}
	if !filepath.IsAbs(name) {
		p := filepath.Join(filepath.Dir(r.src), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
