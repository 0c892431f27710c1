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
// fixed-length strings (S<n>, read null-padded as h5py does), h5py's opaque
// datetime64/timedelta64 ("NUMPY:<M8[D]" tags) and untagged opaque (V<n>).
// Refused (UnsupportedError, or skipped with SkipUnsupported):
// variable-length strings, references, other compounds and enums, other
// opaque tags, array and vlen types, bitfields, null dataspaces
// (h5py.Empty), keys over 255 bytes or not UTF-8, filters the library
// cannot decode, external or virtual storage whose files are missing. Soft,
// external and further hard links are reported through Options.Skipped.
// The bytes are read by H5Dread in blocks (whole chunks for chunked
// datasets) straight into the reserved array's mapping. The attributes of
// all objects go, after the datasets, in one generic value under
// "__attrs__": {"/path": {"name": value}}, values as h5py reads them made
// plain: str (and fixed-length strings) -> string, integers -> int64
// (*big.Int above), floats -> float64, complex -> complex128, bool -> bool,
// arrays -> nested lists.
//
// mmappickle -> HDF5: every array at "/"+key (groups created), contiguous,
// with the type h5py writes for its dtype (U strings and long doubles
// refused); Fortran-ordered arrays are written in C order; a masked array
// becomes /KEY (data) and /KEY.mask (h5py's boolean). Generic values are
// reported through Options.Skipped, except "__attrs__", whose attributes
// are written as h5py writes Python values (str as variable-length UTF-8,
// int as int64, float as float64, lists as arrays), creating missing groups.
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

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <hdf5.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

// h5_release drops the whole pages of [p, p+n), part of a shared file
// mapping, from the process: their data stays in the file (and page cache),
// so a copy through a mapping keeps a bounded resident size.
static void h5_release(void *p, size_t n) {
#if defined(MADV_DONTNEED) && (defined(__unix__) || defined(__APPLE__))
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + page - 1) / page * page, e = ((uintptr_t)p + n) / page * page;
	if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
#endif
}

static hid_t h5_open_ro(const char *name, hid_t fapl) { return H5Fopen(name, H5F_ACC_RDONLY, fapl); }
static hid_t h5_create(const char *name, hid_t fapl) { return H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, fapl); }

static hid_t h5_fapl(void) {
	hid_t p = H5Pcreate(H5P_FILE_ACCESS);
	if (p >= 0 && H5Pset_fclose_degree(p, H5F_CLOSE_STRONG) < 0) { H5Pclose(p); return -1; }
	return p;
}
static hid_t h5_dapl(void) { return H5Pcreate(H5P_DATASET_ACCESS); }
static hid_t h5_contiguous_dcpl(void) {
	hid_t p = H5Pcreate(H5P_DATASET_CREATE);
	if (p >= 0 && H5Pset_layout(p, H5D_CONTIGUOUS) < 0) { H5Pclose(p); return -1; }
	return p;
}
// Link and attribute names are UTF-8, as h5py writes them.
static hid_t h5_lcpl(void) {
	hid_t p = H5Pcreate(H5P_LINK_CREATE);
	if (p >= 0 && H5Pset_char_encoding(p, H5T_CSET_UTF8) < 0) { H5Pclose(p); return -1; }
	return p;
}
static hid_t h5_acpl(void) {
	hid_t p = H5Pcreate(H5P_ATTRIBUTE_CREATE);
	if (p >= 0 && H5Pset_char_encoding(p, H5T_CSET_UTF8) < 0) { H5Pclose(p); return -1; }
	return p;
}

// h5_predef returns a predefined type (not to be closed): kind i, u or f.
static hid_t h5_predef(char kind, int size, int be) {
	switch (kind) {
	case 'i':
		switch (size) {
		case 1: return be ? H5T_STD_I8BE : H5T_STD_I8LE;
		case 2: return be ? H5T_STD_I16BE : H5T_STD_I16LE;
		case 4: return be ? H5T_STD_I32BE : H5T_STD_I32LE;
		case 8: return be ? H5T_STD_I64BE : H5T_STD_I64LE;
		}
		break;
	case 'u':
		switch (size) {
		case 1: return be ? H5T_STD_U8BE : H5T_STD_U8LE;
		case 2: return be ? H5T_STD_U16BE : H5T_STD_U16LE;
		case 4: return be ? H5T_STD_U32BE : H5T_STD_U32LE;
		case 8: return be ? H5T_STD_U64BE : H5T_STD_U64LE;
		}
		break;
	case 'f':
		switch (size) {
		case 4: return be ? H5T_IEEE_F32BE : H5T_IEEE_F32LE;
		case 8: return be ? H5T_IEEE_F64BE : H5T_IEEE_F64LE;
		}
		break;
	}
	return -1;
}

