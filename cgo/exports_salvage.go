package main

/*
#include <stdlib.h>

typedef const char mmp_cchar;
*/
import "C"

import "context"

// mmp_salvage copies the entries of the damaged mmappickle file src that
// read and verify on their own into a new file dst and returns the report
// as JSON (render.SalvageJSON; freed with mmp_free), or NULL with the last
// error set. options_json (NULL for the defaults): {"profile", "align",
// "force"}, as mmpconv salvage's flags.
//
//export mmp_salvage
func mmp_salvage(src, dst, options *C.mmp_cchar) *C.char {
	var out []byte
	if !callCtx(func(ctx context.Context) (err error) {
		if src == nil || dst == nil {
			return errNilArg("src and dst")
		}
		out, err = salvageFile(ctx, goString(src), goString(dst), optString(options))
		return err
	}) {
		return nil
	}
	return cString(out)
}
