package main

/*
#include <stdint.h>
#include <stdlib.h>

// const char * parameters in the exported signatures.
typedef const char mmp_cchar;

// Defined in lasterror.c (C, so that they never enter the Go runtime).
char *mmp_last_error(void);
int mmp_last_error_code(void);
void mmp_free(void *p);
void mmp_use_token(int64_t token);

// libmmp internals, hidden (not exported by libmmp.so): do not call.
void mmpi_set_error(char *msg, int code);
int64_t mmpi_take_token(void);
int64_t mmpi_token(void);
void mmpi_set_token(int64_t token);
extern char mmpi_empty[64];
*/
import "C"

import (
	"context"
	"fmt"
	"unsafe"

	"mmpbridge/internal/version"
)

func main() {}

func init() {
	threadToken = func() int64 { return int64(C.mmpi_token()) }
	setThreadToken = func(t int64) { C.mmpi_set_token(C.int64_t(t)) }
}

// fail records err as the calling thread's last error.
func fail(err error) {
	C.mmpi_set_error(C.CString(err.Error()), C.int(errCode(err)))
}

// succeed clears the calling thread's last error.
func succeed() {
	C.mmpi_set_error(nil, 0)
}

// call runs fn under guard and records its outcome for the calling thread.
// A call token the thread set (mmp_use_token) makes it interruptible.
func call(fn func() error) bool {
	return callCtx(func(context.Context) error { return fn() })
}

// callCtx is call of work that takes the call's context (done once
// mmp_cancel cancels the thread's call token).
func callCtx(fn func(ctx context.Context) error) bool {
	if err := runCall(int64(C.mmpi_take_token()), fn); err != nil {
		fail(err)
		return false
	}
	succeed()
	return true
}

//export mmp_call_token
func mmp_call_token() C.int64_t {
	return C.int64_t(newCallToken())
}

//export mmp_signal_token
func mmp_signal_token(fd C.int) C.int64_t {
	return C.int64_t(newSignalToken(int(fd)))
}

//export mmp_cancel
func mmp_cancel(token C.int64_t) C.int {
	return status(call(func() error { return cancelCall(int64(token)) }))
}

func goString(s *C.mmp_cchar) string {
	return C.GoString((*C.char)(unsafe.Pointer(s)))
}

// cString returns a malloc'ed NUL-terminated copy of b (freed with
// mmp_free).
func cString(b []byte) *C.char {
	return C.CString(string(b))
}

//export mmp_open
func mmp_open(path *C.mmp_cchar, writable C.int) C.int64_t {
	var h int64
	if !call(func() error {
		if path == nil {
			return errNilArg("path")
		}
		var err error
		h, err = openFile(goString(path), writable != 0)
		return err
	}) {
		return 0
	}
	return C.int64_t(h)
}

//export mmp_close
func mmp_close(h C.int64_t) C.int {
	if !call(func() error { return closeFile(int64(h)) }) {
		return -1
	}
	return 0
}

//export mmp_keys_json
func mmp_keys_json(h C.int64_t) *C.char {
	var out []byte
	if !call(func() (err error) {
		out, err = keysJSON(int64(h))
		return err
	}) {
		return nil
	}
	return cString(out)
}

//export mmp_entry_json
func mmp_entry_json(h C.int64_t, key *C.mmp_cchar) *C.char {
	var out []byte
	if !callCtx(func(ctx context.Context) (err error) {
		if key == nil {
			return errNilArg("key")
		}
		out, err = entryJSONCtx(ctx, int64(h), goString(key))
		return err
	}) {
		return nil
	}
	return cString(out)
}

//export mmp_array_data
func mmp_array_data(h C.int64_t, key *C.mmp_cchar, nbytes *C.int64_t) unsafe.Pointer {
	return dataPointer(nbytes, func() ([]byte, error) {
		if key == nil {
			return nil, errNilArg("key")
		}
		return arrayData(int64(h), goString(key))
	})
}