// h5_float16 builds IEEE half precision exactly as h5py does.
static hid_t h5_float16(int be) {
	hid_t t = H5Tcopy(H5T_IEEE_F32LE);
	if (t < 0) return -1;
	if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0 ||
	    (be && H5Tset_order(t, H5T_ORDER_BE) < 0)) {
		H5Tclose(t);
		return -1;
	}
	return t;
}

// h5_float returns a new float type of 2, 4 or 8 bytes.
static hid_t h5_float(int size, int be) {
	if (size == 2) return h5_float16(be);
	hid_t p = h5_predef('f', size, be);
	return p < 0 ? -1 : H5Tcopy(p);
}

// h5_complex builds h5py's complex type: compound {r, i} of two floats.
static hid_t h5_complex(int size, int be) {
	hid_t part = h5_float(size / 2, be);
	if (part < 0) return -1;
	hid_t t = H5Tcreate(H5T_COMPOUND, size);
	if (t < 0 || H5Tinsert(t, "r", 0, part) < 0 || H5Tinsert(t, "i", size / 2, part) < 0) {
		if (t >= 0) H5Tclose(t);
		H5Tclose(part);
		return -1;
	}
	H5Tclose(part);
	return t;
}

// h5_native_complex is the in-memory complex128 type (Go's layout).
static hid_t h5_native_complex(void) {
	hid_t t = H5Tcreate(H5T_COMPOUND, 16);
	if (t < 0 || H5Tinsert(t, "r", 0, H5T_NATIVE_DOUBLE) < 0 || H5Tinsert(t, "i", 8, H5T_NATIVE_DOUBLE) < 0) {
		if (t >= 0) H5Tclose(t);
		return -1;
	}
	return t;
}

// h5_bool builds h5py's boolean type: enum of int8 FALSE=0, TRUE=1.
static hid_t h5_bool(void) {
	hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
	signed char f = 0, v = 1;
	if (t < 0 || H5Tenum_insert(t, "FALSE", &f) < 0 || H5Tenum_insert(t, "TRUE", &v) < 0) {
		if (t >= 0) H5Tclose(t);
		return -1;
	}
	return t;
}

static hid_t h5_fixed_str(size_t n) {
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0 || H5Tset_size(t, n) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0) {
		if (t >= 0) H5Tclose(t);
		return -1;
	}
	return t;
}

static hid_t h5_vlen_str(int utf8) {
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, utf8 ? H5T_CSET_UTF8 : H5T_CSET_ASCII) < 0) {
		if (t >= 0) H5Tclose(t);
		return -1;
	}
	return t;
}

static hid_t h5_opaque(size_t n, const char *tag) {
	hid_t t = H5Tcreate(H5T_OPAQUE, n);
	if (t >= 0 && tag[0] != 0 && H5Tset_tag(t, tag) < 0) { H5Tclose(t); return -1; }
	return t;
}

static hid_t h5_native(char kind) {
	switch (kind) {
	case 'i': return H5T_NATIVE_INT64;
	case 'u': return H5T_NATIVE_UINT64;
	case 'f': return H5T_NATIVE_DOUBLE;
	}
	return -1;
}

// h5_tag copies the opaque tag ("" when none) to buf.
static void h5_tag(hid_t t, char *buf, size_t n) {
	char *tag = H5Tget_tag(t);
	buf[0] = 0;
	if (tag != NULL) {
		strncpy(buf, tag, n - 1);
		buf[n - 1] = 0;
		H5free_memory(tag);
	}
}

static int h5_member_name(hid_t t, unsigned i, char *buf, size_t n) {
	char *s = H5Tget_member_name(t, i);
	if (s == NULL) return -1;
	strncpy(buf, s, n - 1);
	buf[n - 1] = 0;
	H5free_memory(s);
	return 0;
}

// h5_obj_info fills the object's type, a key identifying it in the file
// (file number and address or token) and its attribute count.
static int h5_obj_info(hid_t loc, const char *name, int *type, unsigned long *fileno, unsigned char key[16], unsigned long long *nattrs) {
	memset(key, 0, 16);
#if H5_VERSION_GE(1, 12, 0)
	H5O_info2_t oi;
	if (H5Oget_info_by_name3(loc, name, &oi, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS, H5P_DEFAULT) < 0) return -1;
	memcpy(key, &oi.token, sizeof(oi.token) < 16 ? sizeof(oi.token) : 16);
#else
	H5O_info_t oi;
	if (H5Oget_info_by_name2(loc, name, &oi, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS, H5P_DEFAULT) < 0) return -1;
	memcpy(key, &oi.addr, sizeof(oi.addr));
#endif
	*type = (int)oi.type;
	*fileno = oi.fileno;
	*nattrs = (unsigned long long)oi.num_attrs;
	return 0;
}

