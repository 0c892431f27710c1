package main

/*
#include <stdint.h>

typedef const char mmp_cchar;
*/
import "C"

// mmp_convert_plain reads the file path (or the descriptor fd when fd >= 0,
// from byte 0, its offset unmoved; path, which may be NULL, then only names
// it in messages) as a plain pickle of a dict with str keys, without
// running it, and writes its items as a new mmappickle file dst (options:
// NULL or mmp_open_ex's JSON), replacing dst only once complete. Anything
// that is not plain data (as mmp_verify judges it), not a dict of str keys,
// or not storable exactly as pickle.load gives it is refused, dst left
// untouched. Returns 0, or -1 with the last error set.
//
//export mmp_convert_plain
func mmp_convert_plain(path *C.mmp_cchar, fd C.int, dst *C.mmp_cchar, options *C.mmp_cchar) C.int {
	return status(call(func() error {
		if path == nil && fd < 0 {
			return errNilArg("path (with no descriptor)")
		}
		if dst == nil {
			return errNilArg("dst")
		}
		return convertPlain(optString(path), int(fd), goString(dst), optString(options))
	}))
}
