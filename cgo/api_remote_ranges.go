package main

/*
#include <stdint.h>
*/
import "C"

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"unsafe"

	"mmpbridge/remote"
)

// maxReadRanges bounds the ranges of one mmp_remote_read_ranges call (a
// planned selection asks for a few hundred).
const maxReadRanges = 1 << 20

// mmp_remote_read_ranges reads n byte ranges of the remote file h into
// buf (buflen bytes): ranges holds n triples (file offset, length, offset
// in buf). Each range is read exactly, by its own ranged request (or a few,
// for one longer than 8 MiB), a few at a time, past the block cache and
// its readahead: the bytes moved are the ranges' bytes. Every range must
// lie inside the file and inside buf, and no two may overlap in buf.
// Returns 0, or -1 with the last error set (then buf's ranges hold
// unspecified bytes). Interruptible (mmp_cancel): no request is sent after
// the cancellation, and the call returns once those under way have ended.
//
//export mmp_remote_read_ranges
func mmp_remote_read_ranges(h C.int64_t, ranges *C.int64_t, n C.int64_t, buf unsafe.Pointer, buflen C.int64_t) C.int {
	return status(callCtx(func(ctx context.Context) error {
		if n < 0 || n > maxReadRanges {
			return fmt.Errorf("%w: %d ranges (at most %d)", errInvalidArg, int64(n), maxReadRanges)
		}
		if n == 0 {
			return nil
		}
		if ranges == nil {
			return errNilArg("ranges")
		}
		if buflen < 0 || (buf == nil && buflen > 0) {
			return errNilArg("buf")
		}
		triples := unsafe.Slice((*int64)(unsafe.Pointer(ranges)), 3*int(n))
		var b []byte
		if buflen > 0 {
			b = unsafe.Slice((*byte)(buf), int(buflen))
		}
		return remoteReadRanges(ctx, int64(h), triples, b)
	}))
}

// remoteReadRanges checks the (file offset, length, buffer offset) triples
// against the file and buf, and reads them.
func remoteReadRanges(ctx context.Context, h int64, triples []int64, buf []byte) error {
	rm, err := remotes.get(h)
	if err != nil {
		return err
	}
	if len(triples)%3 != 0 {
		return fmt.Errorf("%w: %d numbers are not (offset, length, buffer offset) triples", errInvalidArg, len(triples))
	}
	size, blen := rm.hf.Size(), int64(len(buf))
	rs := make([]remote.Range, 0, len(triples)/3)
	for i := 0; i < len(triples); i += 3 {
		off, n, at := triples[i], triples[i+1], triples[i+2]
		if off < 0 || n < 0 || n > size-off {
			return fmt.Errorf("%s: range %d: %d bytes at offset %d are outside the file (%d bytes)", rm.url, i/3, n, off, size)
		}
		if at < 0 || n > blen-at {
			return fmt.Errorf("%w: range %d: %d bytes at buffer offset %d are outside the buffer (%d bytes)", errInvalidArg, i/3, n, at, blen)
		}
		if n > 0 {
			rs = append(rs, remote.Range{Off: off, P: buf[at : at+n : at+n]})
		}
	}
	// Destinations are written concurrently: they must not overlap.
	byDest := slices.Clone(rs)
	slices.SortFunc(byDest, func(x, y remote.Range) int { return cmp.Compare(dest(buf, x), dest(buf, y)) })
	for i := 1; i < len(byDest); i++ {
		if p := byDest[i-1]; dest(buf, p)+int64(len(p.P)) > dest(buf, byDest[i]) {
			return fmt.Errorf("%w: ranges %d bytes at buffer offset %d and %d at %d overlap", errInvalidArg, len(p.P), dest(buf, p), len(byDest[i].P), dest(buf, byDest[i]))
		}
	}
	return rm.hf.ReadRanges(ctx, rs)
}

// dest is the offset in buf of a range's destination (a slice of buf).
func dest(buf []byte, r remote.Range) int64 {
	return int64(uintptr(unsafe.Pointer(unsafe.SliceData(r.P))) - uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
}