static int h5_link_type(hid_t loc, const char *name) {
	H5L_info_t li;
	if (H5Lget_info(loc, name, &li, H5P_DEFAULT) < 0) return -1;
	return (int)li.type;
}

static ssize_t h5_link_name(hid_t g, hsize_t i, char *buf, size_t n) {
	return H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, n, H5P_DEFAULT);
}

static hid_t h5_attr_by_idx(hid_t obj, hsize_t i) {
	return H5Aopen_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT);
}

// Vlen strings read into a C array of char*, reclaimed by h5_free_vlen.
static char **h5_read_vlen_attr(hid_t attr, hid_t memtype, size_t n) {
	char **buf = calloc(n ? n : 1, sizeof(char *));
	if (buf == NULL) return NULL;
	if (H5Aread(attr, memtype, buf) < 0) { free(buf); return NULL; }
	return buf;
}
static void h5_free_vlen(hid_t memtype, hid_t space, char **buf) {
#if H5_VERSION_GE(1, 12, 0)
	H5Treclaim(memtype, space, H5P_DEFAULT, buf);
#else
	H5Dvlen_reclaim(memtype, space, H5P_DEFAULT, buf);
#endif
	free(buf);
}

static int h5_external(hid_t dcpl, unsigned i, char *name, size_t n, long long *offset, unsigned long long *size) {
	off_t off;
	hsize_t sz;
	if (H5Pget_external(dcpl, i, n, name, &off, &sz) < 0) return -1;
	name[n - 1] = 0;
	*offset = (long long)off;
	*size = (unsigned long long)sz;
	return 0;
}

static int h5_filter(hid_t dcpl, unsigned i, char *name, size_t n, int *id, int *avail) {
	unsigned flags = 0, cfg = 0;
	size_t nelmts = 0;
	H5Z_filter_t f = H5Pget_filter2(dcpl, i, &flags, &nelmts, NULL, n, name, &cfg);
	if (f < 0) return -1;
	name[n - 1] = 0;
	*id = (int)f;
	*avail = 0;
	if (H5Zfilter_avail(f) > 0 && H5Zget_filter_info(f, &cfg) >= 0 && (cfg & H5Z_FILTER_CONFIG_DECODE_ENABLED)) *avail = 1;
	return 0;
}

// h5_errmsg describes the current error stack: the API call's message and
// the innermost cause.
typedef struct { char first[256]; char last[256]; int n; } h5_errs;

static herr_t h5_err_walk(unsigned n, const H5E_error2_t *e, void *data) {
	h5_errs *s = data;
	char minor[128] = "";
	H5Eget_msg(e->min_num, NULL, minor, sizeof minor);
	char *dst = s->n == 0 ? s->first : s->last;
	snprintf(dst, 256, "%s%s%s", e->desc ? e->desc : "", minor[0] ? " (" : "", minor[0] ? minor : "");
	if (minor[0]) strncat(dst, ")", 255 - strlen(dst));
	s->n++;
	return 0;
}

static void h5_errmsg(char *buf, size_t n) {
	h5_errs s;
	memset(&s, 0, sizeof s);
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_err_walk, &s);
	if (s.n > 1 && strcmp(s.first, s.last) != 0) snprintf(buf, n, "%s: %s", s.first, s.last);
	else snprintf(buf, n, "%s", s.first);
	H5Eclear2(H5E_DEFAULT);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"
	"unsafe"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
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
// Datatypes

