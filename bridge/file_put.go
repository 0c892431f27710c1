package bridge

// Storing values and arrays: each builds its pickle and goes through
// appendValue (file_commit.go).

import (
	"bytes"
	"fmt"
	"io"

	"mmpbridge/pyval"
)

// Put stores v under key, replacing any previous value. v may be
//
//   - an *Array or *Masked from any file or Reader: the data is copied
//     (and reported to WithProgress's callback);
//   - a pyval.Object with its Pickle, a complete pickle (what Python's
//     pickle.dumps gives, protocol 2 to 5, or Reader.Pickle): stored
//     verbatim but for its framing and memo indices, renumbered to follow
//     the file's. Nothing of it is run or checked: Verify tells what
//     pickle.load of it would do;
//   - any other value the bridge decodes to (see the package doc), a Go
//     map with string or integer keys, an NDArray or a Scalar: written as
//     CPython and numpy pickle it.
//
// Arrays of their own keys are best stored with PutArray, which streams
// them.
func (mf *File) Put(key string, v any) error {
	switch v := v.(type) {
	case *Array:
		return mf.putArrayFrom(key, v)
	case *Masked:
		return mf.putMaskedFrom(key, v)
	case pyval.Object:
		if v.Pickle != nil {
			return mf.putPickle(key, v.Pickle)
		}
	}
	return mf.write(func(r *Reader) error {
		_, err := mf.appendValue(r, key, func(memoStart int64) ([]segment, int64, error) {
			var buf bytes.Buffer
			end, err := encodeValue(&buf, v, memoStart)
			return []segment{{b: buf.Bytes()}}, end, err
		}, true)
		return err
	})
}

// putPickle stores a value given as a complete pickle (see Put).
func (mf *File) putPickle(key string, pickle []byte) error {
	ops, err := unframe(pickle)
	if err != nil {
		return mf.wrap(fmt.Errorf("key %q: %w", key, err))
	}
	return mf.write(func(r *Reader) error {
		_, err := mf.appendValue(r, key, func(memoStart int64) ([]segment, int64, error) {
			out, end, err := renumberMemo(ops, 0, 0, memoStart)
			return []segment{{b: out}}, end, err
		}, true)
		return err
	})
}

// PutArray stores an array whose h.NBytes() bytes, in the order h says, are
// read from data. In the mmappickle profile the bytes must be in C order.
func (mf *File) PutArray(key string, h ArrayHeader, data io.Reader) error {
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		return mf.wrap(fmt.Errorf("key %q: the mmappickle profile stores C-order data; transpose the Fortran-ordered array first (or use the portable profile)", key))
	}
	return mf.write(func(r *Reader) error {
		_, err := mf.appendValue(r, key, arrayBuilder(mf.cfg.profile, h, data), true)
		return err
	})
}

func arrayBuilder(p Profile, h ArrayHeader, data io.Reader) func(int64) ([]segment, int64, error) {
	return func(memoStart int64) ([]segment, int64, error) {
		n, err := h.NBytes()
		if err != nil {
			return nil, 0, err
		}
		segs, end, err := encodeArray(p, h, memoStart)
		if err != nil {
			return nil, 0, err
		}
		return []segment{{b: segs[0], r: data, n: n}, {b: segs[1]}}, end, nil
	}
}

// PutMasked stores a masked array: data (h.NBytes() bytes), mask (one byte
// per element, in the same order) and fill (one element of the dtype, or
// nil for numpy's default). The mmappickle profile does not keep fill.
func (mf *File) PutMasked(key string, h ArrayHeader, data, mask io.Reader, fill []byte) error {
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		return mf.wrap(fmt.Errorf("key %q: the mmappickle profile stores C-order data; transpose the Fortran-ordered array first (or use the portable profile)", key))
	}
	return mf.write(func(r *Reader) error {
		_, err := mf.appendValue(r, key, func(memoStart int64) ([]segment, int64, error) {
			n, err := h.NBytes()
			if err != nil {
				return nil, 0, err
			}
			cnt, _ := shapeSize(h.Shape)
			segs, end, err := encodeMasked(mf.cfg.profile, h, fill, memoStart)
			if err != nil {
				return nil, 0, err
			}
			return []segment{{b: segs[0], r: data, n: n}, {b: segs[1], r: mask, n: cnt}, {b: segs[2]}}, end, nil
		}, true)
		return err
	})
}

// putArrayFrom copies an array from any file under key, re-encoded in
// this file's profile (Fortran data transposed for the mmappickle profile),
// telling the progress callback.
func (mf *File) putArrayFrom(key string, a *Array) error {
	h := a.header()
	r := io.Reader(a.Section())
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		cr := a.cReader()
		defer cr.Close()
		h.Fortran, r = false, cr
	}
	rs, err := mf.cfg.progressReaders(a.NBytes, r)
	if err != nil {
		return err
	}
	return mf.PutArray(key, h, rs[0])
}

// putMaskedFrom copies a masked array from any file under key (see
// putArrayFrom).
func (mf *File) putMaskedFrom(key string, m *Masked) error {
	h := m.Data.header()
	var fill []byte
	if fa, ok := m.Fill.(*Array); ok && fa.NBytes == int64(fa.DType.ItemSize) && fa.DType == m.Data.DType {
		fill = make([]byte, fa.NBytes)
		if _, err := fa.Section().ReadAt(fill, 0); err != nil {
			return mf.wrap(fmt.Errorf("key %q: reading fill value: %w", key, err))
		}
	}
	data, mask := io.Reader(m.Data.Section()), io.Reader(m.Mask.Section())
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		h.Fortran = false
		cd, cm := m.Data.cReader(), m.Mask.cReader()
		defer cd.Close()
		defer cm.Close()
		data, mask = cd, cm
	}
	rs, err := mf.cfg.progressReaders(m.Data.NBytes+m.Mask.NBytes, data, mask)
	if err != nil {
		return err
	}
	return mf.PutMasked(key, h, rs[0], rs[1], fill)
}

// progressReaders wraps the readers of one operation of total bytes so
// that what is read through them goes to the progress callback, whose
// error ends the read. It reports the start (0 bytes done).
func (c *config) progressReaders(total int64, rs ...io.Reader) ([]io.Reader, error) {
	if c.progress == nil && c.interrupt == nil {
		return rs, nil
	}
	if err := c.report(0, total); err != nil {
		return nil, err
	}
	done := new(int64)
	out := make([]io.Reader, len(rs))
	for i, r := range rs {
		out[i] = &progressReader{r: r, c: c, done: done, total: total}
	}
	return out, nil
}

// progressReader counts what is read through it into done.
type progressReader struct {
	r     io.Reader
	c     *config
	done  *int64
	total int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		*p.done += int64(n)
		if perr := p.c.report(*p.done, p.total); perr != nil {
			return n, perr
		}
	}
	return n, err
}
