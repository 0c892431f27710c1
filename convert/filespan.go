package convert

// Moving array bytes between files: a span of a file copied by
// copy_file_range (fileSpan), read-only mappings of a region, and the
// Fortran-to-C transposition the mmappickle profile needs.

import (
	"context"
	"fmt"
	"io"
	"os"

	"mmpbridge/bridge"
	"mmpbridge/internal/fault"
	"mmpbridge/internal/transpose"

	"github.com/edsrzf/mmap-go"
)

// fileSpan streams n bytes of f from off. Its WriteTo, which the bridge
// (and io.Copy) prefer, moves them in copyChunk pieces through
// *io.LimitedReader over the *os.File, so that an *os.File destination gets
// them by copy_file_range, and counts progress and checks for cancellation
// between pieces. f's offset is moved.
type fileSpan struct {
	ctx  context.Context
	name string // the file, for errors (or "")
	f    *os.File
	off  int64
	n    int64
	p    *progress
	pos  int64 // for Read
}

func (s *fileSpan) WriteTo(w io.Writer) (int64, error) {
	if _, err := s.f.Seek(s.off+s.pos, io.SeekStart); err != nil {
		return 0, err
	}
	var done int64
	for s.pos < s.n {
		if err := s.ctx.Err(); err != nil {
			return done, err
		}
		m := min(copyChunk, s.n-s.pos)
		got, err := io.Copy(w, &io.LimitedReader{R: s.f, N: m})
		s.pos += got
		done += got
		s.p.add(got)
		if err != nil {
			return done, err
		}
		if got < m {
			return done, s.truncated()
		}
	}
	return done, nil
}

func (s *fileSpan) Read(b []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if s.pos >= s.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), s.n-s.pos)]
	n, err := s.f.ReadAt(b, s.off+s.pos)
	s.pos += int64(n)
	s.p.add(int64(n))
	if err == io.EOF && n > 0 {
		err = nil
	}
	if err == io.EOF {
		err = s.truncated()
	}
	return n, err
}

func (s *fileSpan) truncated() error {
	err := fmt.Errorf("truncated: the array data ends after %d of %d bytes", s.pos, s.n)
	if s.name != "" {
		err = fmt.Errorf("%s: %w", s.name, err)
	}
	return err
}

// mapRegion maps n bytes of f from off read-only.
func mapRegion(f *os.File, off, n int64) (mmap.MMap, []byte, error) {
	if n == 0 {
		return nil, []byte{}, nil
	}
	page := int64(os.Getpagesize())
	start := off / page * page
	m, err := mmap.MapRegion(f, int(off+n-start), mmap.RDONLY, 0, start)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	return m, m[off-start : off-start+n], nil
}

// writeFToC writes Fortran-ordered data (mapped) to w in C order, in
// pieces, counting progress and stopping when ctx is done. A fault reading
// the mapping (the file shrank under us) is an error, not a crash.
func writeFToC(ctx context.Context, w io.WriterAt, src []byte, shape []int, size int, p *progress) (err error) {
	defer fault.Guard(&err, "reading mapped data", bridge.ErrShrank)()
	return transpose.FToC(&progressWriter{ctx: ctx, w: io.NewOffsetWriter(w, 0), p: p}, src, shape, size)
}

// progressWriter counts what is written through it and ends the write
// when its context is done.
type progressWriter struct {
	ctx context.Context
	w   io.Writer
	p   *progress
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.add(int64(n))
	if err != nil {
		return n, err
	}
	return n, pw.ctx.Err()
}