// h5typeOf maps an HDF5 datatype to the numpy dtype h5py reads it as, when
// that mapping is exact; otherwise it returns why not.
func h5typeOf(t C.hid_t) (d bridge.DType, reason string, err error) {
	size := int(C.H5Tget_size(t))
	class := C.H5Tget_class(t)
	switch class {
	case C.H5T_INTEGER, C.H5T_FLOAT:
		kinds := []byte{'i', 'u'}
		if class == C.H5T_FLOAT {
			kinds = []byte{'f'}
		}
		for _, k := range kinds {
			for _, be := range []bool{false, true} {
				if ok, err := h5equalNumeric(t, k, size, be); err != nil || ok {
					return numericDType(k, size, be), "", err
				}
			}
		}
		if class == C.H5T_FLOAT {
			return d, fmt.Sprintf("%d-byte floating-point type with no exact numpy dtype (IEEE float16/32/64 only)", size), nil
		}
		return d, fmt.Sprintf("%d-byte integer type with %d-bit precision has no exact numpy dtype", size, int(C.H5Tget_precision(t))), nil
	case C.H5T_STRING:
		v := C.H5Tis_variable_str(t)
		if v < 0 {
			return d, "", h5err("H5Tis_variable_str")
		}
		if v > 0 {
			return d, "variable-length strings have no fixed-size numpy dtype", nil
		}
		return bridge.DType{ByteOrder: '|', Kind: 'S', ItemSize: size}, "", nil
	case C.H5T_COMPOUND:
		if be, ok, err := h5isComplex(t); err != nil || ok {
			return numericDType('c', size, be), "", err
		}
		return d, "compound (structured) type; only h5py's complex {r, i} compound is supported", nil
	case C.H5T_ENUM:
		if ok, err := h5isBool(t); err != nil || ok {
			return bridge.DType{ByteOrder: '|', Kind: 'b', ItemSize: 1}, "", err
		}
		return d, "enum type; only h5py's boolean enum (int8 FALSE=0, TRUE=1) is supported", nil
	case C.H5T_OPAQUE:
		var buf [256]C.char
		C.h5_tag(t, &buf[0], C.size_t(len(buf)))
		tag := C.GoString(&buf[0])
		if tag == "" {
			// h5py reads an untagged opaque type as numpy void.
			return bridge.DType{ByteOrder: '|', Kind: 'V', ItemSize: size}, "", nil
		}
		if s, ok := strings.CutPrefix(tag, "NUMPY:"); ok {
			// h5py's opaque_dtype: datetime64/timedelta64 tagged with dtype.str.
			if dt, err := bridge.ParseDType(s); err == nil && (dt.Kind == 'M' || dt.Kind == 'm') && dt.ItemSize == size && dt.String() == s {
				return dt, "", nil
			}
		}
		return d, fmt.Sprintf("opaque type tagged %q", tag), nil
	case C.H5T_REFERENCE:
		return d, "object or region references", nil
	case C.H5T_VLEN:
		return d, "variable-length sequences", nil
	case C.H5T_ARRAY:
		return d, "array datatype (fixed-size array elements)", nil
	case C.H5T_BITFIELD:
		return d, "bitfield type", nil
	case C.H5T_TIME:
		return d, "time type", nil
	}
	if class < 0 {
		return d, "", h5err("H5Tget_class")
	}
	return d, fmt.Sprintf("datatype class %d", int(class)), nil
}

func numericDType(kind byte, size int, be bool) bridge.DType {
	d := bridge.DType{ByteOrder: '<', Kind: kind, ItemSize: size}
	if be {
		d.ByteOrder = '>'
	}
	if size == 1 {
		d.ByteOrder = '|'
	}
	return d
}

