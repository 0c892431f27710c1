//go:build !nohdf5

// The HDF5 converter's C wrappers (hdf5_shim.c), for the Go files' cgo
// preambles.

#ifndef MMP_HDF5_SHIM_H
#define MMP_HDF5_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <hdf5.h>

// MMP_READ_CHUNK: H5Dread_chunk is there (HDF5 >= 1.10.2).
#if H5_VERSION_GE(1, 10, 2)
#define MMP_READ_CHUNK 1
#else
#define MMP_READ_CHUNK 0
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

void h5_errmsg(char *buf, size_t n);
hid_t h5_attr_by_idx(hid_t obj, hsize_t i);
char **h5_read_vlen_attr(hid_t attr, hid_t memtype, size_t n);
void h5_free_vlen(hid_t memtype, hid_t space, char **buf);
hid_t h5_acpl(void);
hid_t h5_vlen_str(int utf8);
int h5_read_chunk(hid_t d, const hsize_t *off, uint32_t *mask, void *buf, size_t size);
long long h5_contiguous_offset(hid_t did);
int h5_read_point(hid_t did, hid_t mt, int nd, const hsize_t *coords, void *buf);
int h5_filter_cd(hid_t dcpl, unsigned i, int *id, unsigned *cd0);
void h5_cloexec(hid_t file);
void h5_release(void *p, size_t n);
hid_t h5_open_ro(const char *name, hid_t fapl);
hid_t h5_fapl(void);
hid_t h5_dapl(void);
int h5_obj_info(hid_t loc, const char *name, int *type, unsigned long *fileno, unsigned char key[16], unsigned long long *nattrs);
int h5_link_val(hid_t loc, const char *name, int external, char *file, char *obj, size_t n);
int h5_link_type(hid_t loc, const char *name);
ssize_t h5_link_name(hid_t g, hsize_t i, char *buf, size_t n);
int h5_external(hid_t dcpl, unsigned i, char *name, size_t n, long long *offset, unsigned long long *size);
int h5_filter(hid_t dcpl, unsigned i, char *name, size_t n, int *id, int *avail);
hid_t h5_predef(char kind, int size, int be);
hid_t h5_float16(int be);
hid_t h5_float(int size, int be);
hid_t h5_complex(int size, int be);
hid_t h5_bool(void);
hid_t h5_fixed_str(size_t n);
hid_t h5_opaque(size_t n, const char *tag);
void h5_tag(hid_t t, char *buf, size_t n);
int h5_member_name(hid_t t, unsigned i, char *buf, size_t n);
char **h5_read_vlen_block(hid_t did, hid_t mt, hid_t ms, hid_t fs, size_t n);
hid_t h5_vlen_utf8(void);
hid_t h5_create(const char *name, hid_t fapl);
hid_t h5_contiguous_dcpl(void);
hid_t h5_lcpl(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
