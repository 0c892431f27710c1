package bridge

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
)

// This file generates random files: entries of random plain values written
// with every opcode form CPython, numpy and mmappickle use (and some they
// never use but pickle.load takes: text opcodes, escapes, INST, MEMOIZE),
// sharing objects through the memo, then, for some files, a random change
// of a few bytes. pickle.load is the oracle (TestPropertyPickleLoad).

type pgen struct {
	rng *rand.Rand
	b   []byte
	// memoLen is the number of distinct memo slots the file wrote so far
	// (MEMOIZE's index); next the slot a new explicit PUT takes.
	memoLen, next int64
	used          map[int64]bool
	// own holds the slots the current value wrote, with whether the object
	// in each is hashable; depth bounds nesting.
	own   []pslot
	depth int
	// long: some strings and bytes are 40 repeats of one or two runes
	// or bytes (longer than the machine's short keys, and often equal).
	long bool
}

type pslot struct {
	idx      int64
	hashable bool
}

func (g *pgen) n(k int) int { return g.rng.IntN(k) }

func (g *pgen) op(parts ...any) { g.b = append(g.b, pkl(parts...)...) }

func (g *pgen) raw(b ...byte) { g.b = append(g.b, b...) }

func (g *pgen) s(x string) { g.b = append(g.b, x...) }

// memoize writes the object on top of the stack to the memo, sometimes.
func (g *pgen) memoize(hashable bool) {
	if g.n(4) != 0 {
		return
	}
	var idx int64
	switch g.n(5) {
	case 0: // MEMOIZE, at the file-wide length
		idx = g.memoLen
		g.raw(opMemoize)
	case 1: // PUT text, sometimes with leading zeros or blanks (base 10)
		idx = g.fresh()
		form := []string{"%d", "0%d", " %d", "%d "}[g.n(4)]
		g.raw(opPut)
		g.s(fmt.Sprintf(form+"\n", idx))
	case 2:
		idx = g.fresh()
		g.raw(opLongBinPut)
		g.raw(le32(int32(idx))...)
	default:
		idx = g.fresh()
		if idx > 255 {
			g.raw(opLongBinPut)
			g.raw(le32(int32(idx))...)
		} else {
			g.raw(opBinPut, byte(idx))
		}
	}
	if !g.used[idx] {
		g.used[idx] = true
		g.memoLen++
	}
	g.own = append(g.own, pslot{idx, hashable})
}

func (g *pgen) fresh() int64 {
	for g.used[g.next] {
		g.next++
	}
	return g.next
}

// get pushes an object the value memoized, if any (hashable when asked).
func (g *pgen) get(hashable bool) bool {
	var c []pslot
	for _, s := range g.own {
		if s.hashable || !hashable {
			c = append(c, s)
		}
	}
	if len(c) == 0 || g.n(3) != 0 {
		return false
	}
	s := c[g.n(len(c))]
	switch g.n(3) {
	case 0:
		g.raw(opGet)
		g.s(fmt.Sprintf("%d\n", s.idx))
	case 1:
		g.raw(opLongBinGet)
		g.raw(le32(int32(s.idx))...)
	default:
		if s.idx > 255 {
			g.raw(opLongBinGet)
			g.raw(le32(int32(s.idx))...)
		} else {
			g.raw(opBinGet, byte(s.idx))
		}
	}
	return true
}

