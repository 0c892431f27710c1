//go:build !nohdf5

// The C side of the HDF5 converter: small wrappers over the HDF5 C API
// that cgo cannot call directly (macros, variadic or version-dependent
// calls, callbacks), each defined once. hdf5_shim.h declares them for
// the Go files; they are hidden from other libraries (libmmp exports only
// its mmp_* functions).

#include "hdf5_shim.h"

#include <stdio.h>
#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

// Errors: the current error stack as one message.

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

void h5_errmsg(char *buf, size_t n) {
	h5_errs s;
	memset(&s, 0, sizeof s);
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_err_walk, &s);
	if (s.n > 1 && strcmp(s.first, s.last) != 0) snprintf(buf, n, "%s: %s", s.first, s.last);
	else snprintf(buf, n, "%s", s.first);
	H5Eclear2(H5E_DEFAULT);
}

// Attributes read (hdf5_attrs.go).

hid_t h5_attr_by_idx(hid_t obj, hsize_t i) {
	return H5Aopen_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT);
}

// Vlen strings read into a C array of char*, reclaimed by h5_free_vlen
// (attributes here, datasets by h5_read_vlen_block).
char **h5_read_vlen_attr(hid_t attr, hid_t memtype, size_t n) {
	char **buf = calloc(n ? n : 1, sizeof(char *));
	if (buf == NULL) return NULL;
	if (H5Aread(attr, memtype, buf) < 0) { free(buf); return NULL; }
	return buf;
}

void h5_free_vlen(hid_t memtype, hid_t space, char **buf) {
#if H5_VERSION_GE(1, 12, 0)
	H5Treclaim(memtype, space, H5P_DEFAULT, buf);
#else
	H5Dvlen_reclaim(memtype, space, H5P_DEFAULT, buf);
#endif
	free(buf);
}

// Attributes written (hdf5_attrs_write.go).

hid_t h5_acpl(void) {
	hid_t p = H5Pcreate(H5P_ATTRIBUTE_CREATE);
	if (p >= 0 && H5Pset_char_encoding(p, H5T_CSET_UTF8) < 0) { H5Pclose(p); return -1; }
	return p;
}

hid_t h5_vlen_str(int utf8) {
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, utf8 ? H5T_CSET_UTF8 : H5T_CSET_ASCII) < 0) {
		if (t >= 0) H5Tclose(t);
		return -1;
	}
	return t;
}

// Chunked and contiguous storage read directly (hdf5_chunks.go).

#if H5_VERSION_GE(1, 10, 2)
int h5_read_chunk(hid_t d, const hsize_t *off, uint32_t *mask, void *buf, size_t size) {
#if defined(H5Dread_chunk_vers) && H5Dread_chunk_vers >= 2
	size_t n = size;
	return H5Dread_chunk2(d, H5P_DEFAULT, off, mask, buf, &n) < 0 ? -1 : 0;
#else
	(void)size;
	return H5Dread_chunk(d, H5P_DEFAULT, off, mask, buf) < 0 ? -1 : 0;
#endif
}
#else
int h5_read_chunk(hid_t d, const hsize_t *off, uint32_t *mask, void *buf, size_t size) { return -1; }
#endif

// h5_contiguous_offset is the file offset of a contiguous dataset's data,
// or -1 (not contiguous, not allocated, external).
long long h5_contiguous_offset(hid_t did) {
	hid_t dcpl = H5Dget_create_plist(did);
	if (dcpl < 0) return -1;
	int ok = H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_external_count(dcpl) == 0 && H5Pget_nfilters(dcpl) == 0;
	H5Pclose(dcpl);
	if (!ok) return -1;
	haddr_t a = H5Dget_offset(did);
	if (a == HADDR_UNDEF || a > (haddr_t)INT64_MAX) { H5Eclear2(H5E_DEFAULT); return -1; }
	return (long long)a;
}

