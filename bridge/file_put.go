package bridge

// Storing values and arrays: each builds its pickle and goes through
// appendValue (file_commit.go).

import (
	"bytes"
	"fmt"
	"io"
)

// Put stores v under key, replacing any previous value. v may be an *Array
// or *Masked (from any file: the data is copied), an Object (its pickle is
// copied verbatim), or a plain Go value (see encodeValue).
func (mf *File) Put(key string, v any) error {
	switch v := v.(type) {
	case *Array:
		return mf.PutArrayFrom(key, v, nil)
	case *Masked:
		return mf.PutMaskedFrom(key, v, nil)
	case Object:
		return mf.PutPickle(key, v.Pickle)
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

// PutPickle stores a value given as a complete pickle (what Python's
// pickle.dumps returns, protocol 2 to 5, or Reader.Pickle), verbatim but for
// its framing and memo indices, renumbered to follow the file's. Nothing of
// it is run or checked: Verify tells what pickle.load of it would do.
func (mf *File) PutPickle(key string, pickle []byte) error {
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

// PutArrayFrom copies an array from any file under key, re-encoded in this
// file's profile (Fortran data transposed for the mmappickle profile). wrap,
// if not nil, wraps the data reader (to count progress or cancel).
func (mf *File) PutArrayFrom(key string, a *Array, wrap func(io.Reader) io.Reader) error {
	h := ArrayHeader{DType: a.DType, Shape: a.Shape, Fortran: a.Fortran}
	r := io.Reader(a.Reader())
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		h.Fortran, r = false, a.cReader()
	}
	return mf.PutArray(key, h, wrapReader(wrap, r))
}

// PutMaskedFrom copies a masked array from any file under key (see
// PutArrayFrom).
func (mf *File) PutMaskedFrom(key string, m *Masked, wrap func(io.Reader) io.Reader) error {
	h := ArrayHeader{DType: m.Data.DType, Shape: m.Data.Shape, Fortran: m.Data.Fortran}
	var fill []byte
	if fa, ok := m.Fill.(*Array); ok && fa.NBytes == int64(fa.DType.ItemSize) && fa.DType == m.Data.DType {
		fill = make([]byte, fa.NBytes)
		if _, err := fa.Reader().ReadAt(fill, 0); err != nil {
			return mf.wrap(fmt.Errorf("key %q: reading fill value: %w", key, err))
		}
	}
	data, mask := io.Reader(m.Data.Reader()), io.Reader(m.Mask.Reader())
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		h.Fortran = false
		data, mask = m.Data.cReader(), m.Mask.cReader()
	}
	return mf.PutMasked(key, h, wrapReader(wrap, data), wrapReader(wrap, mask), fill)
}

func wrapReader(wrap func(io.Reader) io.Reader, r io.Reader) io.Reader {
	if wrap == nil {
		return r
	}
	return wrap(r)
}