// h5equalNumeric tells whether t is exactly the standard integer (i, u) or
// IEEE float (f: 2, 4 or 8 bytes) of that size and byte order.
func h5equalNumeric(t C.hid_t, kind byte, size int, be bool) (bool, error) {
	var ref C.hid_t
	if kind == 'f' && size == 2 {
		ref = C.h5_float16(cbool(be))
		if ref < 0 {
			return false, h5err("creating the float16 type")
		}
		defer C.H5Tclose(ref)
	} else {
		ref = C.h5_predef(C.char(kind), C.int(size), cbool(be))
		if ref < 0 {
			return false, nil
		}
	}
	eq := C.H5Tequal(t, ref)
	if eq < 0 {
		return false, h5err("H5Tequal")
	}
	return eq > 0, nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// h5isComplex recognizes h5py's complex types: a compound of exactly the
// members r and i, two equal IEEE floats of 4 or 8 bytes at offsets 0 and
// size/2.
func h5isComplex(t C.hid_t) (be, ok bool, err error) {
	size := int(C.H5Tget_size(t))
	if C.H5Tget_nmembers(t) != 2 || (size != 8 && size != 16) {
		return false, false, nil
	}
	names := []string{"r", "i"}
	for i := range 2 {
		var buf [64]C.char
		if C.h5_member_name(t, C.uint(i), &buf[0], C.size_t(len(buf))) < 0 {
			return false, false, h5err("H5Tget_member_name")
		}
		if C.GoString(&buf[0]) != names[i] || int(C.H5Tget_member_offset(t, C.uint(i))) != i*size/2 {
			return false, false, nil
		}
	}
	var order [2]int
	for i := range 2 {
		mt := C.H5Tget_member_type(t, C.uint(i))
		if mt < 0 {
			return false, false, h5err("H5Tget_member_type")
		}
		found := -1
		for _, big := range []bool{false, true} {
			eq, err := h5equalNumeric(mt, 'f', size/2, big)
			if err != nil {
				C.H5Tclose(mt)
				return false, false, err
			}
			if eq {
				found = int(cbool(big))
			}
		}
		C.H5Tclose(mt)
		if found < 0 {
			return false, false, nil
		}
		order[i] = found
	}
	if order[0] != order[1] {
		return false, false, nil
	}
	return order[0] == 1, true, nil
}

// h5isBool recognizes h5py's boolean: an enum over int8 with exactly
// FALSE=0 and TRUE=1.
func h5isBool(t C.hid_t) (bool, error) {
	super := C.H5Tget_super(t)
	if super < 0 {
		return false, h5err("H5Tget_super")
	}
	ok, err := h5equalNumeric(super, 'i', 1, false)
	if err == nil && !ok {
		ok, err = h5equalNumeric(super, 'i', 1, true)
	}
	C.H5Tclose(super)
	if err != nil || !ok || C.H5Tget_nmembers(t) != 2 {
		return false, err
	}
	want := map[string]int8{"FALSE": 0, "TRUE": 1}
	for i := range 2 {
		var buf [64]C.char
		if C.h5_member_name(t, C.uint(i), &buf[0], C.size_t(len(buf))) < 0 {
			return false, h5err("H5Tget_member_name")
		}
		var v C.schar
		if C.H5Tget_member_value(t, C.uint(i), unsafe.Pointer(&v)) < 0 {
			return false, h5err("H5Tget_member_value")
		}
		name := C.GoString(&buf[0])
		if w, ok := want[name]; !ok || w != int8(v) {
			return false, nil
		}
		delete(want, name)
	}
	return true, nil
}

// h5newType creates the HDF5 type h5py writes for a numpy dtype, or says
// why there is no exact one. The caller closes it.
func h5newType(d bridge.DType) (t C.hid_t, reason string, err error) {
	be := d.ByteOrder == '>'
	switch d.Kind {
	case 'b':
		t = C.h5_bool()
	case 'i', 'u':
		p := C.h5_predef(C.char(d.Kind), C.int(d.ItemSize), cbool(be))
		if p < 0 {
			return -1, fmt.Sprintf("dtype %s", d), nil
		}
		t = C.H5Tcopy(p)
	case 'f':
		if d.ItemSize > 8 {
			return -1, fmt.Sprintf("dtype %s (long double) has no portable HDF5 type", d), nil
		}
		t = C.h5_float(C.int(d.ItemSize), cbool(be))
	case 'c':
		if d.ItemSize > 16 {
			return -1, fmt.Sprintf("dtype %s (long double complex) has no portable HDF5 type", d), nil
		}
		t = C.h5_complex(C.int(d.ItemSize), cbool(be))
	case 'S':
		t = C.h5_fixed_str(C.size_t(d.ItemSize))
	case 'V':
		tag, free := cstr("")
		defer free()
		t = C.h5_opaque(C.size_t(d.ItemSize), tag)
	case 'M', 'm':
		// h5py.opaque_dtype's form, which h5py reads back as this dtype.
		tag, free := cstr("NUMPY:" + d.String())
		defer free()
		t = C.h5_opaque(C.size_t(d.ItemSize), tag)
	case 'U':
		return -1, fmt.Sprintf("dtype %s: numpy unicode strings have no exact HDF5 type (h5py refuses them too)", d), nil
	default:
		return -1, fmt.Sprintf("dtype %s has no HDF5 type", d), nil
	}
	if t < 0 {
		return -1, "", h5err("creating the HDF5 type of %s", d)
	}
	return t, "", nil
}

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
		cnt := min(max(int64(bp.shape[ax]), hdf5BlockBytes/per/u*u), int64(dims[ax]))
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

// ---------------------------------------------------------------------------
// HDF5 -> mmappickle

type h5dataset struct {
	path, key string
	h         bridge.ArrayHeader
	nbytes    int64
	chunk     []int
	filters   []h5filter // the pipeline, in order (hdf5_chunks.go)
	isString  bool       // fixed-length string: read as null-padded, as h5py does
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
	attrs    bridge.Dict
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
		if err := out.Put(attrsKey, r.attrs); err != nil {
			return err
		}
	}
	return nil
}