//export mmp_masked_data
func mmp_masked_data(h C.int64_t, key *C.mmp_cchar, which C.int, nbytes *C.int64_t) unsafe.Pointer {
	return dataPointer(nbytes, func() ([]byte, error) {
		if key == nil {
			return nil, errNilArg("key")
		}
		return maskedData(int64(h), goString(key), int(which))
	})
}

// dataPointer returns the address of the bytes get gives (memory of a file
// mapping, not of the Go heap), storing their length in *nbytes.
func dataPointer(nbytes *C.int64_t, get func() ([]byte, error)) unsafe.Pointer {
	var p unsafe.Pointer
	var n int64
	if !call(func() error {
		b, err := get()
		if err != nil {
			return err
		}
		n = int64(len(b))
		if n == 0 {
			p = unsafe.Pointer(&C.mmpi_empty[0])
		} else {
			p = unsafe.Pointer(unsafe.SliceData(b))
		}
		return nil
	}) {
		p, n = nil, 0
	}
	if nbytes != nil {
		*nbytes = C.int64_t(n)
	}
	return p
}

//export mmp_convert
func mmp_convert(src, dst, options *C.mmp_cchar) C.int {
	status := convertOK
	if !callCtx(func(ctx context.Context) error {
		if src == nil || dst == nil {
			status = convertUsage
			return errNilArg("src and dst")
		}
		var opts string
		if options != nil {
			opts = goString(options)
		}
		var err error
		status, err = convertFileCtx(ctx, goString(src), goString(dst), opts)
		return err
	}) && status == convertOK {
		status = convertInput // a recovered panic
	}
	return C.int(status)
}

//export mmp_open_ex
func mmp_open_ex(path *C.mmp_cchar, fd C.int, flags C.int, options *C.mmp_cchar) C.int64_t {
	var h int64
	if !call(func() error {
		if path == nil && fd < 0 {
			return errNilArg("path (with no descriptor)")
		}
		var err error
		h, err = openEx(optString(path), int(fd), int(flags), optString(options))
		return err
	}) {
		return 0
	}
	return C.int64_t(h)
}

// optString is a C string, "" for NULL.
func optString(s *C.mmp_cchar) string {
	if s == nil {
		return ""
	}
	return goString(s)
}

// cBytes views n bytes of C memory at p (NULL with n == 0: none) for the
// duration of a call.
func cBytes(p unsafe.Pointer, n C.int64_t, what string) ([]byte, error) {
	switch {
	case n < 0:
		return nil, fmt.Errorf("%s: negative length %d: %w", what, n, errInvalidArg)
	case n == 0:
		return []byte{}, nil
	case p == nil:
		return nil, errNilArg(what)
	}
	return unsafe.Slice((*byte)(p), int(n)), nil
}

//export mmp_entry_info
func mmp_entry_info(h C.int64_t, key *C.mmp_cchar) *C.char {
	var out []byte
	if !call(func() (err error) {
		if key == nil {
			return errNilArg("key")
		}
		out, err = entryInfo(int64(h), goString(key))
		return err
	}) {
		return nil
	}
	return cString(out)
}

//export mmp_entry_map
func mmp_entry_map(h C.int64_t, key *C.mmp_cchar, fd *C.int) *C.char {
	if fd != nil {
		*fd = -1
	}
	var out []byte
	if !call(func() (err error) {
		if key == nil || fd == nil {
			return errNilArg("key and fd")
		}
		var d int
		out, d, err = entryMap(int64(h), goString(key))
		*fd = C.int(d)
		return err
	}) {
		return nil
	}
	return cString(out)
}

//export mmp_value_pickle
func mmp_value_pickle(h C.int64_t, key *C.mmp_cchar, trusted C.int, n *C.int64_t) unsafe.Pointer {
	var out []byte
	ok := call(func() (err error) {
		if key == nil || n == nil {
			return errNilArg("key and n")
		}
		out, err = valuePickle(int64(h), goString(key), trusted != 0)
		return err
	})
	if !ok {
		if n != nil {
			*n = 0
		}
		return nil
	}
	*n = C.int64_t(len(out))
	return C.CBytes(out)
}

