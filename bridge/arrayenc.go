package bridge

import (
	"encoding/binary"
	"fmt"
)

// emitter builds a pickle the way CPython's pickler followed by mmappickle's
// memo clean-up does: every object that CPython would find again in its memo
// (same object identity) is PUT on first use and fetched with GET after;
// PUTs never fetched are dropped and the rest numbered from the memo start.
// Array data is not part of the emitted bytes: a data part records where it
// goes.
//
// The identities that matter, measured against CPython 3.11 + numpy 1.24
// (bridge/arrayenc_test.go compares the bytes):
//   - a global's module and name strings are shared by every use ("numpy"
//     for ndarray and dtype, "numpy.ma.core" for _mareconstruct and
//     MaskedArray), and so is the global object (ndarray in a masked array
//     and in its fill value);
//   - a masked array's fill value (a 0-d array) has the data's dtype object,
//     whatever the kind: numpy's _check_fill_value builds it with the data's
//     dtype, so the fill's dtype is a GET of the data's;
//   - CPython caches the empty and every 1-byte bytes object, and
//     1-character latin-1 strings: equal ones are the same object. tobytes()
//     of an empty array is that empty bytes object, so an empty masked
//     array's mask is a GET of its data; a 1-byte fill equal to b'b' is a GET
//     of _reconstruct's b'b'; a 1-letter datetime unit (b'D') likewise.
//     Array data and masks are streamed after the pickle is encoded, so when
//     one is a single byte its content is unknown here: CPython then shares
//     it with an equal 1-byte object (b'b', the mask, the fill) where we
//     write it out. The pickle loads to the same array either way;
//   - numpy gives a generic datetime64/timedelta64 *scalar* fill value a
//     dtype object of its own (a 0-d array fill keeps the data's): we always
//     share, which matches every fill except that one. Same array again.
type emitter struct {
	parts []part
	ids   map[string]int // identity key -> memo id
	used  map[int]bool
	n     int
}

type part struct {
	raw  []byte
	put  int // memo id + 1 when this is a PUT
	get  int // memo id + 1 when this is a GET
	data bool
}

func newEmitter() *emitter {
	return &emitter{ids: map[string]int{}, used: map[int]bool{}}
}

func (e *emitter) raw(b ...byte) {
	if len(e.parts) > 0 {
		if p := &e.parts[len(e.parts)-1]; p.put == 0 && p.get == 0 && !p.data {
			p.raw = append(p.raw, b...)
			return
		}
	}
	e.parts = append(e.parts, part{raw: append([]byte(nil), b...)})
}

// memoized emits the object with identity key via write, or a GET when the
// key was seen before. An empty key is an object seen only once.
func (e *emitter) memoized(key string, write func()) {
	if key != "" {
		if id, ok := e.ids[key]; ok {
			e.used[id] = true
			e.parts = append(e.parts, part{get: id + 1})
			return
		}
	}
	write()
	id := e.n
	e.n++
	if key != "" {
		e.ids[key] = id
	}
	e.parts = append(e.parts, part{put: id + 1})
}

func (e *emitter) str(s string, key string) {
	e.memoized(key, func() { e.raw(unicodeOp(s)...) })
}

// global emits module.name with STACK_GLOBAL; the global object, its module
// string and its name string are each shared objects in CPython.
func (e *emitter) global(module, name string) {
	e.memoized("global:"+module+"."+name, func() {
		e.str(module, "str:"+module)
		e.str(name, "str:"+name)
		e.raw(opStackGlobal)
	})
}

func (e *emitter) int(v int64) { e.raw(intOp(v)...) }

// tuple emits n already-emitted items as a tuple (CPython memoizes tuples,
// but ours are never shared).
func (e *emitter) tupleEnd(n int) {
	switch n {
	case 1, 2, 3:
		e.raw(byte(opTuple1 + n - 1))
	default:
		e.raw(opTuple)
	}
}

