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
// range, or per piece of a range of 1.5 large-read pieces (12 MiB) or more
// (split in pieces of equal length, about 8 MiB),
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
		// Pieces of equal length, as many as whole pieces fit (rounded):
		// a range a little over a piece is one request, not two.
		size := int64(len(r.P))
		n := max(1, size/piece+min(1, size%piece*2/piece))
		q, rem := size/n, size%n
		for i := int64(0); i < n && size > 0; i++ {
			lo := i*q + min(i, rem)
			hi := lo + q
			if i < rem {
				hi++
			}
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
