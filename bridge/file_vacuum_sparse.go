package bridge

// Copying a range of one file to another without filling its holes: the
// space EmptyNDArray and PutArray's reservations leave unwritten stays
// unallocated through Vacuum and through Put of an array from a file.

import (
	"fmt"
	"io"
	"os"
)

// sparsePiece bounds what one copy moves between progress reports (and
// checks for cancellation through them).
const sparsePiece = 4 << 20

// copySparse copies n bytes of src at srcOff to the file at w.off: the data
// ranges are copied (by the kernel where it can), src's holes are skipped
// so they stay holes. Where the destination may already hold bytes there
// (w.dirty, an in-place rewrite), holes are punched, or zeros written when
// the file system cannot punch. done, when not nil, is told every range
// passed, holes included; its error ends the copy.
func (w *offsetWriter) copySparse(src *os.File, srcOff, n int64, done func(int64) error) {
	if w.err != nil || n <= 0 {
		return
	}
	st, err := src.Stat()
	if err != nil {
		w.err = err
		return
	}
	if st.Size() < srcOff+n {
		w.err = fmt.Errorf("array data has %d bytes, want %d", max(0, st.Size()-srcOff), n)
		return
	}
	dstSize := int64(0)
	if w.dirty {
		dt, err := w.f.Stat()
		if err != nil {
			w.err = err
			return
		}
		dstSize = dt.Size()
	}
	if done == nil {
		done = func(int64) error { return nil }
	}
	base, end := w.off, srcOff+n
	at := func(off int64) int64 { return base + off - srcOff }
	hole := func(from, to int64) error {
		if from >= to {
			return nil
		}
		w.holes = true
		if d0, d1 := at(from), min(at(to), dstSize); d0 < d1 && !punchHole(w.f, d0, d1-d0) {
			if err := writeZeros(w.f, d0, d1-d0, done); err != nil {
				return err
			}
			return done(to - from - (d1 - d0))
		}
		return done(to - from)
	}
	pos := srcOff
	err = forEachData(src, srcOff, end, func(d, h int64) error {
		if err := hole(pos, d); err != nil {
			return err
		}
		for off := d; off < h; {
			k := min(sparsePiece, h-off)
			if err := copyRange(w.f, at(off), src, off, k); err != nil {
				return err
			}
			if err := done(k); err != nil {
				return err
			}
			off += k
		}
		pos = h
		return nil
	})
	if err == nil {
		err = hole(pos, end)
	}
	w.off = base + n
	if err != nil {
		w.err = fmt.Errorf("copying array data: %w", err)
	}
}

// copyRange copies n bytes of src at srcOff to dst at dstOff.
func copyRange(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) error {
	c := copyFileRange(dst, dstOff, src, srcOff, n)
	if c == n {
		return nil
	}
	buf := make([]byte, min(n-c, 1<<20))
	for c < n {
		k := min(int64(len(buf)), n-c)
		if _, err := src.ReadAt(buf[:k], srcOff+c); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if _, err := dst.WriteAt(buf[:k], dstOff+c); err != nil {
			return err
		}
		c += k
	}
	return nil
}

// writeZeros writes n zero bytes to f at off, telling done.
func writeZeros(f *os.File, off, n int64, done func(int64) error) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(int64(len(buf)), n)
		if _, err := f.WriteAt(buf[:k], off); err != nil {
			return err
		}
		if err := done(k); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

// fileSection returns the file and range a reader handed to copyFrom
// reads, when it is a section of a file not yet read from (an Array's
// Section, perhaps counted by a progressReader), so that copyFrom can copy
// it with copySparse.
func fileSection(r io.Reader) (f *os.File, off, n int64, p *progressReader, ok bool) {
	if pr, isP := r.(*progressReader); isP {
		p, r = pr, pr.r
	}
	sr, isS := r.(*io.SectionReader)
	if !isS {
		return nil, 0, 0, nil, false
	}
	if pos, err := sr.Seek(0, io.SeekCurrent); err != nil || pos != 0 {
		return nil, 0, 0, nil, false
	}
	ra, off, n := sr.Outer()
	f, ok = ra.(*os.File)
	return f, off, n, p, ok
}

// count tells the progress callback of n more bytes read through p.
func (p *progressReader) count(n int64) error {
	*p.done += n
	return p.c.report(*p.done, p.total)
}