func (e *emitter) shape(shape []int) {
	if len(shape) == 0 {
		e.raw(opEmptyTuple)
		return
	}
	if len(shape) > 3 {
		e.raw(opMark)
	}
	for _, d := range shape {
		e.int(int64(d))
	}
	e.tupleEnd(len(shape))
	e.memoized("", func() {})
}

// bytesHeader emits the opcode and length of an n-byte bytes object whose
// payload follows (the array data). An empty one is CPython's cached empty
// bytes object.
func (e *emitter) bytesHeader(n int64) {
	if n == 0 {
		// The data (none) starts right after the opcode, before the PUT:
		// file.go aligns the data offset, the end of the first segment.
		const key = "bytes:"
		if _, seen := e.ids[key]; seen {
			e.memoized(key, nil)
			e.parts = append(e.parts, part{data: true})
			return
		}
		e.memoized(key, func() {
			e.raw(bytesOpHeader(0)...)
			e.parts = append(e.parts, part{data: true})
		})
		return
	}
	e.raw(bytesOpHeader(n)...)
	e.parts = append(e.parts, part{data: true})
	e.memoized("", func() {})
}

// bytesObj emits a bytes object whose content is known; CPython shares the
// empty and the 1-byte ones (cached singletons).
func (e *emitter) bytesObj(b []byte) {
	key := ""
	if len(b) <= 1 {
		key = "bytes:" + string(b)
	}
	e.memoized(key, func() { e.raw(append(bytesOpHeader(int64(len(b))), b...)...) })
}

// finish numbers the memo from start and returns the pickle split at the
// data marks (one more segment than marks) and the memo end.
func (e *emitter) finish(start int64) (segs [][]byte, end int64) {
	next := start
	newID := map[int]int64{}
	segs = [][]byte{nil}
	for _, p := range e.parts {
		cur := &segs[len(segs)-1]
		switch {
		case p.data:
			segs = append(segs, nil)
		case p.put != 0:
			if e.used[p.put-1] {
				newID[p.put-1] = next
				*cur = append(*cur, memoOp(opBinPut, opLongBinPut, next)...)
				next++
			}
		case p.get != 0:
			*cur = append(*cur, memoOp(opBinGet, opLongBinGet, newID[p.get-1])...)
		default:
			*cur = append(*cur, p.raw...)
		}
	}
	return segs, next
}

func memoOp(short, long byte, i int64) []byte {
	if i < 256 {
		return []byte{short, byte(i)}
	}
	b := []byte{long, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], uint32(i))
	return b
}

// intOp encodes an int as CPython's save_long does at protocol >= 2.
func intOp(v int64) []byte {
	switch {
	case v >= 0 && v <= 0xff:
		return []byte{opBinInt1, byte(v)}
	case v >= 0 && v <= 0xffff:
		return []byte{opBinInt2, byte(v), byte(v >> 8)}
	case v >= -1<<31 && v < 1<<31:
		b := []byte{opBinInt, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(b[1:], uint32(int32(v)))
		return b
	}
	// LONG1 with the shortest two's-complement little-endian form.
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(v))
	n := 8
	for n > 1 {
		last, prev := buf[n-1], buf[n-2]
		if (last == 0 && prev&0x80 == 0) || (last == 0xff && prev&0x80 != 0) {
			n--
			continue
		}
		break
	}
	return append([]byte{opLong1, byte(n)}, buf[:n]...)
}