// value pushes one random object; hashable: it must be one.
func (g *pgen) value(hashable bool) {
	if g.get(hashable) {
		return
	}
	g.depth++
	defer func() { g.depth-- }()
	k := g.n(27)
	if g.depth > 4 {
		k = g.n(10)
	}
	if hashable && k >= 14 && k != 18 && k != 21 {
		k = g.n(10) // no containers but tuples and frozensets as keys
	}
	switch k {
	case 0:
		g.raw(opNone)
		g.memoize(true)
	case 1:
		g.boolean()
		g.memoize(true)
	case 2, 3:
		g.integer()
		g.memoize(true)
	case 4, 5:
		g.float()
		g.memoize(true)
	case 6, 7:
		g.str()
		g.memoize(true)
	case 8:
		g.bytesObj()
		g.memoize(true)
	case 9:
		g.numpyScalar()
		g.memoize(true)
	case 10:
		g.global("builtins", "complex")
		g.numberArg()
		g.numberArg()
		g.raw(opTuple2, opReduce)
		g.memoize(true)
	case 11:
		g.global("builtins", "range")
		g.integer()
		g.integer()
		g.raw(opBinInt1, byte(1+g.n(3)))
		g.raw(opTuple3, opReduce)
		g.memoize(true)
	case 12, 13:
		g.tuple(hashable)
	case 14, 15:
		g.list()
	case 16, 17:
		g.dict()
	case 18:
		g.frozenset()
	case 19:
		g.set()
	case 20:
		g.array()
	case 21:
		g.dtypeObj()
		g.memoize(true)
	case 22:
		g.bytearray()
	case 23:
		g.masked()
	case 24:
		g.mmpArray(false)
	case 25: // builtins called by INST and OBJ
		name := []string{"set", "frozenset"}[g.n(2)]
		g.raw(opMark)
		if g.n(2) == 0 {
			g.raw(opEmptyList)
			g.s("ibuiltins\n" + name + "\n")
		} else {
			g.global("builtins", name)
			g.raw(opEmptyList, opObj)
		}
		g.memoize(name == "frozenset")
	default:
		g.global("collections", "OrderedDict")
		g.raw(opEmptyTuple, opReduce)
		g.memoize(false)
		g.items(func() { g.value(true); g.value(false) }, opSetItem, opSetItems)
	}
}

func (g *pgen) global(module, name string) {
	switch g.n(3) {
	case 0:
		g.raw(opGlobal)
		g.s(module + "\n" + name + "\n")
	default:
		g.op(module, name, opStackGlobal)
	}
}

func (g *pgen) boolean() {
	switch g.n(4) {
	case 0:
		g.raw(opNewTrue)
	case 1:
		g.raw(opNewFalse)
	case 2:
		g.raw(opInt)
		g.s([]string{"01\n", "00\n", "-0\n", "+1\n", " 1\n"}[g.n(5)])
	default:
		g.raw(opInt)
		g.s([]string{"1\n", "0\n"}[g.n(2)]) // ints, not bools: two characters
	}
}

var pgenInts = []int64{0, 1, -1, 5, 255, 256, 65535, 65536, -129, math.MaxInt32, math.MinInt32, 1 << 40, math.MaxInt64, math.MinInt64}

func (g *pgen) intValue() int64 {
	if g.n(2) == 0 {
		return pgenInts[g.n(len(pgenInts))]
	}
	return g.rng.Int64N(2000) - 1000
}

func (g *pgen) integer() {
	v := g.intValue()
	switch g.n(8) {
	case 0, 1:
		switch {
		case v >= 0 && v < 256:
			g.raw(opBinInt1, byte(v))
		case v >= 0 && v < 65536:
			g.raw(opBinInt2, byte(v), byte(v>>8))
		case v >= math.MinInt32 && v <= math.MaxInt32:
			g.raw(opBinInt)
			g.raw(le32(int32(v))...)
		default:
			g.raw(opLong1, 8)
			g.raw(le64(uint64(v))...)
		}
	case 2:
		b := binary.LittleEndian.AppendUint64(nil, uint64(v))
		n := 1 + g.n(8)
		if g.n(4) == 0 {
			b = append(b, make([]byte, g.n(12))...) // a big LONG1
			n = len(b)
		}
		g.raw(opLong1, byte(n))
		g.raw(b[:n]...)
	case 3:
		g.raw(opLong4)
		g.raw(le32(8)...)
		g.raw(le64(uint64(v))...)
	case 4: // INT text: strtol's forms, and PyLong_FromString's
		forms := []string{"%d", "+%d", " %d", "%d ", "%d\x00junk"}
		s := fmt.Sprintf(forms[g.n(len(forms))], v)
		if v > 0 && g.n(3) == 0 {
			s = []string{fmt.Sprintf("0x%x", v), fmt.Sprintf("0%o", v), fmt.Sprintf("0o%o", v), fmt.Sprintf("0b%b", v)}[g.n(4)]
		}
		if len(s) == 2 && (s == "01" || s == "00") {
			s = "7"
		}
		g.raw(opInt)
		g.s(s + "\n")
	case 5: // INT overflowing strtol, with underscores
		g.raw(opInt)
		g.s([]string{"99999999999999999999999\n", "1_000\n", "-0x_ff\n", "123456789012345678901234567890\n"}[g.n(4)])
	case 6:
		g.raw(opLong)
		g.s(fmt.Sprintf([]string{"%dL\n", "%d\n", " %dL\n"}[g.n(3)], v))
	default:
		g.raw(opLong1, 0) // zero
	}
}