// attrsKey holds the attributes of every object of an HDF5 file.
const attrsKey = "__attrs__"

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
	r.file = C.h5_open_ro(name, fapl)
	if r.file < 0 {
		return h5err("%s: cannot open as HDF5", r.src)
	}
	return nil
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
		case C.H5L_TYPE_SOFT:
			r.skipped(fmt.Sprintf("link %q", child), "soft link (not followed; its target is converted under its own path)")
			continue
		case C.H5L_TYPE_EXTERNAL:
			r.skipped(fmt.Sprintf("link %q", child), "external link to another file (not followed)")
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
	dt, reason, err := h5typeOf(ft)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", r.src, member, err)
	}
	if reason != "" {
		return r.unsupported(member, reason)
	}
	space := C.H5Dget_space(did)
	if space < 0 {
		return h5err("%s: %s: dataspace", r.src, member)
	}
	ids.add(space, closeSpace)
	shape, reason, err := h5shape(space)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", r.src, member, err)
	}
	if reason != "" {
		return r.unsupported(member, reason)
	}
	d := h5dataset{path: path, key: key, h: bridge.ArrayHeader{DType: dt, Shape: shape}, isString: dt.Kind == 'S'}
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
	if err != nil {
		return fmt.Errorf("%s: %s: %w", r.src, member, err)
	}
	if reason != "" {
		return r.unsupported(member, reason)
	}
	r.datasets = append(r.datasets, d)
	return nil
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

// copyDataset reserves the array in out and has HDF5 read the dataset into
// the reservation's mapping, block by block.
func (r *h5reader) copyDataset(out *bridge.File, d *h5dataset, p *progress) error {
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

// ---------------------------------------------------------------------------
// Attributes, HDF5 -> Go

// maxAttrElems bounds the elements of one attribute read into memory.
const maxAttrElems = 1 << 24

func (r *h5reader) readAttrs(path string, n int64) error {
	cp, free := cstr(path)
	defer free()
	obj := C.H5Oopen(r.file, cp, C.H5P_DEFAULT)
	if obj < 0 {
		return h5err("%s: opening %q", r.src, path)
	}
	defer C.H5Oclose(obj)
	var items bridge.Dict
	for i := int64(0); i < n; i++ {
		aid := C.h5_attr_by_idx(obj, C.hsize_t(i))
		if aid < 0 {
			return h5err("%s: attribute %d of %q", r.src, i, path)
		}
		name, v, reason, err := readAttr(aid)
		C.H5Aclose(aid)
		member := fmt.Sprintf("attribute %q of %q", name, path)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", r.src, member, err)
		}
		if reason == "" && !utf8.ValidString(name) {
			reason = "its name is not valid UTF-8"
		}
		if reason != "" {
			if err := r.unsupported(member, reason); err != nil {
				return err
			}
			continue
		}
		items = append(items, bridge.DictItem{Key: name, Value: v})
	}
	if len(items) > 0 {
		r.attrs = append(r.attrs, bridge.DictItem{Key: path, Value: items})
	}
	return nil
}

