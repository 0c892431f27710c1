//go:build !nohdf5

package convert

// HDF5 converters, through the HDF5 C library (cgo).
//
// HDF5 -> mmappickle: every dataset reached by hard links, in name order,
// depth first (each object once, as h5py's visititems), under its path
// without the leading "/" ("grp/sub/x"). Types map to the numpy dtype h5py
// reads, only where that is exact: standard integers and IEEE floats
// (float16 as h5py defines it) in either byte order (">i4" stays ">i4"),
// h5py's complex compound {r, i} (complex64/128), h5py's boolean enum (b1),
// other enums as their base integer (members in __attrs__, hdf5_meta.go),
// fixed-length strings (S<n>, read null-padded as h5py does),
// variable-length strings as '<U' of the longest or, with
// Options.VlenAsList, a list of str (hdf5_vlen.go), h5py's opaque
// datetime64/timedelta64 ("NUMPY:<M8[D]" tags) and untagged opaque (V<n>);
// a null dataspace (h5py.Empty) is the value None, its dtype in __attrs__.
// Refused (UnsupportedError, or skipped with SkipUnsupported): references,
// other compounds, other opaque tags, array and vlen sequence types,
// bitfields, strings that are not UTF-8, keys over 255 bytes or not UTF-8,
// filters the library cannot decode, external or virtual storage whose
// files are missing. Soft links (with their target), external links (with
// file and object) and further hard links are reported through
// Options.Skipped, not followed. The bytes are read by H5Dread in blocks
// (whole chunks for chunked datasets) straight into the reserved array's
// mapping. The attributes of all objects go, after the datasets, in one
// generic value under "__attrs__": {"/path": {"name": value}}, values as
// h5py reads them (hdf5_attrs.go): str (and lists of str) for
// variable-length strings, numpy scalars and arrays of the exact dtype for
// the rest, None for h5py.Empty; with reserved records of
// each dataset's layout, enum and emptiness (hdf5_meta.go).
//
// mmappickle -> HDF5 (hdf5_write.go): every array at "/"+key (groups
// created), contiguous or as its __layout__ record says (Options.Layout),
// with the type h5py writes for its dtype or its __enum__ record (U strings
// and long doubles refused); Fortran-ordered arrays are written in C order;
// a masked array becomes /KEY (data) and /KEY.mask (h5py's boolean); None
// with an __empty__ record a null-dataspace dataset. Other generic values
// are reported through Options.Skipped, except "__attrs__", whose
// attributes are written with the HDF5 type they came from (numpy scalars
// and arrays keep their dtype, str is variable-length UTF-8) and plain
// Python values as h5py writes them (int as int64, float as float64, lists
// as arrays), creating missing groups (hdf5_attrs_write.go).
//
// The C side is hdf5_shim.c: the wrappers over the C API that cgo cannot
// call directly (macros, version-dependent calls, callbacks), each defined
// once and declared by hdf5_shim.h, which every file's preamble includes.
//
// Finding the library: the #cgo lines below name Debian's and Ubuntu's
// layout (headers in /usr/include/hdf5/serial, libhdf5.so in
// /usr/lib/<multiarch>/hdf5/serial, both from libhdf5-dev), plus the usual
// Homebrew and /usr/local places; nonexistent directories are ignored by the
// compiler and linker, so a plain `go build ./...` works wherever one of
// them, or the compiler's default paths, holds hdf5.h and libhdf5. They do
// not need pkg-config, which libhdf5-dev does not install. Elsewhere add the
// paths with CGO_CFLAGS and CGO_LDFLAGS (for instance
// CGO_CFLAGS="$(pkg-config --cflags hdf5)" CGO_LDFLAGS="$(pkg-config --libs hdf5)"),
// or build without HDF5: `go build -tags nohdf5` gives a pure-Go program
// whose HDF5 conversions fail with ErrNoHDF5. The library is linked by
// hdf5_link.go (the shared libhdf5) or, with -tags hdf5static, by
// hdf5_link_static.go (libhdf5.a into the executable: no libhdf5 and its
// thirty dependencies to load at every start, 37 shared libraries -> 7).