func (g *pgen) float() {
	bits := []uint64{0, 1 << 63, math.Float64bits(1.5), math.Float64bits(-2.25), 0x7ff8000000000000, 0x7ff0000000000000,
		0xfff0000000000000, math.Float64bits(1e300), math.Float64bits(5e-324), g.rng.Uint64()}
	switch g.n(4) {
	case 0:
		g.raw(opFloat)
		g.s([]string{"1.5\n", "inf\n", "-Infinity\n", "nan\n", "-nan\n", "1e-400\n", "5.\n", ".25\n", "1E3\n", "0.1\n", "-0.0\n", "2.5\x00x\n"}[g.n(12)])
	case 1:
		g.raw(opBinInt1, byte(g.n(256))) // an int where a float may be
	default:
		g.raw(opBinFloat)
		g.raw(binary.BigEndian.AppendUint64(nil, bits[g.n(len(bits))])...)
	}
}

func (g *pgen) numberArg() {
	if g.n(2) == 0 {
		g.float()
	} else {
		g.integer()
	}
}

var pgenRunes = []rune{'a', 'Z', ' ', '\'', '"', '\\', '\n', 0, 0x7f, 'é', 'ø', 'λ', '中', '😀', 0xd800, 0xdfff, 0xfeff}

func (g *pgen) text(n int) []rune {
	r := make([]rune, n)
	for i := range r {
		r[i] = pgenRunes[g.n(len(pgenRunes))]
	}
	return r
}

func (g *pgen) str() {
	rs := g.text(g.n(6))
	if g.long && g.n(6) == 0 {
		rs = slices.Repeat(g.text(1+g.n(2)), 40)
	}
	switch g.n(7) {
	case 0, 1, 2:
		var b []byte
		for _, r := range rs {
			b = appendCodePoint(b, r)
		}
		switch g.n(3) {
		case 0:
			g.raw(opBinUnicode)
			g.raw(le32(int32(len(b)))...)
		case 1:
			g.raw(opBinUnicode8)
			g.raw(le64(uint64(len(b)))...)
		default:
			if len(b) > 255 {
				g.raw(opBinUnicode)
				g.raw(le32(int32(len(b)))...)
				break
			}
			g.raw(opShortBinUni, byte(len(b)))
		}
		g.raw(b...)
	case 3: // UNICODE: raw-unicode-escape
		var b strings.Builder
		for _, r := range rs {
			switch {
			case r == '\n' || r == '\\' || r > 0xff || g.n(3) == 0:
				if r > 0xffff {
					fmt.Fprintf(&b, "\\U%08x", r)
				} else {
					fmt.Fprintf(&b, "\\u%04x", r)
				}
			default:
				b.WriteByte(byte(r))
			}
		}
		g.raw(opUnicode)
		g.s(b.String() + "\n")
	case 4, 5: // STRING: a quoted, escaped ASCII literal
		var b strings.Builder
		q := []byte{'\'', '"'}[g.n(2)]
		b.WriteByte(q)
		for _, r := range rs {
			if r >= 0x80 {
				r = 'x'
			}
			switch {
			case r == rune(q) || r == '\\' || r == '\n' || r < 0x20 || g.n(4) == 0:
				fmt.Fprintf(&b, []string{"\\x%02x", "\\%03o"}[g.n(2)], r)
			default:
				b.WriteRune(r)
			}
		}
		if g.n(3) == 0 {
			b.WriteString(`\n\t\'`)
		}
		b.WriteByte(q)
		g.raw(opString)
		g.s(b.String() + "\n")
	default:
		var b []byte
		for _, r := range rs {
			if r < 0x80 {
				b = append(b, byte(r))
			}
		}
		if g.n(2) == 0 {
			g.raw(opShortBinString, byte(len(b)))
		} else {
			g.raw(opBinString)
			g.raw(le32(int32(len(b)))...)
		}
		g.raw(b...)
	}
}