func unicodeOp(s string) []byte {
	n := len(s)
	switch {
	case n < 256:
		return append([]byte{opShortBinUni, byte(n)}, s...)
	case int64(n) <= 0xffffffff:
		b := []byte{opBinUnicode, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(b[1:], uint32(n))
		return append(b, s...)
	}
	b := []byte{opBinUnicode8, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint64(b[1:], uint64(n))
	return append(b, s...)
}

func bytesOpHeader(n int64) []byte {
	switch {
	case n < 256:
		return []byte{opShortBinBytes, byte(n)}
	case n <= 0xffffffff:
		b := []byte{opBinBytes, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(b[1:], uint32(n))
		return b
	}
	b := []byte{opBinBytes8, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint64(b[1:], uint64(n))
	return b
}

// ArrayHeader describes an array to write: its dtype, shape and the order of
// the bytes that will be supplied.
type ArrayHeader struct {
	DType   DType
	Shape   []int
	Fortran bool // bytes are in Fortran (column-major) order
}

// NBytes is the size of the array's data.
func (h ArrayHeader) NBytes() (int64, error) {
	if err := h.DType.validate(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	if _, _, ok := h.DType.SubArray(); ok {
		return 0, fmt.Errorf("an array of a subarray dtype %s (numpy makes it an array of the base dtype with the subarray's dimensions appended): %w", h.DType, ErrUnsupported)
	}
	if len(h.Shape) > 64 {
		return 0, fmt.Errorf("array with %d dimensions (numpy allows 64)", len(h.Shape))
	}
	n, ok := shapeSize(h.Shape)
	if !ok {
		return 0, fmt.Errorf("array shape %v is invalid or too large", h.Shape)
	}
	if n > (1<<62)/int64(h.DType.ItemSize) {
		return 0, fmt.Errorf("array of shape %v is too large", h.Shape)
	}
	return n * int64(h.DType.ItemSize), nil
}

// isFortranFlag is numpy's PyArray_ISFORTRAN for contiguous data: Fortran
// order that is not also C order (more than one dimension longer than 1).
func (h ArrayHeader) isFortranFlag() bool {
	if !h.Fortran {
		return false
	}
	big := 0
	for _, d := range h.Shape {
		if d > 1 {
			big++
		}
	}
	n, _ := shapeSize(h.Shape)
	return big > 1 && n > 0
}

// dtypePickle emits numpy's pickle of a dtype: numpy.dtype(descr, False,
// True) then BUILD with its state tuple. key is the dtype object's identity
// ("" for one seen once); a second use is a GET, without the state.
func (e *emitter) dtypePickle(d DType, key string) {
	if _, seen := e.ids[key]; seen && key != "" {
		e.memoized(key, nil)
		return
	}
	e.memoized(key, func() {
		e.global("numpy", "dtype")
		e.str(d.descr(), "")
		e.raw(opNewFalse, opNewTrue, opTuple3)
		e.memoized("", func() {})
		e.raw(opReduce)
	})
	// The state is emitted after the memo PUT of the dtype object, as
	// CPython's save_reduce does.
	e.raw(opMark)
	version := int64(3)
	if d.Kind == 'M' || d.Kind == 'm' {
		version = 4
	}
	e.int(version)
	e.str(string(d.ByteOrder), "str:"+string(d.ByteOrder)) // 1-char strings are shared in CPython
	elsize, align, flags := int64(-1), int64(-1), int64(0)
	switch {
	case d.layout != "":
		e.structState(d)
		elsize, align, flags = int64(d.ItemSize), int64(d.alignment()), dtypeFlags(d)
		if d.structured() && !d.Aligned() {
			align = 1
		}
		if flags >= 128 {
			// Signed, as numpy 1.x writes it: numpy 1.x refuses 144, numpy 2
			// reads -112 as a packed dtype of the same layout.
			flags -= 256
		}
	case d.Kind == 'U':
		e.raw(opNone, opNone, opNone)
		elsize, align, flags = int64(d.ItemSize), 4, 8
	case d.Kind == 'S' || d.Kind == 'V':
		e.raw(opNone, opNone, opNone)
		elsize, align = int64(d.ItemSize), 1
	default:
		e.raw(opNone, opNone, opNone)
	}
	e.int(elsize)
	e.int(align)
	e.int(flags)
	if version == 4 {
		e.raw(opEmptyDict)
		e.memoized("", func() {})
		e.raw(opMark)
		unit, count := d.Unit, int64(d.UnitCount)
		if unit == "" {
			unit, count = "generic", 1
		}
		e.bytesObj([]byte(unit))
		e.int(count)
		e.int(1)
		e.int(1)
		e.raw(opTuple)
		e.memoized("", func() {})
		e.raw(opTuple2)
		e.memoized("", func() {})
	}
	e.raw(opTuple)
	e.memoized("", func() {})
	e.raw(opBuild)
}

// structState emits the subarray, names and fields of a structured or
// subarray dtype's state (machine_struct.go says what numpy writes).
func (e *emitter) structState(d DType) {
	if base, shape, ok := d.SubArray(); ok {
		e.dtypePickle(base, "")
		e.shape(shape)
		e.raw(opTuple2)
		e.memoized("", func() {})
		e.raw(opNone, opNone)
		return
	}
	fields := d.Fields()
	e.raw(opNone)
	if len(fields) > 3 {
		e.raw(opMark)
	}
	for _, f := range fields {
		e.str(f.Name, "field:"+f.Name)
	}
	e.tupleEnd(len(fields))
	e.memoized("", func() {})
	e.raw(opEmptyDict)
	e.memoized("", func() {})
	e.raw(opMark)
	for _, f := range fields {
		e.str(f.Name, "field:"+f.Name)
		e.dtypePickle(f.DType, "")
		e.int(int64(f.Offset))
		e.raw(opTuple2)
		e.memoized("", func() {})
	}
	e.raw(opSetItems)
}

// scalarPickle emits numpy's pickle of a numpy scalar:
// numpy.core.multiarray.scalar(dtype, raw).
func (e *emitter) scalarPickle(d DType, raw []byte) {
	e.global("numpy.core.multiarray", "scalar")
	e.dtypePickle(d, "")
	e.bytesObj(raw)
	e.raw(opTuple2)
	e.memoized("", func() {})
	e.raw(opReduce)
	e.memoized("", func() {})
}

// ndarrayPickle emits numpy's pickle of an ndarray, with the data marked,
// or written inline when inline is not nil. dtypeKey is the identity of its
// dtype object (see dtypePickle).
func (e *emitter) ndarrayPickle(h ArrayHeader, nbytes int64, inline []byte, dtypeKey string) {
	e.global("numpy.core.multiarray", "_reconstruct")
	e.global("numpy", "ndarray")
	e.int(0)
	e.raw(opTuple1)
	e.memoized("", func() {})
	e.bytesObj([]byte("b"))
	e.raw(opTuple3)
	e.memoized("", func() {})
	e.raw(opReduce)
	e.memoized("", func() {})
	e.raw(opMark)
	e.int(1)
	e.shape(h.Shape)
	e.dtypePickle(h.DType, dtypeKey)
	if h.isFortranFlag() {
		e.raw(opNewTrue)
	} else {
		e.raw(opNewFalse)
	}
	e.dataBytes(nbytes, inline)
	e.raw(opTuple)
	e.memoized("", func() {})
	e.raw(opBuild)
}

func (e *emitter) dataBytes(nbytes int64, inline []byte) {
	if inline != nil {
		e.bytesObj(inline)
		return
	}
	e.bytesHeader(nbytes)
}

// maskedPickle emits numpy's pickle of a MaskedArray: data and mask marked,
// fill (one element of the dtype, or nil for None) inline.
func (e *emitter) maskedPickle(h ArrayHeader, nbytes int64, fill []byte) {
	e.global("numpy.ma.core", "_mareconstruct")
	e.raw(opMark)
	e.global("numpy.ma.core", "MaskedArray")
	e.global("numpy", "ndarray")
	e.int(0)
	e.raw(opTuple1)
	e.memoized("", func() {})
	e.str("b", "str:b")
	e.raw(opTuple)
	e.memoized("", func() {})
	e.raw(opReduce)
	e.memoized("", func() {})
	e.raw(opMark)
	e.int(1)
	e.shape(h.Shape)
	// The fill value's dtype is the data's dtype object.
	const dtypeKey = "dtype:masked"
	e.dtypePickle(h.DType, dtypeKey)
	if h.isFortranFlag() {
		e.raw(opNewTrue)
	} else {
		e.raw(opNewFalse)
	}
	e.bytesHeader(nbytes)
	n, _ := shapeSize(h.Shape)
	e.bytesHeader(n)
	if fill == nil {
		e.raw(opNone)
	} else {
		e.ndarrayPickle(ArrayHeader{DType: h.DType}, int64(len(fill)), fill, dtypeKey)
	}
	e.raw(opTuple)
	e.memoized("", func() {})
	e.raw(opBuild)
}

// mmappickleHeader is the 70-byte prefix mmappickle 1.0.1 recognises.
var mmappickleHeader = func() []byte {
	var b []byte
	for _, s := range []string{"numpy.core.fromnumeric", "reshape"} {
		b = append(b, unicodeOp(s)...)
	}
	b = append(b, opStackGlobal)
	for _, s := range []string{"numpy.core.multiarray", "fromstring"} {
		b = append(b, unicodeOp(s)...)
	}
	return append(b, opStackGlobal)
}()

// mmappickleArray emits mmappickle's own array encoding (C-order data).
func (e *emitter) mmappickleArray(h ArrayHeader, nbytes int64) {
	e.raw(mmappickleHeader...)
	b := []byte{opBinBytes8, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint64(b[1:], uint64(nbytes))
	e.raw(b...)
	e.parts = append(e.parts, part{data: true})
	e.raw(unicodeOp(h.DType.Name())...)
	e.raw(opTuple2, opReduce)
	e.shape(h.Shape)
	e.raw(opTuple2, opReduce)
}

// encodeArray returns the pickle of an array split around its data, and the
// memo end to store in the entry trailer.
func encodeArray(p Profile, h ArrayHeader, memoStart int64) ([][]byte, int64, error) {
	n, err := h.NBytes()
	if err != nil {
		return nil, 0, err
	}
	if p == Mmappickle && h.DType.layout != "" {
		return nil, 0, errStructuredMmappickle
	}
	e := newEmitter()
	if p == Mmappickle {
		e.mmappickleArray(h, n)
		segs, _ := e.finish(0)
		return segs, 0, nil
	}
	e.ndarrayPickle(h, n, nil, "")
	segs, end := e.finish(memoStart)
	return segs, end, nil
}

// encodeMasked returns the pickle of a masked array split around its data
// and its mask (three segments). mmappickle's encoding drops the fill value.
func encodeMasked(p Profile, h ArrayHeader, fill []byte, memoStart int64) ([][]byte, int64, error) {
	n, err := h.NBytes()
	if err != nil {
		return nil, 0, err
	}
	if fill != nil && len(fill) != h.DType.ItemSize {
		return nil, 0, fmt.Errorf("fill value of %d bytes for dtype %s", len(fill), h.DType)
	}
	if p == Mmappickle && h.DType.layout != "" {
		return nil, 0, errStructuredMmappickle
	}
	e := newEmitter()
	if p == Mmappickle {
		e.raw(unicodeOp("numpy.ma.core")...)
		e.raw(unicodeOp("MaskedArray")...)
		e.raw(opStackGlobal)
		e.mmappickleArray(h, n)
		cnt, _ := shapeSize(h.Shape)
		e.mmappickleArray(ArrayHeader{DType: boolDType, Shape: h.Shape}, cnt)
		e.raw(opTuple2, opReduce)
		segs, _ := e.finish(0)
		return segs, 0, nil
	}
	e.maskedPickle(h, n, fill)
	segs, end := e.finish(memoStart)
	return segs, end, nil
}

var boolDType = DType{ByteOrder: '|', Kind: 'b', ItemSize: 1}

// errStructuredMmappickle: mmappickle's encoding names the dtype by
// str(dtype), which numpy cannot parse back for a structured one.
var errStructuredMmappickle = fmt.Errorf("the mmappickle profile cannot store structured dtypes (mmappickle's fromstring takes str(dtype)); use the portable profile: %w", ErrUnsupported)
