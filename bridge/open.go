package bridge

import (
	"context"
	"fmt"
	"io"

	"mmpbridge/remote"
)

// OpenReader opens name for reading: a local path (mapped, as Open) or an
// http(s) URL (remote.Open; the file's index, when it has one, is fetched
// first in a few requests). It returns a snapshot of the file and what to
// close when done with it and its arrays. ctx bounds the work of opening
// and of every later read (WithContext; an option given after it wins).
func OpenReader(ctx context.Context, name string, opts ...Option) (*Reader, io.Closer, error) {
	opts = append([]Option{WithContext(ctx)}, opts...)
	if !remote.IsURL(name) {
		f, err := Open(name, opts...)
		if err != nil {
			return nil, nil, err
		}
		r, err := f.Reader()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return r, f, nil
	}
	hf, err := remote.Open(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	spans, err := indexSpans(hf, hf.Size())
	if err == nil && spans != nil {
		err = hf.Prefetch(spans)
	}
	if err != nil {
		hf.Close()
		return nil, nil, err
	}
	r, err := NewReader(hf, hf.Size(), opts...)
	if err != nil {
		hf.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return r, hf, nil
}

// indexSpans reads the file's index (index.go), when it has a valid one,
// and returns the byte ranges a reader will need (nil without an index);
// errors are the reads', never the index's.
func indexSpans(ra io.ReaderAt, size int64) ([][2]int64, error) {
	head := make([]byte, min(size, int64(headerSize+pointerSize)))
	if n, err := ra.ReadAt(head, 0); n < len(head) && err != nil {
		return nil, err
	}
	p, ok := parsePointer(head)
	if !ok || p.off > size || p.n > size-p.off {
		return nil, nil
	}
	// The index and the terminator after it, in one read (an index that
	// is not the file's last bytes is not one this package wrote).
	if size-p.off > maxIndexPayload+64 {
		return nil, nil
	}
	tail := make([]byte, size-p.off)
	if n, err := ra.ReadAt(tail, p.off); n < len(tail) {
		return nil, err
	}
	spans, err := decodeIndex(tail[:p.n], size)
	if err != nil {
		return nil, nil
	}
	out := make([][2]int64, len(spans))
	for i, s := range spans {
		out[i] = [2]int64{s.off, s.n}
	}
	return out, nil
}
