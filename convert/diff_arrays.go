package convert

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"

	"mmpbridge/internal/fault"
	"mmpbridge/pyval"

	"mmpbridge/bridge"
)

// Arrays are compared in blocks of about diffBlock bytes: through the
// mappings, on all cores, when both arrays have their bytes in the same
// order; as two C-order streams otherwise (one array Fortran, the other
// C). Mapped pages are released as they are compared, so that comparing
// two 1 GiB arrays does not grow the resident set by 2 GiB.
const diffBlock = 1 << 20

// tolerance is DiffOptions' rtol/atol for one dtype; on is false for exact
// comparison.
type tolerance struct {
	on         bool
	rtol, atol float64
}

func (d *differ) tolerance(dt bridge.DType) tolerance {
	if d.opt.RTol == 0 && d.opt.ATol == 0 {
		return tolerance{}
	}
	switch dt.Kind {
	case 'i', 'u', 'f', 'c':
		return tolerance{on: true, rtol: d.opt.RTol, atol: d.opt.ATol}
	}
	return tolerance{}
}

// cmpResult is what comparing two arrays found.
type cmpResult struct {
	count int64
	first int64 // linear index (in the compared order) of the first difference
	index []int
	a, b  bridge.Scalar
}

// elemCmp compares elements of two arrays of one dtype (byte orders may
// differ).
type elemCmp struct {
	da, db bridge.DType
	swap   bool // byte orders differ
	unit   int  // the size of a byte-swapped unit
	tol    tolerance
}

func newElemCmp(da, db bridge.DType, tol tolerance) *elemCmp {
	c := &elemCmp{da: da, db: db, tol: tol, unit: da.ItemSize}
	c.swap = da.ByteOrder != db.ByteOrder && da.ByteOrder != '|' && db.ByteOrder != '|'
	switch da.Kind {
	case 'c':
		c.unit = da.ItemSize / 2
	case 'U':
		c.unit = 4
	}
	if c.tol.on {
		// Tolerances need numbers Go can decode.
		if _, _, ok := number(make([]byte, da.ItemSize), da); !ok {
			c.tol.on = false
		}
	}
	return c
}

// exact: elements are equal iff their bytes are.
func (c *elemCmp) exact() bool { return !c.swap && !c.tol.on }

// equal compares one element of each.
func (c *elemCmp) equal(x, y []byte) bool {
	if c.tol.on {
		xr, xi, _ := number(x, c.da)
		yr, yi, _ := number(y, c.db)
		return isClose(xr, yr, c.tol) && isClose(xi, yi, c.tol)
	}
	if !c.swap {
		return bytes.Equal(x, y)
	}
	u := c.unit
	for s := 0; s < len(x); s += u {
		for i := range u {
			if x[s+i] != y[s+u-1-i] {
				return false
			}
		}
	}
	return true
}

// isClose is numpy.isclose with equal_nan: |a - b| <= atol + rtol*|b|.
func isClose(a, b float64, t tolerance) bool {
	if a == b {
		return true
	}
	if a != a || b != b {
		return a != a && b != b
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) {
		return false
	}
	return math.Abs(a-b) <= t.atol+t.rtol*math.Abs(b)
}

