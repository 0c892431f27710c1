package bridge

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/pyval"
)

// Builders of hand-made files.

// pkl concatenates pickle fragments.
func pkl(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		case rune:
			b = append(b, byte(p))
		case []byte:
			b = append(b, p...)
		case string:
			b = append(b, opShortBinUni, byte(len(p)))
			b = append(b, p...)
		default:
			panic(fmt.Sprintf("pkl: %T", p))
		}
	}
	return b
}

func le32(v int32) []byte  { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// testEntry is an entry's bytes: FRAME n, key, value, BININT 0 POP, flag POP.
func testEntry(key string, value []byte, live bool) []byte {
	return testEntryMemo(key, value, live, 0)
}

// testEntryMemo is an entry whose trailer stores memo as its memo max index.
func testEntryMemo(key string, value []byte, live bool, memo int32) []byte {
	body := pkl(key, value, opBinInt, le32(memo), opPop)
	if live {
		body = append(body, opNewTrue, opPop)
	} else {
		body = append(body, opPop, opPop)
	}
	return pkl(opFrame, le64(uint64(len(body))), body)
}

// testFile is a whole file: header, entries, terminator.
func testFile(entries ...[]byte) []byte {
	b := header(7)
	for _, e := range entries {
		b = append(b, e...)
	}
	return append(b, terminator...)
}

// shapeTuple is a shape tuple: MARK, each dimension, TUPLE.
func shapeTuple(dims ...int64) []byte {
	b := []byte{opMark}
	for _, d := range dims {
		if d >= math.MinInt32 && d <= math.MaxInt32 {
			b = append(append(b, opBinInt), le32(int32(d))...)
		} else {
			b = append(append(b, opLong1, 8), le64(uint64(d))...)
		}
	}
	return append(b, opTuple)
}

// mmpGlobals is the 70-byte start of mmappickle's array encoding.
var mmpGlobals = pkl("numpy.core.fromnumeric", "reshape", opStackGlobal,
	"numpy.core.multiarray", "fromstring", opStackGlobal)

// mmpArray is mmappickle's array encoding:
// reshape(fromstring(BINBYTES8 raw, dtype), shape).
func mmpArray(raw []byte, dtype string, shape []byte) []byte {
	return pkl(mmpGlobals, opBinBytes8, le64(uint64(len(raw))), raw, dtype, opTuple2, opReduce,
		shape, opTuple2, opReduce)
}

// claimBytes sets the length of the first BINBYTES8 in an array pickle.
func claimBytes(v []byte, n uint64) []byte {
	v = bytes.Clone(v)
	binary.LittleEndian.PutUint64(v[len(mmpGlobals)+1:], n)
	return v
}

// mmpMasked is mmappickle's masked array: MaskedArray(data, mask).
func mmpMasked(data, mask []byte) []byte {
	return pkl("numpy.ma.core", "MaskedArray", opStackGlobal, data, mask, opTuple2, opReduce)
}

// portableArray is numpy's own pickle of a C-order array of the dtype descr
// ("f8") with byte order "<".
func portableArray(descr string, shape []byte, raw []byte) []byte {
	return pkl("numpy.core.multiarray", "_reconstruct", opStackGlobal,
		"numpy", "ndarray", opStackGlobal, opBinInt1, 0, opTuple1, opShortBinBytes, 1, 'b', opTuple3, opReduce,
		opMark, opBinInt1, 1, shape,
		"numpy", "dtype", opStackGlobal, descr, opNewFalse, opNewTrue, opTuple3, opReduce,
		opMark, opBinInt1, 3, "<", opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0, opTuple, opBuild,
		opNewFalse, opBinBytes, le32(int32(len(raw))), raw, opTuple, opBuild)
}

func referenceFile(t testing.TB, profile, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "compat", "testdata", profile, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutate returns a copy of b with fn applied.
func mutate(b []byte, fn func(b []byte) []byte) []byte { return fn(bytes.Clone(b)) }

// Offsets in compat/testdata/portable/deleted.mmpkl (514 bytes): entries at
// 24 ("a", dead), 185 ("b", dead), 211 ("c", live), 356 ("a", live); the
// terminator at 503.
const (
	delEntryB    = 185
	delEntryC    = 211
	delEntryA    = 356
	delFlagC     = delEntryC + 9 + 136 - 2
	delTermOff   = 503
	delFileSize  = 514
	delFirstEntr = 24
)

type badInput struct {
	name string
	data []byte
	// key: "" when opening the file must fail; otherwise opening succeeds
	// and reading key must fail.
	key string
	// off: the offset the error must name; -1 when it must lie in the key's
	// value.
	off int64
	// is: the sentinel the error must wrap (nil: neither ErrTorn nor
	// ErrNotMmappickle).
	is error
	// opaque: reading key gives an undecoded Object, not an error: numpy
	// may accept what the value does, but it is not numpy's own encoding,
	// so the value is neither an array nor decoded.
	opaque bool
}

func badInputs(t testing.TB) []badInput {
	del := referenceFile(t, "portable", "deleted.mmpkl")
	if len(del) != delFileSize || del[delTermOff] != opFrame || del[delFlagC] != opNewTrue {
		t.Fatalf("deleted.mmpkl is not the file these cases were made from")
	}
	setFrameLen := func(off int, n uint64) []byte {
		return mutate(del, func(b []byte) []byte { binary.LittleEndian.PutUint64(b[off+1:], n); return b })
	}
	setByte := func(off int, v byte) []byte {
		return mutate(del, func(b []byte) []byte { b[off] = v; return b })
	}
	insertBeforeTerm := func(stray []byte) []byte {
		return append(append(bytes.Clone(del[:delTermOff]), stray...), del[delTermOff:]...)
	}
	f64 := func(n int) []byte { return make([]byte, 8*n) }
	b1 := func(n int) []byte { return make([]byte, n) }
	dims65 := make([]int64, 65)
	for i := range dims65 {
		dims65[i] = 1
	}

	cases := []badInput{
		// Container.
		{name: "empty file", data: []byte{}, off: 0, is: ErrNotMmappickle},
		{name: "10 bytes", data: del[:10], off: 10, is: ErrNotMmappickle},
		{name: "header only", data: del[:headerSize], off: headerSize, is: ErrTorn},
		{name: "wrong PROTO", data: setByte(1, 3), off: 1, is: ErrNotMmappickle},
		{name: "not a pickle", data: mutate(del, func(b []byte) []byte { copy(b, "PK\x03\x04"); return b }), off: 0, is: ErrNotMmappickle},
		{name: "wrong version", data: setByte(12, 2), off: 12, is: ErrNotMmappickle},
		{name: "frame length past EOF", data: setFrameLen(delEntryA, 138+100), off: delEntryA, is: ErrTorn},
		{name: "frame length 2^63", data: setFrameLen(delFirstEntr, 1<<63), off: delFirstEntr, is: ErrTorn},
		{name: "frame length 2^64-1", data: setFrameLen(delEntryC, math.MaxUint64), off: delEntryC, is: ErrTorn},
		{name: "frame length 0", data: setFrameLen(delEntryB, 0), off: delEntryB},
		{name: "frame length ends inside the next entry", data: setFrameLen(delEntryB, 20), off: delEntryB + 9 + 20 - entryTrailer},
		{name: "entry without FRAME", data: setByte(delEntryC, opMark), off: delEntryC},
		{name: "entry without key", data: setByte(delEntryC+9, opShortBinBytes), off: delEntryC + 9},
		{name: "key length overruns the frame", data: setByte(delEntryB+10, 200), off: delEntryB},
		{name: "invalid UTF-8 key", data: setByte(delEntryC+11, 0xff), off: delEntryC + 11},
		{name: "bad entry flag byte", data: setByte(delFlagC, opNewFalse), off: delFlagC},
		{name: "bad entry trailer", data: setByte(delFlagC-6, opBinInt1), off: delFlagC - 6},
		{name: "negative memo index", data: setByte(delFlagC-2, 0x80), off: delFlagC - 5},
		{name: "missing terminator (torn)", data: del[:len(del)-1], off: delFileSize - 1 - terminatorSize, is: ErrTorn},
		{name: "cut inside an entry (torn)", data: del[:300], off: 300 - terminatorSize, is: ErrTorn},
		{name: "terminator only", data: del[delTermOff:], off: terminatorSize, is: ErrNotMmappickle},
		{name: "stray bytes before the terminator", data: insertBeforeTerm([]byte{0, 0, 0, 0, 0}), off: delTermOff, is: ErrTorn},
		{name: "stray entry-sized bytes before the terminator", data: insertBeforeTerm(make([]byte, 30)), off: delTermOff},
		{name: "too many keys", data: testFile(bytes.Repeat(testEntry("k", []byte{opNone}, false), 10001)), off: headerSize + 10000*21, is: ErrLimit},

		// Arrays, mmappickle encoding.
		{name: "BINBYTES8 claiming 2^62 bytes", data: testFile(testEntry("x", claimBytes(mmpArray(f64(3), "float64", shapeTuple(3)), 1<<62), true)), key: "x", off: -1},
		{name: "BINBYTES8 claiming 2^64-1 bytes", data: testFile(testEntry("x", claimBytes(mmpArray(f64(3), "float64", shapeTuple(3)), math.MaxUint64), true)), key: "x", off: -1},
		{name: "BINBYTES8 claiming one byte too many", data: testFile(testEntry("x", claimBytes(mmpArray(f64(3), "float64", shapeTuple(3)), 25), true)), key: "x", off: -1},
		{name: "byte count does not match dtype and shape", data: testFile(testEntry("x", mmpArray(f64(3), "float64", shapeTuple(4)), true)), key: "x", off: -1},
		{name: "byte count not a multiple of the item size", data: testFile(testEntry("x", mmpArray(b1(7), "int32", shapeTuple(2)), true)), key: "x", off: -1},
		{name: `dtype "object"`, data: testFile(testEntry("x", mmpArray(f64(3), "object", shapeTuple(3)), true)), key: "x", off: -1},
		{name: `dtype "|O"`, data: testFile(testEntry("x", mmpArray(f64(3), "|O", shapeTuple(3)), true)), key: "x", off: -1},
		{name: `dtype "<f3"`, data: testFile(testEntry("x", mmpArray(b1(9), "<f3", shapeTuple(3)), true)), key: "x", opaque: true},
		{name: `dtype ""`, data: testFile(testEntry("x", mmpArray(f64(3), "", shapeTuple(3)), true)), key: "x", opaque: true},
		{name: `dtype "M8[]"`, data: testFile(testEntry("x", mmpArray(f64(3), "M8[]", shapeTuple(3)), true)), key: "x", opaque: true},
		{name: "negative dimension (numpy infers a -1)", data: testFile(testEntry("x", mmpArray(f64(3), "float64", shapeTuple(3, -1)), true)), key: "x", opaque: true},
		{name: "65 dimensions", data: testFile(testEntry("x", mmpArray(f64(1), "float64", shapeTuple(dims65...)), true)), key: "x", off: -1},
		{name: "dimension over 2^62", data: testFile(testEntry("x", mmpArray(f64(0), "float64", shapeTuple(0, 1<<62+1)), true)), key: "x", off: -1},
		{name: "dimensions whose product overflows int64", data: testFile(testEntry("x", mmpArray(f64(1), "float64", shapeTuple(1<<40, 1<<40)), true)), key: "x", off: -1},
		{name: "dimensions whose product overflows uint64", data: testFile(testEntry("x", mmpArray(f64(1), "float64", shapeTuple(1<<62, 1<<62, 1<<62)), true)), key: "x", off: -1},
		{name: "size times item size overflows", data: testFile(testEntry("x", mmpArray(f64(1), "float64", shapeTuple(1<<61)), true)), key: "x", off: -1},
		{name: "0xff opcode inside an array", data: testFile(testEntry("x", pkl(mmpGlobals, 0xff, mmpArray(f64(1), "float64", shapeTuple(1))[len(mmpGlobals):]), true)), key: "x", off: -1},
		{name: "masked array whose mask shape differs", data: testFile(testEntry("m", mmpMasked(mmpArray(f64(3), "float64", shapeTuple(3)), mmpArray(b1(2), "bool", shapeTuple(2))), true)), key: "m", off: -1},
		{name: "masked array whose mask has more dimensions", data: testFile(testEntry("m", mmpMasked(mmpArray(f64(3), "float64", shapeTuple(3)), mmpArray(b1(3), "bool", shapeTuple(3, 1))), true)), key: "m", off: -1},
		{name: "masked array whose mask is not boolean", data: testFile(testEntry("m", mmpMasked(mmpArray(f64(3), "float64", shapeTuple(3)), mmpArray(b1(3), "uint8", shapeTuple(3))), true)), key: "m", opaque: true},

		// Arrays, numpy's own encoding.
		{name: "portable: byte count does not match", data: testFile(testEntry("p", portableArray("f8", shapeTuple(2, 2), f64(3)), true)), key: "p", off: -1},
		{name: "portable: dtype descr f3", data: testFile(testEntry("p", portableArray("f3", shapeTuple(3), b1(9)), true)), key: "p", opaque: true},
		{name: "portable: object dtype", data: testFile(testEntry("p", portableArray("O8", shapeTuple(3), f64(3)), true)), key: "p", opaque: true},
		{name: "portable: negative dimension", data: testFile(testEntry("p", portableArray("f8", shapeTuple(-3), f64(3)), true)), key: "p", off: -1},

		// Generic values.
		{name: "0xff opcode inside a value", data: testFile(testEntry("v", []byte{opEmptyList, 0xff, opAppend}, true)), key: "v", off: -1},
		{name: "BINUNICODE8 claiming 2^62 bytes", data: testFile(testEntry("v", pkl(opBinUnicode8, le64(1<<62), "x"), true)), key: "v", off: -1},
	}
	return append(cases, fuzzRegressions(t)...)
}

// fuzzRegressions are inputs FuzzReader found (see testdata/fuzz/FuzzReader),
// each named for what it broke.
func fuzzRegressions(t testing.TB) []badInput {
	return nil
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, c := range badInputs(t) {
		t.Run(c.name, func(t *testing.T) {
			// The file held in memory, and read through an io.ReaderAt.
			for _, mapped := range []bool{true, false} {
				var r *Reader
				var err error
				if mapped {
					r, err = newReaderBytes(c.data, WithLimits(fuzzLimits))
				} else {
					r, err = NewReader(bytes.NewReader(c.data), int64(len(c.data)), WithLimits(fuzzLimits))
				}
				if c.key == "" {
					if err == nil {
						t.Fatalf("mapped %v: opened, keys %q", mapped, r.Keys())
					}
					checkBadInputErr(t, c, err, Entry{})
					continue
				}
				if !c.opaque {
					// pickle.load of the whole file would fail at the
					// value: the file is refused, naming the entry and the
					// offset inside its value.
					if err == nil {
						t.Fatalf("mapped %v: opened, keys %q", mapped, r.Keys())
					}
					if !strings.Contains(err.Error(), fmt.Sprintf("entry %q at offset", c.key)) {
						t.Errorf("%v does not name the entry %q", err, c.key)
					}
					whole := c
					whole.key = "" // the message names the entry
					checkBadInputErr(t, whole, err, badInputEntry(t, c.data, c.key))
					continue
				}
				if err != nil {
					t.Fatalf("mapped %v: open: %v", mapped, err)
				}
				v, err := r.Get(c.key)
				if o, ok := v.(pyval.Object); !ok || err != nil || o.Why == "" || o.Pickle == nil {
					t.Fatalf("mapped %v: Get(%q) = %#v, %v; want an undecoded Object saying why", mapped, c.key, v, err)
				}
				if k, err := r.KindOf(c.key); k != KindValue || err != nil {
					t.Errorf("mapped %v: KindOf = %v, %v", mapped, k, err)
				}
				if _, err := r.Array(c.key); !errors.Is(err, ErrNotArray) {
					t.Errorf("mapped %v: Array: %v", mapped, err)
				}
				t.Logf("%s.%s: %s", v.(pyval.Object).Module, v.(pyval.Object).Name, v.(pyval.Object).Why)
			}
		})
	}
}

// badInputEntry returns the entry of key in a file the reader refuses.
func badInputEntry(t *testing.T, data []byte, key string) Entry {
	t.Helper()
	cfg, _ := newConfig(nil)
	r := &Reader{src: newSource(bytesReaderAt(data), int64(len(data))), cfg: cfg}
	if err := r.parse(); err != nil {
		t.Fatal(err)
	}
	for _, e := range r.entries {
		if e.Key == key {
			return e
		}
	}
	t.Fatalf("no entry %q", key)
	return Entry{}
}

func checkBadInputErr(t *testing.T, c badInput, err error, e Entry) {
	t.Helper()
	if strings.Contains(err.Error(), "internal error") {
		t.Fatalf("a panic was recovered: %v", err)
	}
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("%v (%T) is not a *FormatError", err, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("offset %d", fe.Offset)) {
		t.Errorf("%q does not name its offset %d", err, fe.Offset)
	}
	switch {
	case c.off >= 0 && fe.Offset != c.off:
		t.Errorf("%v: offset %d, want %d", err, fe.Offset, c.off)
	case c.off < 0 && (fe.Offset < e.valueOff || fe.Offset >= e.valueOff+e.valueLen):
		t.Errorf("%v: offset %d outside the value [%d, %d)", err, fe.Offset, e.valueOff, e.valueOff+e.valueLen)
	}
	if c.key != "" && fe.Key != c.key {
		t.Errorf("%v: key %q, want %q", err, fe.Key, c.key)
	}
	if c.is != nil && !errors.Is(err, c.is) {
		t.Errorf("%v: does not wrap %v", err, c.is)
	}
	for _, s := range []error{ErrTorn, ErrNotMmappickle, ErrLimit, ErrUnsupported} {
		if s != c.is && errors.Is(err, s) {
			t.Errorf("%v: wraps %v", err, s)
		}
	}
	t.Logf("%v", err)
}

// portableMaskedFill is numpy's pickle of a masked array of shape (2,) and
// dtype dt whose fill value (a 0-d array) shares the data's dtype object
// through the memo: BINPUT 2 follows the dtype's REDUCE, BINGET 2 comes after
// its BUILD. With fillDType, the fill value has a dtype of its own instead.
func portableMaskedFill(order string, fillDType bool) []byte {
	dtype := func(put int) []byte {
		return pkl("numpy", "dtype", opStackGlobal, "f8", opNewFalse, opNewTrue, opTuple3, opReduce, opBinPut, put,
			opMark, opBinInt1, 3, order, opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0, opTuple, opBuild)
	}
	fillType := pkl(opBinGet, 2)
	if fillDType {
		fillType = dtype(3)
	}
	return pkl("numpy.ma.core", "_mareconstruct", opStackGlobal,
		opMark, "numpy.ma.core", "MaskedArray", opStackGlobal,
		"numpy", "ndarray", opStackGlobal, opBinPut, 1,
		opBinInt1, 0, opTuple1, "b", opTuple, opReduce,
		opMark, opBinInt1, 1, opBinInt1, 2, opTuple1, dtype(2), opNewFalse,
		opShortBinBytes, 16, make([]byte, 16), opShortBinBytes, 2, []byte{0, 1},
		"numpy.core.multiarray", "_reconstruct", opStackGlobal, opBinGet, 1, opBinInt1, 0, opTuple1, opShortBinBytes, 1, 'b', opTuple3, opReduce,
		opMark, opBinInt1, 1, opEmptyTuple, fillType, opNewFalse, opShortBinBytes, 8, make([]byte, 8), opTuple, opBuild,
		opTuple, opBuild)
}

// TestArrayMemoAfterBuild: BUILD completes the object the memo holds. The
// array parser once memoized a dtype as it was before its BUILD, so a masked
// array whose fill value shares the data's dtype (as numpy pickles one) was
// not recognised as an array.
func TestArrayMemoAfterBuild(t *testing.T) {
	for _, c := range []struct {
		order     string
		fillDType bool
	}{{"<", false}, {">", false}, {"<", true}, {">", true}} {
		r, err := newReaderBytes(testFile(testEntry("m", portableMaskedFill(c.order, c.fillDType), true)))
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Masked("m")
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		f, ok := m.Fill.(*Array)
		if !ok {
			t.Fatalf("%+v: fill %#v", c, m.Fill)
		}
		want := DType{ByteOrder: c.order[0], Kind: 'f', ItemSize: 8}
		if m.Data.DType != want || f.DType != want || len(f.Shape) != 0 || f.NBytes != 8 || m.Mask.NBytes != 2 {
			t.Errorf("%+v: data %s, fill %s %v (%d bytes), mask %d bytes", c, m.Data.DType, f.DType, f.Shape, f.NBytes, m.Mask.NBytes)
		}
	}
}

// numpy2Masked is pickle.dumps(np.ma.array([1., 2., 3.], mask=[0, 1, 0],
// fill_value=7.5), protocol=4) from numpy 2.4.6 without PROTO, FRAME and STOP:
// MEMOIZE throughout, the class named numpy.ma.MaskedArray, and the fill
// value sharing the data's dtype through BINGET.
const numpy2Masked = "8c0d6e756d70792e6d612e636f7265948c0e5f6d617265636f6e737472756374949394288c086e756d70792e6d61948c0b4d61736b656441727261799493948c056e756d7079948c076e6461727261799493944b0085948c01629474945294284b014b03859468068c0564747970659493948c02663894898887945294284b038c013c944e4e4e4affffffff4affffffff4b00749462894318000000000000f03f00000000000000400000000000000840944303000100948c166e756d70792e5f636f72652e6d756c74696172726179948c0c5f7265636f6e73747275637494939468084b0085944301629487945294284b012968128943080000000000001e4094749462749462"

// TestNumpy2Masked: numpy 2 pickles a masked array's class as
// numpy.ma.MaskedArray (numpy 1: numpy.ma.core.MaskedArray); the parser once
// knew only the latter and read the value as an undecoded object.
func TestNumpy2Masked(t *testing.T) {
	v, err := hex.DecodeString(numpy2Masked)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newReaderBytes(testFile(testEntry("m", v, true)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Masked("m")
	if err != nil {
		t.Fatal(err)
	}
	f, ok := m.Fill.(*Array)
	if !ok {
		t.Fatalf("fill %#v", m.Fill)
	}
	fill, err := View[float64](f)
	if err != nil {
		// The fill's 8 bytes need not be aligned in the file.
		fill = []float64{math.Float64frombits(binary.LittleEndian.Uint64(f.Bytes()))}
	}
	if m.Data.DType.String() != "<f8" || !equalInts(m.Data.Shape, []int{3}) || !bytes.Equal(m.Mask.Bytes(), []byte{0, 1, 0}) ||
		f.DType.String() != "<f8" || len(fill) != 1 || fill[0] != 7.5 {
		t.Errorf("data %s %v, mask %v, fill %s %v", m.Data.DType, m.Data.Shape, m.Mask.Bytes(), f.DType, fill)
	}
}

// newReaderBytes reads a file held in memory, its arrays views of b.
func newReaderBytes(b []byte, opts ...Option) (*Reader, error) {
	return NewReader(bytesReaderAt(b), int64(len(b)), opts...)
}