// h5_read_point reads the element at coords (one per axis) into buf.
int h5_read_point(hid_t did, hid_t mt, int nd, const hsize_t *coords, void *buf) {
	hid_t fs = H5Dget_space(did);
	if (fs < 0) return -1;
	hsize_t one = 1;
	hid_t ms = H5Screate_simple(1, &one, NULL);
	int rc = -1;
	if (ms >= 0 && H5Sselect_elements(fs, H5S_SELECT_SET, 1, coords) >= 0 &&
	    H5Dread(did, mt, ms, fs, H5P_DEFAULT, buf) >= 0) rc = 0;
	if (ms >= 0) H5Sclose(ms);
	H5Sclose(fs);
	return rc;
}

// h5_filter_cd returns filter i's id and first client value (the element
// size, for shuffle).
int h5_filter_cd(hid_t dcpl, unsigned i, int *id, unsigned *cd0) {
	unsigned flags = 0, cfg = 0, cd[8] = {0};
	size_t n = 8;
	char name[64];
	H5Z_filter_t f = H5Pget_filter2(dcpl, i, &flags, &n, cd, sizeof name, name, &cfg);
	if (f < 0) return -1;
	*id = (int)f;
	*cd0 = n > 0 ? cd[0] : 0;
	return 0;
}

// Files opened and walked (hdf5_read.go).

// h5_cloexec marks the descriptor of an open file (the sec2 driver's int)
// close-on-exec.
void h5_cloexec(hid_t file) {
#if defined(__unix__) || defined(__APPLE__)
	void *h = NULL;
	if (H5Fget_vfd_handle(file, H5P_DEFAULT, &h) >= 0 && h != NULL) {
		int fd = *(int *)h, fl = fcntl(fd, F_GETFD);
		if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	}
#endif
}

// h5_release drops the whole pages of [p, p+n), part of a shared file
// mapping, from the process: their data stays in the file (and page cache),
// so a copy through a mapping keeps a bounded resident size.
void h5_release(void *p, size_t n) {
#if defined(MADV_DONTNEED) && (defined(__unix__) || defined(__APPLE__))
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + page - 1) / page * page, e = ((uintptr_t)p + n) / page * page;
	if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
#endif
}

hid_t h5_open_ro(const char *name, hid_t fapl) { return H5Fopen(name, H5F_ACC_RDONLY, fapl); }

hid_t h5_fapl(void) {
	hid_t p = H5Pcreate(H5P_FILE_ACCESS);
	if (p >= 0 && H5Pset_fclose_degree(p, H5F_CLOSE_STRONG) < 0) { H5Pclose(p); return -1; }
	return p;
}

hid_t h5_dapl(void) { return H5Pcreate(H5P_DATASET_ACCESS); }

// h5_obj_info fills the object's type, a key identifying it in the file
// (file number and address or token) and its attribute count.
int h5_obj_info(hid_t loc, const char *name, int *type, unsigned long *fileno, unsigned char key[16], unsigned long long *nattrs) {
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

// h5_link_val copies a soft link's target, or an external link's file
// and object, into buf (n bytes; NUL-terminated, truncated).
int h5_link_val(hid_t loc, const char *name, int external, char *file, char *obj, size_t n) {
	H5L_info_t li;
	file[0] = obj[0] = 0;
	if (H5Lget_info(loc, name, &li, H5P_DEFAULT) < 0) return -1;
	size_t sz = li.u.val_size;
	char *buf = malloc(sz ? sz : 1);
	if (buf == NULL) return -1;
	if (H5Lget_val(loc, name, buf, sz, H5P_DEFAULT) < 0) { free(buf); return -1; }
	if (!external) {
		size_t m = sz < n ? sz : n - 1;
		memcpy(obj, buf, m);
		obj[m] = 0;
	} else {
		unsigned flags;
		const char *f = NULL, *o = NULL;
		if (H5Lunpack_elink_val(buf, sz, &flags, &f, &o) < 0) { free(buf); return -1; }
		strncpy(file, f, n - 1); file[n - 1] = 0;
		strncpy(obj, o, n - 1); obj[n - 1] = 0;
	}
	free(buf);
	return 0;
}

int h5_link_type(hid_t loc, const char *name) {
	H5L_info_t li;
	if (H5Lget_info(loc, name, &li, H5P_DEFAULT) < 0) return -1;
	return (int)li.type;
}

ssize_t h5_link_name(hid_t g, hsize_t i, char *buf, size_t n) {
	return H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, n, H5P_DEFAULT);
}