// number decodes a numeric element as float64 (real and imaginary parts).
func number(b []byte, d bridge.DType) (re, im float64, ok bool) {
	if len(b) != d.ItemSize {
		return 0, 0, false
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if d.ByteOrder == '>' {
		bo = binary.BigEndian
	}
	switch d.Kind {
	case 'f':
		switch d.ItemSize {
		case 4:
			return float64(math.Float32frombits(bo.Uint32(b))), 0, true
		case 8:
			return math.Float64frombits(bo.Uint64(b)), 0, true
		case 2:
			s := bridge.Scalar{DType: d, Raw: b}
			f, ok := s.Value().(float64)
			return f, 0, ok
		}
	case 'c':
		h := d.ItemSize / 2
		part := bridge.DType{ByteOrder: d.ByteOrder, Kind: 'f', ItemSize: h}
		re, _, ok1 := number(b[:h], part)
		im, _, ok2 := number(b[h:], part)
		return re, im, ok1 && ok2
	case 'i', 'u':
		s := bridge.Scalar{DType: d, Raw: b}
		switch v := s.Value().(type) {
		case int64:
			return float64(v), 0, true
		case uint64:
			return float64(v), 0, true
		}
	}
	return 0, 0, false
}

// normalizeOrder returns raw (an element of dtype d) in byte order to.
func normalizeOrder(raw []byte, d bridge.DType, to byte) []byte {
	if d.ByteOrder == to || d.ByteOrder == '|' || to == '|' {
		return raw
	}
	c := newElemCmp(d, d, tolerance{})
	out := make([]byte, len(raw))
	for s := 0; s+c.unit <= len(raw); s += c.unit {
		for i := range c.unit {
			out[s+i] = raw[s+c.unit-1-i]
		}
	}
	return out
}

// compareArrays compares the elements of two arrays of one shape and
// matching dtypes. p counts the bytes of a compared (nil: no counting).
func compareArrays(ctx context.Context, a, b *bridge.Array, tol tolerance, p *progress) (res cmpResult, err error) {
	n := a.Size()
	if n == 0 || a.DType.ItemSize == 0 {
		return res, nil
	}
	c := newElemCmp(a.DType, b.DType, tol)
	fortran := a.Fortran
	if a.Fortran == b.Fortran {
		res, err = compareSameOrder(ctx, a, b, c, p)
	} else {
		fortran = false
		res, err = compareStreams(ctx, a, b, c, p)
	}
	if err != nil || res.count == 0 {
		return res, err
	}
	res.index = unravel(res.first, a.Shape, fortran)
	return res, nil
}

// unravel turns a linear index into one index per axis.
func unravel(i int64, shape []int, fortran bool) []int {
	idx := make([]int, len(shape))
	if fortran {
		for ax := 0; ax < len(shape); ax++ {
			if shape[ax] > 0 {
				idx[ax] = int(i % int64(shape[ax]))
				i /= int64(shape[ax])
			}
		}
		return idx
	}
	for ax := len(shape) - 1; ax >= 0; ax-- {
		if shape[ax] > 0 {
			idx[ax] = int(i % int64(shape[ax]))
			i /= int64(shape[ax])
		}
	}
	return idx
}

// compareSameOrder compares blocks of the two arrays' bytes on all cores.
func compareSameOrder(ctx context.Context, a, b *bridge.Array, c *elemCmp, p *progress) (cmpResult, error) {
	isz := int64(a.DType.ItemSize)
	n := a.Size()
	per := max(1, diffBlock/isz) // elements per block
	nblocks := (n + per - 1) / per
	ma, mb := a.Bytes(), b.Bytes()
	var (
		next    atomic.Int64
		mu      sync.Mutex
		res     = cmpResult{first: -1}
		firstEr error
		wg      sync.WaitGroup
	)
	workers := int(min(int64(runtime.GOMAXPROCS(0)), nblocks))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var bufA, bufB []byte
			for {
				i := next.Add(1) - 1
				if i >= nblocks || ctx.Err() != nil {
					return
				}
				lo := i * per
				cnt := min(per, n-lo)
				xa, err := blockOf(a, ma, lo*isz, cnt*isz, &bufA)
				if err == nil {
					var xb []byte
					xb, err = blockOf(b, mb, lo*isz, cnt*isz, &bufB)
					if err == nil {
						var k, f int64
						k, f, err = compareBlock(xa, xb, c)
						if err == nil && k > 0 {
							mu.Lock()
							res.count += k
							if res.first < 0 || lo+f < res.first {
								res.first = lo + f
							}
							mu.Unlock()
						}
						if ma != nil {
							release(xa)
						}
						if mb != nil {
							release(xb)
						}
					}
				}
				if err != nil {
					mu.Lock()
					if firstEr == nil {
						firstEr = err
					}
					mu.Unlock()
					next.Store(nblocks)
					return
				}
				if p != nil {
					p.add(cnt * isz)
				}
			}
		}()
	}
	wg.Wait()
	if firstEr != nil {
		return res, firstEr
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.count > 0 {
		if err := res.elements(a, b, res.first); err != nil {
			return res, err
		}
	}
	return res, nil
}

// elements fills in the two elements at linear (storage) index i.
func (res *cmpResult) elements(a, b *bridge.Array, i int64) error {
	isz := int64(a.DType.ItemSize)
	ea, eb := make([]byte, isz), make([]byte, isz)
	if _, err := a.Section().ReadAt(ea, i*isz); err != nil {
		return fmt.Errorf("reading element %d: %w", i, err)
	}
	if _, err := b.Section().ReadAt(eb, i*isz); err != nil {
		return fmt.Errorf("reading element %d: %w", i, err)
	}
	res.a = bridge.Scalar{DType: a.DType, Raw: ea}
	res.b = bridge.Scalar{DType: b.DType, Raw: eb}
	return nil
}