// readAttr reads an attribute as a generic value: scalars as int64 (or
// *big.Int above int64), float64, complex128, bool, string ([]byte when not
// UTF-8); arrays as nested []any.
func readAttr(aid C.hid_t) (name string, v any, reason string, err error) {
	nlen := C.H5Aget_name(aid, 0, nil)
	if nlen < 0 {
		return "", nil, "", h5err("H5Aget_name")
	}
	nbuf := make([]C.char, nlen+1)
	C.H5Aget_name(aid, C.size_t(nlen+1), &nbuf[0])
	name = C.GoStringN(&nbuf[0], C.int(nlen))

	var ids h5ids
	defer ids.close()
	ft := C.H5Aget_type(aid)
	if ft < 0 {
		return name, nil, "", h5err("H5Aget_type")
	}
	ids.add(ft, closeType)
	space := C.H5Aget_space(aid)
	if space < 0 {
		return name, nil, "", h5err("H5Aget_space")
	}
	ids.add(space, closeSpace)
	shape, reason, err := h5shape(space)
	if err != nil || reason != "" {
		return name, nil, reason, err
	}
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
		if n > maxAttrElems {
			return name, nil, fmt.Sprintf("attribute of shape %v is too large (over %d elements)", shape, maxAttrElems), nil
		}
	}
	var flat []any
	switch class := C.H5Tget_class(ft); class {
	case C.H5T_INTEGER:
		if _, reason, err := h5typeOf(ft); err != nil || reason != "" {
			return name, nil, reason, err
		}
		if C.H5Tget_sign(ft) == C.H5T_SGN_NONE {
			vals := make([]uint64, max(n, 1))
			if err := readAttrInto(aid, C.h5_native('u'), unsafe.Pointer(&vals[0])); err != nil {
				return name, nil, "", err
			}
			for _, x := range vals[:n] {
				if x > math.MaxInt64 {
					flat = append(flat, new(big.Int).SetUint64(x))
				} else {
					flat = append(flat, int64(x))
				}
			}
		} else {
			vals := make([]int64, max(n, 1))
			if err := readAttrInto(aid, C.h5_native('i'), unsafe.Pointer(&vals[0])); err != nil {
				return name, nil, "", err
			}
			for _, x := range vals[:n] {
				flat = append(flat, x)
			}
		}
	case C.H5T_FLOAT:
		if _, reason, err := h5typeOf(ft); err != nil || reason != "" {
			return name, nil, reason, err
		}
		vals := make([]float64, max(n, 1))
		if err := readAttrInto(aid, C.h5_native('f'), unsafe.Pointer(&vals[0])); err != nil {
			return name, nil, "", err
		}
		for _, x := range vals[:n] {
			flat = append(flat, x)
		}
	case C.H5T_COMPOUND, C.H5T_ENUM:
		dt, reason, err := h5typeOf(ft)
		if err != nil || reason != "" {
			return name, nil, reason, err
		}
		if dt.Kind == 'b' {
			vals := make([]int8, max(n, 1))
			if err := readAttrInto(aid, ft, unsafe.Pointer(&vals[0])); err != nil {
				return name, nil, "", err
			}
			for _, x := range vals[:n] {
				flat = append(flat, x != 0)
			}
			break
		}
		mt := C.h5_native_complex()
		if mt < 0 {
			return name, nil, "", h5err("creating the complex type")
		}
		vals := make([]complex128, max(n, 1))
		err = readAttrInto(aid, mt, unsafe.Pointer(&vals[0]))
		C.H5Tclose(mt)
		if err != nil {
			return name, nil, "", err
		}
		for _, x := range vals[:n] {
			flat = append(flat, x)
		}
	case C.H5T_STRING:
		if flat, err = readStringAttr(aid, ft, space, n); err != nil {
			return name, nil, "", err
		}
	default:
		_, reason, err := h5typeOf(ft)
		if err == nil && reason == "" {
			reason = "attribute type has no generic value form"
		}
		return name, nil, reason, err
	}
	if len(shape) == 0 {
		return name, flat[0], "", nil
	}
	return name, nest(flat, shape), "", nil
}

func readAttrInto(aid, mt C.hid_t, buf unsafe.Pointer) error {
	if C.H5Aread(aid, mt, buf) < 0 {
		return h5err("H5Aread")
	}
	return nil
}