func (g *pgen) randBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.IntN(256))
	}
	return b
}

func (g *pgen) bytesObj() {
	b := g.randBytes(g.n(10))
	if g.long && g.n(6) == 0 {
		b = bytes.Repeat(g.randBytes(1+g.n(2)), 40)
	}
	switch g.n(3) {
	case 0:
		g.raw(opBinBytes)
		g.raw(le32(int32(len(b)))...)
	case 1:
		g.raw(opBinBytes8)
		g.raw(le64(uint64(len(b)))...)
	default:
		g.raw(opShortBinBytes, byte(len(b)))
	}
	g.raw(b...)
}

func (g *pgen) bytearray() {
	b := g.randBytes(g.n(6))
	if g.n(2) == 0 {
		g.raw(opByteArray8)
		g.raw(le64(uint64(len(b)))...)
		g.raw(b...)
	} else {
		g.global("builtins", "bytearray")
		g.raw(opShortBinBytes, byte(len(b)))
		g.raw(b...)
		g.raw(opTuple1, opReduce)
	}
	g.memoize(false)
}

// items emits n items with one (single) or many (batched with MARK).
func (g *pgen) items(item func(), one, many byte) {
	n := g.n(5)
	if n == 1 && one != 0 {
		item()
		g.raw(one)
		return
	}
	for n > 0 {
		g.raw(opMark)
		k := 1 + g.n(n)
		for range k {
			item()
		}
		g.raw(many)
		n -= k
	}
}

func (g *pgen) tuple(hashable bool) {
	n := g.n(5)
	if n == 0 {
		g.raw(opEmptyTuple)
	} else {
		mark := n > 3 || g.n(3) == 0
		if mark {
			g.raw(opMark)
		}
		for range n {
			g.value(hashable)
		}
		if mark {
			g.raw(opTuple)
		} else {
			g.raw(byte(opTuple1 + n - 1))
		}
	}
	g.memoize(hashable)
}

func (g *pgen) list() {
	if g.n(4) == 0 {
		g.raw(opMark)
		for range g.n(4) {
			g.value(false)
		}
		g.raw(opList)
		g.memoize(false)
		return
	}
	g.raw(opEmptyList)
	g.memoize(false)
	g.items(func() { g.value(false) }, opAppend, opAppends)
}

func (g *pgen) dict() {
	if g.n(4) == 0 {
		g.raw(opMark)
		for range g.n(4) {
			g.value(true)
			g.value(false)
		}
		g.raw(opDict)
		g.memoize(false)
		return
	}
	g.raw(opEmptyDict)
	g.memoize(false)
	g.items(func() { g.value(true); g.value(false) }, opSetItem, opSetItems)
}

func (g *pgen) set() {
	if g.n(3) == 0 {
		g.global("builtins", "set")
		g.raw(opEmptyList)
		g.items(func() { g.value(true) }, opAppend, opAppends)
		g.raw(opTuple1, opReduce)
		g.memoize(false)
		return
	}
	g.raw(opEmptySet)
	g.memoize(false)
	g.items(func() { g.value(true) }, 0, opAddItems)
}

func (g *pgen) frozenset() {
	g.raw(opMark)
	for range g.n(4) {
		g.value(true)
	}
	g.raw(opFrozenSet)
	g.memoize(true)
}

