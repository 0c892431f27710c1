package remote

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Range is one span of the file to read exactly: len(P) bytes at Off,
// into P.
type Range struct {
	Off int64
	P   []byte
}

// ReadRanges reads every range exactly as asked: one ranged request per
// range, or per piece of a range longer than the large-read piece (8 MiB),
// a few requests at a time (as many as a large read), past the block cache
// and its readahead, so that the bytes moved are the ranges' bytes and no
// more. A selection of an array planned as byte ranges reads through it.
//
// Every range must lie inside the file; the destinations must not overlap
// (they are written concurrently). Once ctx is cancelled no further
// request is sent; ReadRanges returns only after the requests under way
// have ended, so that nothing writes into a P afterwards.
func (f *File) ReadRanges(ctx context.Context, ranges []Range) error {
	for _, r := range ranges {
		if r.Off < 0 || int64(len(r.P)) > f.size-r.Off {
			return fmt.Errorf("%s: %d bytes at offset %d are past the end of the file (%d bytes)", f.url, len(r.P), r.Off, f.size)
		}
	}
	piece := f.cfg.piece
	sem := make(chan struct{}, f.cfg.parallel)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	var failed atomic.Bool
	fail := func(err error) { once.Do(func() { first = err; failed.Store(true) }) }
	defer wg.Wait()
	for _, r := range ranges {
		for lo := int64(0); lo < int64(len(r.P)); lo += piece {
			hi := min(lo+piece, int64(len(r.P)))
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if err := ctx.Err(); err != nil {
				fail(err)
			}
			if failed.Load() { // the first error ends the read
				wg.Wait()
				return first
			}
			wg.Add(1)
			go func(p []byte, off int64) {
				defer func() { <-sem; wg.Done() }()
				if err := f.fetchInto(p, off); err != nil {
					fail(err)
				}
			}(r.P[lo:hi], r.Off+lo)
		}
	}
	wg.Wait()
	return first
}