// Storage: external files and filters (hdf5_storage.go).

int h5_external(hid_t dcpl, unsigned i, char *name, size_t n, long long *offset, unsigned long long *size) {
	off_t off;
	hsize_t sz;
	if (H5Pget_external(dcpl, i, n, name, &off, &sz) < 0) return -1;
	name[n - 1] = 0;
	*offset = (long long)off;
	*size = (unsigned long long)sz;
	return 0;
}

int h5_filter(hid_t dcpl, unsigned i, char *name, size_t n, int *id, int *avail) {
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

// Datatypes (hdf5_types.go).

// h5_predef returns a predefined type (not to be closed): kind i, u or f.
hid_t h5_predef(char kind, int size, int be) {
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
hid_t h5_float16(int be) {
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
hid_t h5_float(int size, int be) {
	if (size == 2) return h5_float16(be);
	hid_t p = h5_predef('f', size, be);
	return p < 0 ? -1 : H5Tcopy(p);
}

// h5_complex builds h5py's complex type: compound {r, i} of two floats.
hid_t h5_complex(int size, int be) {
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

// h5_bool builds h5py's boolean type: enum of int8 FALSE=0, TRUE=1.
hid_t h5_bool(void) {
	hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
	signed char f = 0, v = 1;
	if (t < 0 || H5Tenum_insert(t, "FALSE", &f) < 0 || H5Tenum_insert(t, "TRUE", &v) < 0) {
		if (t >= 0) H5Tclose(t);
		return -1;
	}
	return t;
}

hid_t h5_fixed_str(size_t n) {
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0 || H5Tset_size(t, n) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0) {
		if (t >= 0) H5Tclose(t);
		return -1;
	}
	return t;
}

hid_t h5_opaque(size_t n, const char *tag) {
	hid_t t = H5Tcreate(H5T_OPAQUE, n);
	if (t >= 0 && tag[0] != 0 && H5Tset_tag(t, tag) < 0) { H5Tclose(t); return -1; }
	return t;
}

// h5_tag copies the opaque tag ("" when none) to buf.
void h5_tag(hid_t t, char *buf, size_t n) {
	char *tag = H5Tget_tag(t);
	buf[0] = 0;
	if (tag != NULL) {
		strncpy(buf, tag, n - 1);
		buf[n - 1] = 0;
		H5free_memory(tag);
	}
}

int h5_member_name(hid_t t, unsigned i, char *buf, size_t n) {
	char *s = H5Tget_member_name(t, i);
	if (s == NULL) return -1;
	strncpy(buf, s, n - 1);
	buf[n - 1] = 0;
	H5free_memory(s);
	return 0;
}

// Variable-length strings read (hdf5_vlen.go).

char **h5_read_vlen_block(hid_t did, hid_t mt, hid_t ms, hid_t fs, size_t n) {
	char **buf = calloc(n ? n : 1, sizeof(char *));
	if (buf == NULL) return NULL;
	if (H5Dread(did, mt, ms, fs, H5P_DEFAULT, buf) < 0) { free(buf); return NULL; }
	return buf;
}

// Variable-length strings written (hdf5_vlen_write.go).

// h5_vlen_utf8 is h5py.string_dtype(): variable-length, UTF-8, NUL-terminated.
hid_t h5_vlen_utf8(void) {
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0) return -1;
	if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) { H5Tclose(t); return -1; }
	return t;
}

// Files created and datasets written (hdf5_write.go).

hid_t h5_create(const char *name, hid_t fapl) { return H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, fapl); }

hid_t h5_contiguous_dcpl(void) {
	hid_t p = H5Pcreate(H5P_DATASET_CREATE);
	if (p >= 0 && H5Pset_layout(p, H5D_CONTIGUOUS) < 0) { H5Pclose(p); return -1; }
	return p;
}

// Link and attribute names are UTF-8, as h5py writes them.
hid_t h5_lcpl(void) {
	hid_t p = H5Pcreate(H5P_LINK_CREATE);
	if (p >= 0 && H5Pset_char_encoding(p, H5T_CSET_UTF8) < 0) { H5Pclose(p); return -1; }
	return p;
}