// pgenDTypes are dtypes in numpy's pickle form: descr, byte order, then
// the state's element size, alignment and flags.
var pgenDTypes = []struct {
	descr, order string
	size         int
	state        [3]int32
}{
	{"f8", "<", 8, [3]int32{-1, -1, 0}}, {"f8", ">", 8, [3]int32{-1, -1, 0}}, {"f4", "<", 4, [3]int32{-1, -1, 0}},
	{"f2", "<", 2, [3]int32{-1, -1, 0}}, {"i1", "|", 1, [3]int32{-1, -1, 0}}, {"i2", ">", 2, [3]int32{-1, -1, 0}},
	{"i8", "<", 8, [3]int32{-1, -1, 0}}, {"u4", "<", 4, [3]int32{-1, -1, 0}}, {"u8", "<", 8, [3]int32{-1, -1, 0}},
	{"b1", "|", 1, [3]int32{-1, -1, 0}}, {"c8", "<", 8, [3]int32{-1, -1, 0}}, {"c16", ">", 16, [3]int32{-1, -1, 0}},
	{"U2", "<", 8, [3]int32{8, 4, 8}}, {"U1", ">", 4, [3]int32{4, 4, 8}}, {"S3", "|", 3, [3]int32{3, 1, 0}},
	{"V2", "|", 2, [3]int32{2, 1, 0}},
}

func (g *pgen) dtypeState(i int) int {
	d := pgenDTypes[i]
	g.global("numpy", "dtype")
	g.op(d.descr, opNewFalse, opNewTrue, opTuple3, opReduce)
	g.op(opMark, opBinInt1, 3, d.order, opNone, opNone, opNone)
	for _, v := range d.state {
		g.raw(opBinInt)
		g.raw(le32(v)...)
	}
	g.raw(opTuple, opBuild)
	return d.size
}

func (g *pgen) dtypeObj() {
	if g.n(3) == 0 { // a datetime dtype: version 4, metadata
		g.global("numpy", "dtype")
		g.op("M8", opNewFalse, opNewTrue, opTuple3, opReduce)
		g.op(opMark, opBinInt1, 4, "<", opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0)
		g.op([]byte{opEmptyDict, opNone}[g.n(2)], opMark, opShortBinBytes, 1, 's', opBinInt1, 1+g.n(3), opBinInt1, 1, opBinInt1, 1, opTuple, opTuple2, opTuple, opBuild)
		return
	}
	g.dtypeState(g.n(len(pgenDTypes)))
}

func (g *pgen) numpyScalar() {
	module := []string{"numpy.core.multiarray", "numpy._core.multiarray"}[g.n(2)]
	g.global(module, "scalar")
	i := g.n(len(pgenDTypes))
	size := g.dtypeState(i)
	raw := g.randBytes(size)
	if pgenDTypes[i].descr[0] == 'U' {
		for j := 0; j < len(raw); j += 4 { // valid code points
			raw[j+2], raw[j+3] = 0, 0
		}
		if pgenDTypes[i].order == ">" {
			for j := 0; j < len(raw); j += 4 {
				raw[j], raw[j+1], raw[j+2], raw[j+3] = 0, 0, raw[j+1], raw[j]
			}
		}
	}
	g.raw(opShortBinBytes, byte(len(raw)))
	g.raw(raw...)
	g.raw(opTuple2, opReduce)
}

func (g *pgen) array() {
	g.global("numpy.core.multiarray", "_reconstruct")
	g.global("numpy", "ndarray")
	g.op(opBinInt1, 0, opTuple1, opShortBinBytes, 1, 'b', opTuple3, opReduce)
	g.memoize(false)
	var shape []int64
	n := int64(1)
	for range g.n(3) {
		d := int64(g.n(4))
		shape = append(shape, d)
		n *= d
	}
	g.op(opMark, opBinInt1, 1, shapeTuple(shape...))
	size := g.dtypeState(g.n(len(pgenDTypes)))
	if g.n(3) == 0 && len(shape) > 1 {
		g.raw(opNewTrue)
	} else {
		g.raw(opNewFalse)
	}
	data := g.randBytes(int(n) * size)
	g.raw(opBinBytes)
	g.raw(le32(int32(len(data)))...)
	g.raw(data...)
	g.raw(opTuple, opBuild)
}