//export mmp_verify
func mmp_verify(path, trust *C.mmp_cchar) *C.char {
	var out []byte
	if !callCtx(func(ctx context.Context) (err error) {
		if path == nil {
			return errNilArg("path")
		}
		out, err = verifyFileCtx(ctx, goString(path), optString(trust))
		return err
	}) {
		return nil
	}
	return cString(out)
}

//export mmp_put_array
func mmp_put_array(h C.int64_t, key, header *C.mmp_cchar, data unsafe.Pointer, nbytes C.int64_t) C.int {
	return status(call(func() error {
		if key == nil || header == nil {
			return errNilArg("key and header")
		}
		b, err := cBytes(data, nbytes, "data")
		if err != nil {
			return err
		}
		return putArray(int64(h), goString(key), goString(header), b)
	}))
}

//export mmp_put_masked
func mmp_put_masked(h C.int64_t, key, header *C.mmp_cchar, data unsafe.Pointer, nbytes C.int64_t, mask unsafe.Pointer, maskN C.int64_t, fill unsafe.Pointer, fillN C.int64_t) C.int {
	return status(call(func() error {
		if key == nil || header == nil {
			return errNilArg("key and header")
		}
		d, err := cBytes(data, nbytes, "data")
		if err != nil {
			return err
		}
		m, err := cBytes(mask, maskN, "mask")
		if err != nil {
			return err
		}
		fl, err := cBytes(fill, fillN, "fill")
		if err != nil {
			return err
		}
		return putMasked(int64(h), goString(key), goString(header), d, m, fl)
	}))
}

//export mmp_reserve
func mmp_reserve(h C.int64_t, key, header *C.mmp_cchar, commit C.int, dataOffset *C.int64_t) C.int64_t {
	var slot, off int64
	if !call(func() (err error) {
		if key == nil || header == nil || dataOffset == nil {
			return errNilArg("key, header and data_offset")
		}
		slot, off, err = reserve(int64(h), goString(key), goString(header), commit != 0)
		return err
	}) {
		return -1
	}
	*dataOffset = C.int64_t(off)
	return C.int64_t(slot)
}

//export mmp_slot_done
func mmp_slot_done(slot C.int64_t, commit C.int) C.int {
	return status(call(func() error { return slotDone(int64(slot), commit != 0) }))
}

//export mmp_put_pickle
func mmp_put_pickle(h C.int64_t, key *C.mmp_cchar, p unsafe.Pointer, n C.int64_t) C.int {
	return status(call(func() error {
		if key == nil {
			return errNilArg("key")
		}
		b, err := cBytes(p, n, "pickle")
		if err != nil {
			return err
		}
		return putPickle(int64(h), goString(key), b)
	}))
}

//export mmp_delete
func mmp_delete(h C.int64_t, keys *C.mmp_cchar) C.int {
	return status(call(func() error {
		if keys == nil {
			return errNilArg("keys")
		}
		return deleteKeys(int64(h), goString(keys))
	}))
}

//export mmp_vacuum
func mmp_vacuum(h C.int64_t) C.int {
	return status(call(func() error { return vacuum(int64(h)) }))
}

//export mmp_fsck
func mmp_fsck(h C.int64_t) *C.char {
	var out []byte
	if !call(func() (err error) {
		out, err = fsck(int64(h))
		return err
	}) {
		return nil
	}
	return cString(out)
}

//export mmp_commit_number
func mmp_commit_number(h C.int64_t, out *C.int32_t) C.int {
	return status(call(func() error {
		if out == nil {
			return errNilArg("out")
		}
		n, err := commitNumber(int64(h))
		*out = C.int32_t(n)
		return err
	}))
}

//export mmp_set_commit_number
func mmp_set_commit_number(h C.int64_t, n C.int32_t) C.int {
	return status(call(func() error { return setCommitNumber(int64(h), int32(n)) }))
}

//export mmp_version
func mmp_version() *C.char {
	return C.CString(version.Version)
}

// status is a C status: 0 for success, -1 for failure.
func status(ok bool) C.int {
	if ok {
		return 0
	}
	return -1
}