// blockOf returns n bytes of a's data from off: a view of the mapping m,
// or read into *buf when the array is not mapped (a remote file).
func blockOf(a *bridge.Array, m []byte, off, n int64, buf *[]byte) ([]byte, error) {
	if m != nil {
		if off+n > int64(len(m)) {
			return nil, fmt.Errorf("array data past the mapping")
		}
		return m[off : off+n], nil
	}
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := a.Section().ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("reading the array at byte %d: %w", off, err)
	}
	return b, nil
}

// compareBlock counts the differing elements of two blocks and finds the
// first. A mapping cut short under it (the file truncated meanwhile) is an
// error, not a crash.
func compareBlock(x, y []byte, c *elemCmp) (count, first int64, err error) {
	defer fault.Guard(&err, "comparing mapped data", bridge.ErrShrank)()
	first = -1
	isz := c.da.ItemSize
	if c.exact() {
		if bytes.Equal(x, y) {
			return 0, -1, nil
		}
		// Skip equal stretches quickly, then count element by element.
		for s := 0; s < len(x); {
			e := min(len(x), s+64*isz)
			if bytes.Equal(x[s:e], y[s:e]) {
				s = e
				continue
			}
			for ; s < e; s += isz {
				if !bytes.Equal(x[s:s+isz], y[s:s+isz]) {
					if first < 0 {
						first = int64(s / isz)
					}
					count++
				}
			}
		}
		return count, first, nil
	}
	for s := 0; s+isz <= len(x); s += isz {
		if !c.equal(x[s:s+isz], y[s:s+isz]) {
			if first < 0 {
				first = int64(s / isz)
			}
			count++
		}
	}
	return count, first, nil
}

// compareStreams compares two arrays in C order, each streamed by WriteC.
func compareStreams(ctx context.Context, a, b *bridge.Array, c *elemCmp, p *progress) (cmpResult, error) {
	res := cmpResult{first: -1}
	ra, stopA := cStream(a)
	defer stopA()
	rb, stopB := cStream(b)
	defer stopB()
	isz := int64(a.DType.ItemSize)
	per := max(1, diffBlock/isz)
	xa, xb := make([]byte, per*isz), make([]byte, per*isz)
	var idx int64
	n := a.Size()
	for idx < n {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		cnt := min(per, n-idx)
		if _, err := io.ReadFull(ra, xa[:cnt*isz]); err != nil {
			return res, fmt.Errorf("reading in C order: %w", err)
		}
		if _, err := io.ReadFull(rb, xb[:cnt*isz]); err != nil {
			return res, fmt.Errorf("reading in C order: %w", err)
		}
		k, f, err := compareBlock(xa[:cnt*isz], xb[:cnt*isz], c)
		if err != nil {
			return res, err
		}
		if k > 0 && res.first < 0 {
			res.first = idx + f
			res.a = bridge.Scalar{DType: a.DType, Raw: bytes.Clone(xa[f*isz : (f+1)*isz])}
			res.b = bridge.Scalar{DType: b.DType, Raw: bytes.Clone(xb[f*isz : (f+1)*isz])}
		}
		res.count += k
		idx += cnt
		if p != nil {
			p.add(cnt * isz)
		}
	}
	return res, nil
}

// cStream streams a's bytes in C order through a pipe.
func cStream(a *bridge.Array) (io.Reader, func()) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(a.WriteC(pw)) }()
	return pr, func() { pr.CloseWithError(io.ErrClosedPipe) }
}

// deepEqual compares leaf values: bools, ints, strings, bytes, dtypes,
// undecoded objects (by their pickles).
func deepEqual(a, b any) bool {
	switch x := a.(type) {
	case *big.Int:
		y, ok := b.(*big.Int)
		return ok && x.Cmp(y) == 0
	case *pyval.Object:
		y, ok := b.(*pyval.Object)
		return ok && x.Module == y.Module && x.Name == y.Name && bytes.Equal(x.Pickle, y.Pickle)
	}
	return reflect.DeepEqual(a, b)
}

func signbit(f float64) bool { return math.Signbit(f) }