// mmpArray is mmappickle's encoding: reshape(fromstring(bytes, str(dtype)),
// shape), or its masked array MaskedArray(data, mask).
func (g *pgen) mmpArray(masked bool) {
	if !masked && g.n(3) == 0 {
		g.global("numpy.ma.core", "MaskedArray")
		g.mmpArray(true)
		g.mmpArray(true)
		g.raw(opTuple2, opReduce)
		return
	}
	names := []struct {
		name string
		size int
	}{{"float64", 8}, {"int32", 4}, {">f4", 4}, {"uint8", 1}, {"<U2", 8}, {"datetime64[s]", 8}, {"complex64", 8}}
	d := names[g.n(len(names))]
	if masked {
		d = names[0]
		if g.n(2) == 0 {
			d.name, d.size = "bool", 1
		}
	}
	var shape []int64
	n := int64(1)
	for range 1 + g.n(2) {
		v := int64(2 + g.n(2)*0)
		if masked {
			v = 2
		}
		shape = append(shape, v)
		n *= v
	}
	g.op("numpy.core.fromnumeric", "reshape", opStackGlobal, "numpy.core.multiarray", "fromstring", opStackGlobal)
	data := g.randBytes(int(n) * d.size)
	if d.name == "bool" {
		for i := range data {
			data[i] &= 1
		}
	}
	if d.name == "<U2" {
		for j := 0; j < len(data); j += 4 {
			data[j+2], data[j+3] = 0, 0
		}
	}
	g.raw(opBinBytes8)
	g.raw(le64(uint64(len(data)))...)
	g.raw(data...)
	g.op(d.name, opTuple2, opReduce, shapeTuple(shape...), opTuple2, opReduce)
}

// masked is numpy's pickle of a masked array, its fill value None or a 0-d
// array of the data's dtype (through the memo, as numpy writes it).
func (g *pgen) masked() {
	g.global("numpy.ma.core", "_mareconstruct")
	g.raw(opMark)
	g.global([]string{"numpy.ma.core", "numpy.ma"}[g.n(2)], "MaskedArray")
	g.global("numpy", "ndarray")
	g.op(opBinInt1, 0, opTuple1, "b", opTuple, opReduce)
	n := int64(g.n(4))
	g.op(opMark, opBinInt1, 1, shapeTuple(n))
	i := g.n(len(pgenDTypes))
	size := g.dtypeState(i)
	dt := g.fresh()
	g.used[dt] = true
	g.memoLen++
	if dt > 255 {
		g.raw(opLongBinPut)
		g.raw(le32(int32(dt))...)
	} else {
		g.raw(opBinPut, byte(dt))
	}
	g.raw(opNewFalse)
	data := g.randBytes(int(n) * size)
	g.raw(opBinBytes)
	g.raw(le32(int32(len(data)))...)
	g.raw(data...)
	mask := make([]byte, n)
	for j := range mask {
		mask[j] = byte(g.n(2))
	}
	g.raw(opShortBinBytes, byte(len(mask)))
	g.raw(mask...)
	if g.n(2) == 0 || pgenDTypes[i].descr[0] == 'V' {
		g.raw(opNone)
	} else {
		g.global("numpy.core.multiarray", "_reconstruct")
		g.global("numpy", "ndarray")
		g.op(opBinInt1, 0, opTuple1, opShortBinBytes, 1, 'b', opTuple3, opReduce)
		g.op(opMark, opBinInt1, 1, opEmptyTuple)
		if dt > 255 {
			g.raw(opLongBinGet)
			g.raw(le32(int32(dt))...)
		} else {
			g.raw(opBinGet, byte(dt))
		}
		fill := g.randBytes(size)
		if pgenDTypes[i].descr[0] == 'U' {
			fill = make([]byte, size)
		}
		g.raw(opNewFalse, opShortBinBytes, byte(size))
		g.raw(fill...)
		g.raw(opTuple, opBuild)
	}
	g.raw(opTuple, opBuild)
}

// pgenFile is one random file; mutated: a few random bytes were changed.
type pgenFile struct {
	data    []byte
	mutated bool
}