//export mmp_has_key
func mmp_has_key(h C.int64_t, key *C.mmp_cchar) C.int {
	var ok bool
	if !call(func() (err error) {
		if key == nil {
			return errNilArg("key")
		}
		ok, err = hasKey(int64(h), goString(key))
		return err
	}) {
		return -1
	}
	if ok {
		return 1
	}
	return 0
}

//export mmp_len
func mmp_len(h C.int64_t) C.int64_t {
	var n int
	if !call(func() (err error) {
		n, err = keyCount(int64(h))
		return err
	}) {
		return -1
	}
	return C.int64_t(n)
}

//export mmp_allowed_globals
func mmp_allowed_globals() *C.char {
	var out []byte
	if !call(func() (err error) {
		out, err = allowedJSON()
		return err
	}) {
		return nil
	}
	return cString(out)
}

// Remote files (read-only; see README "Remote files").
//
//	int64_t mmp_remote_open(const char *url)
//	    Opens the file at an http(s) URL: a remote handle (0 on error).
//	int mmp_remote_close(int64_t h)
//	char *mmp_remote_keys_json(int64_t h)
//	char *mmp_remote_entry_info(int64_t h, const char *key)
//	    As mmp_keys_json and mmp_entry_info; "offset" and "nbytes" locate
//	    the array's bytes for mmp_remote_read.
//	void *mmp_remote_value_pickle(int64_t h, const char *key, int trusted, int64_t *n)
//	    As mmp_value_pickle.
//	int mmp_remote_read(int64_t h, int64_t offset, void *buf, int64_t n)
//	    Fills buf with n bytes of the file at offset (0, or -1 on error).
//	char *mmp_remote_stats(int64_t h)
//	    {"requests": N, "bytes": M} sent and received so far.

//export mmp_remote_open
func mmp_remote_open(url *C.mmp_cchar) C.int64_t {
	var h int64
	if !call(func() (err error) {
		if url == nil {
			return errNilArg("url")
		}
		h, err = openRemote(goString(url))
		return err
	}) {
		return 0
	}
	return C.int64_t(h)
}

//export mmp_remote_close
func mmp_remote_close(h C.int64_t) C.int {
	if !call(func() error { return closeRemote(int64(h)) }) {
		return -1
	}
	return 0
}

//export mmp_remote_keys_json
func mmp_remote_keys_json(h C.int64_t) *C.char {
	var out []byte
	if !call(func() (err error) { out, err = remoteKeysJSON(int64(h)); return err }) {
		return nil
	}
	return cString(out)
}

//export mmp_remote_entry_info
func mmp_remote_entry_info(h C.int64_t, key *C.mmp_cchar) *C.char {
	var out []byte
	if !call(func() (err error) {
		if key == nil {
			return errNilArg("key")
		}
		out, err = remoteEntryInfo(int64(h), goString(key))
		return err
	}) {
		return nil
	}
	return cString(out)
}

//export mmp_remote_value_pickle
func mmp_remote_value_pickle(h C.int64_t, key *C.mmp_cchar, trusted C.int, n *C.int64_t) unsafe.Pointer {
	var out []byte
	ok := call(func() (err error) {
		if key == nil || n == nil {
			return errNilArg("key and n")
		}
		out, err = remoteValuePickle(int64(h), goString(key), trusted != 0)
		return err
	})
	if !ok {
		if n != nil {
			*n = 0
		}
		return nil
	}
	*n = C.int64_t(len(out))
	return C.CBytes(out)
}

//export mmp_remote_read
func mmp_remote_read(h C.int64_t, offset C.int64_t, buf unsafe.Pointer, n C.int64_t) C.int {
	if !call(func() error {
		if n < 0 || (buf == nil && n > 0) {
			return errNilArg("buf")
		}
		if n == 0 {
			return nil
		}
		return remoteRead(int64(h), int64(offset), unsafe.Slice((*byte)(buf), int(n)))
	}) {
		return -1
	}
	return 0
}

//export mmp_remote_stats
func mmp_remote_stats(h C.int64_t) *C.char {
	var out []byte
	if !call(func() (err error) { out, err = remoteStats(int64(h)); return err }) {
		return nil
	}
	return cString(out)
}
