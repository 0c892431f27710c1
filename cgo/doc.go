// Command (library) libmmp is a C ABI for mmappickle files, built with
//
//	go build -buildmode=c-shared -o libmmp.so ./cgo
//
// which writes libmmp.so and libmmp.h. Functions:
//
//	int64_t mmp_open(const char *path, int writable);
//	    A handle > 0, or 0 with the reason in mmp_last_error(). writable
//	    opens the file read-write (it must exist); arrays are then
//	    writable through mmp_array_data.
//	int mmp_close(int64_t h);
//	    0, or -1 with the reason (a handle closed twice, or never opened).
//	    Every address obtained through h is invalid afterwards.
//	char *mmp_keys_json(int64_t h);
//	    The live keys in file order, as a JSON list; NULL on error.
//	char *mmp_entry_json(int64_t h, const char *key);
//	    The key's entry exactly as `mmpconv inspect --json` prints it, e.g.
//	    {"kind":"array","dtype":"<f8","shape":[2,3],"order":"C","encoding":"portable","data_offset":N,"nbytes":N};
//	    NULL on error.
//	void *mmp_array_data(int64_t h, const char *key, int64_t *nbytes);
//	    The address of the array's first byte inside the file's mapping (no
//	    copy), its size in *nbytes; valid until mmp_close(h); writable when h
//	    was opened writable (writes reach the file). NULL with the reason
//	    for anything but a plain array. An empty array gives a non-NULL
//	    address and *nbytes == 0. Interpret the bytes with the entry's
//	    dtype, shape and order (C or Fortran).
//	void *mmp_masked_data(int64_t h, const char *key, int which, int64_t *nbytes);
//	    The same for a masked array: which 0 gives the data, 1 the mask (one
//	    byte per element, same shape and order).
//	int mmp_convert(const char *src, const char *dst, const char *options_json);
//	    What `mmpconv convert` does; returns its exit status: 0 done, 1 a
//	    problem with an input, 2 bad usage (reason in mmp_last_error()).
//	    options_json may be NULL or "" for the defaults, else an object with
//	    any of "profile" ("portable" or "mmappickle"), "align" (a power of
//	    two, default 64), "force", "key", "compress", "skip_unsupported"
//	    (booleans and a string as the flags of the same names) and "from",
//	    "to" (mmpkl, npy, npz or hdf5; default from the extensions). With
//	    skip_unsupported the items left out are not listed (mmpconv lists
//	    them on stderr).
//	int64_t mmp_open_ex(const char *path, int fd, int flags, const char *options_json);
//	    As mmp_open, with flags 1 (writable), 2 (create the file if missing;
//	    with 1) and 4 (open a torn file, for mmp_fsck), and options_json NULL
//	    or {"profile": "portable"|"mmappickle", "align": N} for new arrays.
//	    With fd >= 0 the file is that descriptor's (opened anew through
//	    /proc/self/fd, so the caller's file offset never moves; path is then
//	    only its name in messages); vacuum rewrites such a file in place.
//	int mmp_has_key(int64_t h, const char *key);   1, 0, or -1 on error.
//	int64_t mmp_len(int64_t h);                    the number of keys, or -1.
//	char *mmp_entry_info(int64_t h, const char *key);
//	    For bindings that map arrays themselves: {"kind":"value"},
//	    {"kind":"array","dtype":"<f8","itemsize":8,"shape":[2,3],"order":"C","offset":N,"nbytes":N},
//	    or {"kind":"masked","data":{...},"mask":{...},"fill":"<hex>"|null}.
//	    "dtype" is numpy's dtype.str for a plain dtype; for a structured
//	    one an object for numpy.dtype(dict, align=aligned):
//	    {"names":["a","b"],"formats":["<i4",F],"offsets":[0,2],"itemsize":6,"aligned":false},
//	    each format again a dtype.str, such an object, or [base, shape]
//	    for a subarray field (["<i4",[2,3]]). Offsets are explicit, so
//	    overlapping fields and padding cannot be misread (numpy's descr
//	    list cannot say them). nbytes is shape's product times itemsize;
//	    a binding checks the dtype it builds has that itemsize.
//	char *mmp_entry_map(int64_t h, const char *key, int *fd);
//	    mmp_entry_info, with for an array or a masked array a new
//	    descriptor in *fd (close-on-exec; the caller closes it) of the very
//	    file the description is of, -1 for another value: map the array
//	    through it, never through the file's name, which another process's
//	    vacuum may have given to another file meanwhile.
//	void *mmp_value_pickle(int64_t h, const char *key, int trusted, int64_t *n);
//	    The key's value as a complete pickle (for pickle.loads), its length
//	    in *n, freed with mmp_free. Unless trusted, only plain data (what
//	    verify allows) is handed out: other values fail with code 8. The
//	    value's bytes are read once, and what is handed out is the copy the
//	    proof ran on (a file rewritten meanwhile, or a server answering
//	    with other bytes, can make the call fail, never hand out bytes that
//	    were not proven).
//	int mmp_put_array(int64_t h, const char *key, const char *header_json, const void *data, int64_t nbytes);
//	    Stores the array whose bytes are data (read during the call);
//	    header_json is {"dtype": "<f8", "shape": [2, 3], "order": "C"|"F"}.
//	int mmp_put_masked(int64_t h, const char *key, const char *header_json,
//	                   const void *data, int64_t nbytes, const void *mask, int64_t mask_n,
//	                   const void *fill, int64_t fill_n);
//	    A masked array: mask one byte per element (same order), fill one
//	    element (fill_n 0: numpy's default).
//	int64_t mmp_reserve(int64_t h, const char *key, const char *header_json, int commit, int64_t *data_offset);
//	    Appends the array without its data (a hole; fill it through a
//	    mapping at *data_offset). With commit the key is live at once and 0
//	    is returned; otherwise a slot for mmp_slot_done; -1 on error.
//	int mmp_slot_done(int64_t slot, int commit);  commit (1) or abort (0) a reservation.
//	int mmp_put_pickle(int64_t h, const char *key, const void *pickle, int64_t n);
//	    Stores a value given as a complete pickle (pickle.dumps, protocol 3
//	    to 5 without out-of-band buffers).
//	int mmp_delete(int64_t h, const char *keys_json);  a JSON list of keys, all or none.
//	int mmp_vacuum(int64_t h);
//	    Reclaims deleted entries (nothing, and the commit number kept, when
//	    there are none, as mmappickle).
//	char *mmp_fsck(int64_t h);
//	    Repairs a torn file; {"entries","cut_at","cut_bytes","restored","repaired","problem"}.
//	int mmp_commit_number(int64_t h, int32_t *out);
//	int mmp_set_commit_number(int64_t h, int32_t n);
//	char *mmp_verify(const char *path, const char *trust_json);
//	    What `mmpconv verify --json` prints; trust_json NULL or a list of
//	    "module.name" allowed with any arguments.
//	int mmp_convert_plain(const char *path, int fd, const char *dst, const char *options_json);
//	    Reads path (or descriptor fd when fd >= 0, from byte 0; path then
//	    only names it, may be NULL) once as a plain pickle of a dict with
//	    str keys, running nothing, and writes its items as a new mmappickle
//	    file dst (may be path itself), replaced only once whole; options as
//	    mmp_open_ex's. Not plain data (as mmp_verify judges it): code 8; not
//	    a dict of str keys, or not storable as pickle.load gives it: 11.
//	char *mmp_salvage(const char *src, const char *dst, const char *options_json);
//	    What `mmpconv salvage --json` prints: the entries of a damaged file
//	    that read and verify on their own, copied into the new file dst.
//	int mmp_remote_read_ranges(int64_t h, const int64_t *ranges, int64_t n, void *buf, int64_t buflen);
//	    Of a remote handle (mmp_remote_open; the remote functions are
//	    listed in exports.go): reads n (file offset, length, buffer offset)
//	    triples into buf, each exactly, past the block cache and its
//	    readahead, a few requests at a time; interruptible.
//	char *mmp_allowed_globals(void);  the allow-list, as a JSON list.
//	char *mmp_version(void);
//	char *mmp_last_error(void);
//	    A copy of the calling thread's last error, or NULL if the thread's
//	    last call succeeded.
//	int mmp_last_error_code(void);
//	    Its kind: 0 none, 1 other (I/O), 2 no such file, 3 no such key,
//	    4 not an mmappickle file, 5 torn (fsck), 6 read-only, 7 bad
//	    argument or option, 8 not plain data, 9 unsupported, 10 over a
//	    limit, 11 malformed file, 12 not an array, 13 bad handle,
//	    14 interrupted (mmp_cancel).
//	int64_t mmp_call_token(void);
//	    A new call token (> 0, never reused), for one call.
//	void mmp_use_token(int64_t token);
//	    Makes token the calling thread's for its next libmmp call (only
//	    that one), which mmp_cancel(token) can then interrupt from any
//	    thread. It never enters the Go runtime.
//	int64_t mmp_signal_token(int fd);
//	    As mmp_call_token, for a call also cancelled as soon as the byte 2
//	    (SIGINT) is in the socket fd: the other end of a socket pair that
//	    Python's signal.set_wakeup_fd writes signal numbers to, so that
//	    Python's main thread can make the call itself and still be
//	    interrupted by Ctrl-C. The call looks at fd when it starts and then
//	    every 2 ms, without reading from it (the caller drains it).
//	int mmp_cancel(int64_t token);
//	    Cancels the call of token, running or not started yet: it returns
//	    promptly (within a few milliseconds of work) with code 14, having
//	    changed nothing an error would not have: opening's analysis of the
//	    entries, decoding a value (mmp_entry_info, mmp_entry_json,
//	    mmp_value_pickle), mmp_verify, mmp_convert (no output file is
//	    left), mmp_vacuum and the copies of the put functions stop; a call
//	    that ends first is not affected. 0, or -1 for a token never
//	    issued. Typical use, for a binding whose main thread must stay
//	    able to take signals: t = mmp_call_token(); a worker thread does
//	    mmp_use_token(t) and the call; on Ctrl-C the main thread does
//	    mmp_cancel(t) and waits for the worker.
//	void mmp_free(void *p);
//	    Frees a string or buffer returned by libmmp.
//
// Status results are 0 for success and -1 for failure (the reason in
// mmp_last_error); pointer results are NULL on failure.
//
// Handles are integers, never reused. Every function may be called from
// several threads at once; the error state is per thread (C thread-local
// storage). No Go panic crosses into C: a panic, or a memory fault while
// reading a file truncated under the mapping, becomes an error return.
// The Go runtime does not survive fork(): a process forked after it loaded
// libmmp must not call it (exec first, or load libmmp in a fresh process).
//
// It must not import cobra or cmd/mmpconv: the two front ends share convert, bridge and internal/render only.
package main