/*
#cgo CFLAGS: -I/usr/include/hdf5/serial
#cgo linux,amd64 LDFLAGS: -L/usr/lib/x86_64-linux-gnu/hdf5/serial
#cgo linux,arm64 LDFLAGS: -L/usr/lib/aarch64-linux-gnu/hdf5/serial
#cgo linux,386 LDFLAGS: -L/usr/lib/i386-linux-gnu/hdf5/serial
#cgo linux,arm LDFLAGS: -L/usr/lib/arm-linux-gnueabihf/hdf5/serial -L/usr/lib/arm-linux-gnueabi/hdf5/serial
#cgo linux,ppc64le LDFLAGS: -L/usr/lib/powerpc64le-linux-gnu/hdf5/serial
#cgo linux,s390x LDFLAGS: -L/usr/lib/s390x-linux-gnu/hdf5/serial
#cgo linux,riscv64 LDFLAGS: -L/usr/lib/riscv64-linux-gnu/hdf5/serial
#cgo linux,mips64le LDFLAGS: -L/usr/lib/mips64el-linux-gnuabi64/hdf5/serial
#cgo darwin CFLAGS: -I/opt/homebrew/include -I/usr/local/include
#cgo darwin LDFLAGS: -L/opt/homebrew/lib -L/usr/local/lib

#include "hdf5_shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"unsafe"
)

// ErrNoHDF5 is the error of the HDF5 conversions in a program built with
// -tags nohdf5 (declared here too so that callers can test for it in any
// build).
var ErrNoHDF5 = errors.New("built without HDF5 support")

// hdf5Available tells whether this build has the HDF5 converters.
const hdf5Available = true

func init() {
	toMmpkl[HDF5] = hdf5ToMmpkl
	fromMmpkl[HDF5] = mmpklToHDF5
}

// hdf5BlockBytes is the block size of the streamed copies: a dataset moves
// in hyperslabs of about this size (but whole chunks), read by HDF5 straight
// into the output's mapping or written from the input's (see blockPlan).
var hdf5BlockBytes int64 = 1 << 20

// hdf5Sem serializes HDF5 work in the process: the library may be built
// without thread safety, and its error stack is per thread.
var hdf5Sem = make(chan struct{}, 1)

// h5begin takes the HDF5 lock, pins the goroutine to its thread (whose error
// stack is read) and turns off HDF5's printing of errors.
func h5begin(ctx context.Context) (func(), error) {
	select {
	case hdf5Sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	runtime.LockOSThread()
	var fn C.H5E_auto2_t
	var data unsafe.Pointer
	C.H5Eget_auto2(C.H5E_DEFAULT, &fn, &data)
	C.H5Eset_auto2(C.H5E_DEFAULT, nil, nil)
	return func() {
		C.H5Eset_auto2(C.H5E_DEFAULT, fn, data)
		runtime.UnlockOSThread()
		<-hdf5Sem
	}, nil
}

// h5err describes a failed HDF5 call with the library's error stack.
func h5err(format string, args ...any) error {
	var buf [600]C.char
	C.h5_errmsg(&buf[0], C.size_t(len(buf)))
	what := fmt.Sprintf(format, args...)
	msg := C.GoString(&buf[0])
	if msg == "" {
		return fmt.Errorf("%s failed (the HDF5 library gave no reason)", what)
	}
	// The file drivers name the system's error ("errno = 28, error message
	// = 'No space left on device'"): keep it, for errors.Is.
	if i := strings.Index(msg, "errno = "); i >= 0 {
		var n int
		if _, err := fmt.Sscanf(msg[i+len("errno = "):], "%d", &n); err == nil && n > 0 {
			return &h5Error{msg: what + ": " + msg, errno: syscall.Errno(n)}
		}
	}
	return fmt.Errorf("%s: %s", what, msg)
}

// h5Error is an HDF5 failure caused by a system call's error.
type h5Error struct {
	msg   string
	errno syscall.Errno
}

func (e *h5Error) Error() string { return e.msg }
func (e *h5Error) Unwrap() error { return e.errno }

func cstr(s string) (*C.char, func()) {
	c := C.CString(s)
	return c, func() { C.free(unsafe.Pointer(c)) }
}

// h5ids collects identifiers to close.
type h5ids []func()

func (c *h5ids) add(id C.hid_t, close func(C.hid_t) C.herr_t) {
	*c = append(*c, func() { close(id) })
}

func (c *h5ids) close() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

func closeType(id C.hid_t) C.herr_t  { return C.H5Tclose(id) }
func closeSpace(id C.hid_t) C.herr_t { return C.H5Sclose(id) }
func closeProp(id C.hid_t) C.herr_t  { return C.H5Pclose(id) }
func closeDset(id C.hid_t) C.herr_t  { return C.H5Dclose(id) }
func closeAttr(id C.hid_t) C.herr_t  { return C.H5Aclose(id) }
func closeObj(id C.hid_t) C.herr_t   { return C.H5Oclose(id) }

// ---------------------------------------------------------------------------
// Blocks

// blockPlan cuts an array into hyperslabs ("blocks") of about
// hdf5BlockBytes, visited in C order. Without a chunk shape, each block is
// one contiguous run of the C-ordered bytes (all indices of the later axes,
// a run on one axis, one index of the earlier ones). With one, blocks are
// made of whole chunks, so that each chunk is read (and decompressed) once.
type blockPlan struct {
	dims   []int
	shape  []int   // block shape (the last blocks on an axis may be cut)
	grid   []int64 // blocks along each axis
	item   int64   // bytes of one element
	row    int64   // bytes of one index of axis 0
	slab   int64   // blocks per block-index of axis 0
	n      int64   // blocks in all
	contig bool    // each block is one run of the C-ordered bytes
}

func planBlocks(dims []int, itemSize int, chunk []int) blockPlan {
	return planBlocksOf(dims, itemSize, chunk, hdf5BlockBytes)
}

// planBlocksOf is planBlocks with blocks of about target bytes.
func planBlocksOf(dims []int, itemSize int, chunk []int, target int64) blockPlan {
	nd := len(dims)
	bp := blockPlan{dims: dims, shape: make([]int, nd), grid: make([]int64, nd), item: int64(itemSize), contig: chunk == nil}
	unit := func(ax int) int64 {
		if ax < len(chunk) && chunk[ax] > 0 {
			return int64(min(chunk[ax], dims[ax]))
		}
		return 1
	}
	size := bp.item
	for ax := range nd {
		bp.shape[ax] = int(unit(ax))
		size *= unit(ax)
	}
	// Grow the block from the last axis while it stays under the target.
	for ax := nd - 1; ax >= 0; ax-- {
		per := size / int64(bp.shape[ax])
		u := unit(ax)
		cnt := min(max(int64(bp.shape[ax]), target/per/u*u), int64(dims[ax]))
		bp.shape[ax], size = int(cnt), per*cnt
		if cnt < int64(dims[ax]) {
			break
		}
	}
	bp.n, bp.slab, bp.row = 1, 1, bp.item
	for ax := range nd {
		bp.grid[ax] = (int64(dims[ax]) + int64(bp.shape[ax]) - 1) / int64(bp.shape[ax])
		bp.n *= bp.grid[ax]
		if ax > 0 {
			bp.slab *= bp.grid[ax]
			bp.row *= int64(dims[ax])
		}
	}
	return bp
}

// block returns block i's hyperslab (start, count: one entry per axis), its
// size in bytes and, for a contiguous plan, its offset in the array.
func (bp *blockPlan) block(i int64, start, count []C.hsize_t) (off, n int64) {
	n = bp.item
	for ax := len(bp.dims) - 1; ax >= 0; ax-- {
		g := i % bp.grid[ax]
		i /= bp.grid[ax]
		s := g * int64(bp.shape[ax])
		c := min(int64(bp.shape[ax]), int64(bp.dims[ax])-s)
		start[ax], count[ax] = C.hsize_t(s), C.hsize_t(c)
		n *= c
	}
	if bp.contig {
		// The C-order offset of start.
		stride := bp.item
		for ax := len(bp.dims) - 1; ax >= 0; ax-- {
			off += int64(start[ax]) * stride
			stride *= int64(bp.dims[ax])
		}
	}
	return off, n
}

// done tells which bytes of the array are complete once block i is: a
// contiguous block itself, or the rows of a finished slab of blocks along
// axis 0 (n is 0 otherwise).
func (bp *blockPlan) done(i, off, n int64) (int64, int64) {
	if bp.contig {
		return off, n
	}
	if (i+1)%bp.slab != 0 {
		return 0, 0
	}
	r := i / bp.slab * int64(bp.shape[0])
	rows := min(int64(bp.shape[0]), int64(bp.dims[0])-r)
	return r * bp.row, rows * bp.row
}