func readStringAttr(aid, ft, space C.hid_t, n int64) ([]any, error) {
	str := func(b []byte) any {
		if utf8.Valid(b) {
			return string(b)
		}
		return b
	}
	flat := make([]any, 0, n)
	v := C.H5Tis_variable_str(ft)
	if v < 0 {
		return nil, h5err("H5Tis_variable_str")
	}
	mt := C.H5Tcopy(ft)
	if mt < 0 {
		return nil, h5err("H5Tcopy")
	}
	defer C.H5Tclose(mt)
	if v > 0 {
		buf := C.h5_read_vlen_attr(aid, mt, C.size_t(n))
		if buf == nil {
			return nil, h5err("H5Aread")
		}
		defer C.h5_free_vlen(mt, space, buf)
		for _, p := range unsafe.Slice(buf, max(n, 1))[:n] {
			if p == nil {
				flat = append(flat, "")
				continue
			}
			flat = append(flat, str([]byte(C.GoString(p))))
		}
		return flat, nil
	}
	size := int64(C.H5Tget_size(ft))
	if C.H5Tset_strpad(mt, C.H5T_STR_NULLPAD) < 0 {
		return nil, h5err("H5Tset_strpad")
	}
	if n*size > maxAttrElems {
		return nil, fmt.Errorf("string attribute of %d bytes is too large", n*size)
	}
	buf := make([]byte, max(n*size, 1))
	if err := readAttrInto(aid, mt, unsafe.Pointer(&buf[0])); err != nil {
		return nil, err
	}
	for i := int64(0); i < n; i++ {
		s := buf[i*size : (i+1)*size]
		for len(s) > 0 && s[len(s)-1] == 0 {
			s = s[:len(s)-1]
		}
		flat = append(flat, str(append([]byte(nil), s...)))
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

// ---------------------------------------------------------------------------
// mmappickle -> HDF5

type h5item struct {
	key, path string
	arr       *bridge.Array
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
	tree    map[string]byte // path -> 'g' group, 'd' dataset (planned)
	created map[string]bool // groups made so far
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
	w.file = C.h5_create(cdst, fapl)
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
		if err := w.writeArray(it, p); err != nil {
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
				if attrsVal, err = in.Get(k); err != nil {
					return nil, nil, 0, wrapFile(w.src, err)
				}
				hasAttrs = true
				continue
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
			if fa, ok := m.Fill.(*bridge.Array); ok && len(fa.Shape) == 0 && fa.DType == m.Data.DType {
				b := make([]byte, fa.NBytes)
				if _, err := fa.Reader().ReadAt(b, 0); err != nil {
					return nil, nil, 0, fmt.Errorf("%s: key %q: fill value: %w", w.src, k, err)
				}
				fills = append(fills, h5attr{path: "/" + k, name: fillAttr, val: attrVal{dt: fa.DType, data: b}})
			}
		}
		reason := ""
		for _, it := range arrs {
			if reason = checkArrayForHDF5(it.arr); reason != "" {
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
			total += it.arr.NBytes
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
	ft, reason, err := h5newType(a.DType)
	if err != nil {
		return err
	}
	if reason != "" {
		return fmt.Errorf("%s: %s: %s", w.src, member, reason) // checked in plan
	}
	ids.add(ft, closeType)
	var space C.hid_t
	if len(a.Shape) == 0 {
		space = C.H5Screate(C.H5S_SCALAR)
	} else {
		dims := make([]C.hsize_t, len(a.Shape))
		for i, d := range a.Shape {
			dims[i] = C.hsize_t(d)
		}
		space = C.H5Screate_simple(C.int(len(dims)), &dims[0], nil)
	}
	if space < 0 {
		return h5err("creating the dataspace of %s", member)
	}
	ids.add(space, closeSpace)
	dcpl := C.h5_contiguous_dcpl()
	if dcpl < 0 {
		return h5err("H5Pcreate")
	}
	ids.add(dcpl, closeProp)
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
			if _, err := a.Reader().ReadAt(b, 0); err != nil {
				return fmt.Errorf("%s: %s: %w", w.src, member, err)
			}
		}
		if C.H5Dwrite(did, ft, C.H5S_ALL, C.H5S_ALL, C.H5P_DEFAULT, unsafe.Pointer(&b[0])) < 0 {
			return h5err("writing dataset %q", it.path)
		}
		p.add(a.NBytes)
		return nil
	}
	bw := &blockWriter{ctx: w.ctx, did: did, mt: ft, plan: planBlocks(a.Shape, a.DType.ItemSize, nil), path: it.path, p: p}
	bw.fs = C.H5Dget_space(did)
	if bw.fs < 0 {
		return h5err("H5Dget_space")
	}
	ids.add(bw.fs, closeSpace)
	bw.start, bw.count = make([]C.hsize_t, len(a.Shape)), make([]C.hsize_t, len(a.Shape))
	if b := a.Bytes(); b != nil && !a.Fortran {
		// C order straight from the mapping.
		for i := int64(0); i < bw.plan.n; i++ {
			if err := w.ctx.Err(); err != nil {
				return err
			}
			off, n := bw.plan.block(i, bw.start, bw.count)
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
	i            int64 // next block
	want         int64 // bytes of block i
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
			_, bw.want = bw.plan.block(bw.i, bw.start, bw.count)
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
}

func (w *h5writer) planAttrs(v any) ([]h5attr, error) {
	objs, ok := v.(bridge.Dict)
	if !ok {
		return nil, w.unsupported(fmt.Sprintf("key %q", attrsKey), fmt.Sprintf("holds %T, not a dict of paths to dicts of attributes", v))
	}
	var out []h5attr
	for _, o := range objs {
		path, ok := o.Key.(string)
		attrs, ok2 := o.Value.(bridge.Dict)
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
	var shape []int
	var flat []any
	var walk func(v any, depth int) string
	walk = func(v any, depth int) string {
		var list []any
		switch x := v.(type) {
		case []any:
			list = x
		case bridge.Tuple:
			list = x
		default:
			if depth < len(shape) {
				return "a ragged list (not rectangular)"
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
	if len(a.val.shape) == 0 {
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
	case a.val.strs != nil:
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
