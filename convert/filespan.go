package convert

// Moving array bytes between files: a span of a file copied by
// copy_file_range (fileSpan), read-only mappings of a region, and the
// Fortran-to-C transposition the mmappickle profile needs.

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"mmpbridge/bridge"
	"mmpbridge/internal/fault"

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

// writeFToC writes Fortran-ordered data (mapped) to w in C order, in 1 MiB
// pieces. A fault reading the mapping (the file shrank under us) is an
// error, not a crash.
func writeFToC(ctx context.Context, w io.WriterAt, src []byte, shape []int, size int, p *progress) (err error) {
	defer fault.Guard(&err, "reading mapped data", bridge.ErrShrank)()
	nd := len(shape)
	stride := make([]int, nd) // Fortran strides in bytes
	s := size
	for i := range nd {
		stride[i] = s
		s *= shape[i]
	}
	if s != len(src) {
		return fmt.Errorf("transposing: %d bytes for shape %v of %d-byte items", len(src), shape, size)
	}
	last := nd - 1
	inner, innerStride := shape[last], stride[last]
	buf := make([]byte, 0, max(1<<20, inner*size)/size*size)
	var written int64
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := w.WriteAt(buf, written); err != nil {
			return err
		}
		written += int64(len(buf))
		p.add(int64(len(buf)))
		buf = buf[:0]
		return ctx.Err()
	}
	idx := make([]int, nd) // C-order odometer over all axes but the last
	base := 0
	for {
		if cap(buf)-len(buf) < inner*size {
			if err := flush(); err != nil {
				return err
			}
		}
		o := len(buf)
		buf = buf[:o+inner*size]
		dst := buf[o:]
		off := base
		switch size {
		case 1:
			for j := range inner {
				dst[j] = src[off]
				off += innerStride
			}
		case 2:
			for j := range inner {
				binary.NativeEndian.PutUint16(dst[2*j:], binary.NativeEndian.Uint16(src[off:]))
				off += innerStride
			}
		case 4:
			for j := range inner {
				binary.NativeEndian.PutUint32(dst[4*j:], binary.NativeEndian.Uint32(src[off:]))
				off += innerStride
			}
		case 8:
			for j := range inner {
				binary.NativeEndian.PutUint64(dst[8*j:], binary.NativeEndian.Uint64(src[off:]))
				off += innerStride
			}
		default:
			for j := range inner {
				copy(dst[j*size:(j+1)*size], src[off:off+size])
				off += innerStride
			}
		}
		ax := last - 1
		for ; ax >= 0; ax-- {
			idx[ax]++
			base += stride[ax]
			if idx[ax] < shape[ax] {
				break
			}
			base -= stride[ax] * shape[ax]
			idx[ax] = 0
		}
		if ax < 0 {
			break
		}
	}
	return flush()
}