func (g *pgen) file() pgenFile {
	g.memoLen, g.next, g.used = 0, 1, map[int64]bool{}
	var entries [][]byte
	keys := []string{"a", "b", "c", "k", "é", "a"}
	for range 1 + g.n(4) {
		g.b, g.own, g.depth = nil, nil, 0
		g.value(false)
		if g.n(15) == 0 && g.next > 1 {
			// Read a slot of an earlier entry: pickle.load's memo is the
			// file's.
			g.raw(opPop)
			g.raw(opBinGet, byte(1+g.n(int(min(g.next-1, 255)))))
		}
		key := keys[g.n(len(keys))]
		entries = append(entries, testEntryMemo(key, g.b, g.n(6) != 0, int32(g.next)))
	}
	f := pgenFile{data: testFile(entries...)}
	if g.n(4) == 0 {
		f.mutated = true
		for range 1 + g.n(3) {
			i := headerSize + g.n(len(f.data)-headerSize-terminatorSize)
			switch g.n(3) {
			case 0:
				f.data[i] = byte(g.n(256))
			case 1:
				const ops = "(0}]).NKJ\x88\x89\x8c\x94qhbRsuae\x85\x86"
				f.data[i] = ops[g.n(len(ops))]
			default:
				f.data[i] ^= 1 << g.n(8)
			}
		}
	}
	return f
}

// TestPropertyPickleLoad: random files (plain values in every opcode form,
// memo sharing, mutations) are loaded by pickle.load on numpy 1.x and 2.x.
// Whenever verify passes, pickle.load neither raises nor crashes; whatever
// verify says, every key the bridge reads is what pickle.load gives.
func TestPropertyPickleLoad(t *testing.T) {
	t.Parallel()
	n, seed := 800, uint64(8)
	if testing.Short() {
		n = 150
	}
	// PGEN_N and PGEN_SEED run other (or more) files, to hunt.
	if v, err := strconv.Atoi(os.Getenv("PGEN_N")); err == nil {
		n = v
	}
	if v, err := strconv.ParseUint(os.Getenv("PGEN_SEED"), 10, 64); err == nil {
		seed = v
	}
	g := &pgen{rng: rand.New(rand.NewPCG(seed, 1)), long: true}
	dir := t.TempDir()
	var cases []pmCase
	var files []pgenFile
	var reps []*VerifyReport
	passed, readKeys := 0, 0
	for i := range n {
		f := g.file()
		p := filepath.Join(dir, fmt.Sprintf("p%04d.mmpkl", i))
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(bytesReaderAt(f.data), int64(len(f.data)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			passed++
		}
		c := pmRead(t, p)
		for _, v := range c.Keys {
			if v != nil {
				readKeys++
			}
		}
		cases, files, reps = append(cases, c), append(files, f), append(reps, rep)
	}
	t.Logf("%d files: %d verify, %d keys read by the bridge", n, passed, readKeys)
	if passed < n/4 {
		t.Errorf("only %d of %d random files verify: the generator makes too few valid ones", passed, n)
	}
	for _, env := range pyrun.Numpys(t) {
		res := pmCheck(t, env, cases)
		loaded := 0
		for i, c := range cases {
			r := res[c.Path]
			if r.Status == "loaded" {
				loaded++
			}
			if reps[i].OK() && r.Status != "loaded" && !(env.Name == "numpy2" && pgenWarnsNumpy2(reps[i])) {
				t.Errorf("%s (%s): verify passes, pickle.load %s: %s\n%x", c.Path, env, r.Status, r.Error, files[i].data)
			}
			for _, m := range r.Mismatches {
				t.Errorf("%s (%s, verify ok %v, mutated %v): %s\n%x", c.Path, env, reps[i].OK(), files[i].mutated, m, files[i].data)
			}
		}
		t.Logf("%s: pickle.load loads %d of %d", env, loaded, n)
	}
}

// pgenWarnsNumpy2 tells whether verify warned that numpy >= 2.3 fails.
func pgenWarnsNumpy2(rep *VerifyReport) bool {
	for _, f := range rep.Findings {
		if f.Kind == Warning && strings.Contains(f.Msg, "numpy >= 2.3") {
			return true
		}
	}
	return false
}
