package render

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrepr"
	"mmpbridge/pyval"
)

// Repr formats a decoded value the way Python's repr() does with numpy 2
// (np.float64(1.5), dtype('<U3')), arrays as a short description, cut to
// about max bytes (0: DefaultMaxBytes). An int of more than 4,300 decimal
// digits, which CPython refuses to print, shows as <int of N bits>.
// Rendering stops at the cut: a long string or a big container shown in 60
// bytes costs 60 bytes.
func Repr(v any, max int) string {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	o := &out{ctx: context.Background(), keep: true, limit: int64(max), exact: true}
	o.repr(v, 0)
	s := o.buf
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return string(s[:cut]) + "..."
	}
	return string(s)
}

// WriteRepr writes v's Repr to w, whole, or nothing and a *LimitError
// when it does not fit what is left of b.
func WriteRepr(b *Budget, w io.Writer, v any) error {
	_, err := b.emit(w, func(o *out) { o.repr(v, 0) })
	return err
}

func (o *out) repr(v any, depth int) {
	if o.stopped() {
		return
	}
	if depth > 100 {
		o.str("...")
		return
	}
	seq := func(open, close string, items []any, single bool) {
		o.str(open)
		for i, x := range items {
			if i > 0 {
				o.str(", ")
			}
			if o.stopped() {
				break
			}
			o.repr(x, depth+1)
		}
		if single && len(items) == 1 {
			o.str(",")
		}
		o.str(close)
	}
	switch v := v.(type) {
	case nil:
		o.str("None")
	case bool:
		o.str(pyBool(v))
	case int64:
		o.str(strconv.FormatInt(v, 10))
	case int:
		o.str(strconv.Itoa(v))
	case *big.Int:
		o.str(bigIntRepr(v))
	case float64:
		o.str(PyFloat(v))
	case complex128:
		o.str(pyComplex(v))
	case string:
		o.pyStr(v)
	case []byte:
		o.pyBytes(v)
	case pyval.ByteArray:
		o.str("bytearray(")
		o.pyBytes(v)
		o.str(")")
	case []any:
		seq("[", "]", v, false)
	case pyval.Tuple:
		seq("(", ")", v, true)
	case pyval.Set:
		if len(v) == 0 {
			o.str("set()")
			return
		}
		seq("{", "}", v, false)
	case pyval.FrozenSet:
		o.str("frozenset(")
		if len(v) > 0 {
			seq("{", "}", v, false)
		}
		o.str(")")
	case pyval.OrderedDict: // Python 3.12's repr
		o.str("OrderedDict(")
		if len(v) > 0 {
			o.repr(pyval.Dict(v), depth)
		}
		o.str(")")
	case pyval.Dict:
		o.str("{")
		for i, it := range v {
			if i > 0 {
				o.str(", ")
			}
			if o.stopped() {
				break
			}
			o.repr(it.Key, depth+1)
			o.str(": ")
			o.repr(it.Value, depth+1)
		}
		o.str("}")
	case bridge.Scalar:
		o.scalarRepr(v)
	case bridge.DType:
		o.str("dtype(")
		o.pyStr(dtypeReprName(v))
		o.str(")")
	case pyval.Object:
		o.str("<" + v.Module + "." + v.Name + " object, not decoded")
		if v.Why != "" {
			o.str(": " + v.Why)
		}
		o.str(">")
	case *bridge.Array:
		o.str(fmt.Sprintf("array(dtype=%s, shape=%s)", v.DType, ShapeText(v.Shape)))
	case *bridge.Masked:
		o.str(fmt.Sprintf("masked_array(dtype=%s, shape=%s)", v.Data.DType, ShapeText(v.Data.Shape)))
	default:
		o.str(fmt.Sprintf("%v", v))
	}
}

func pyBool(v bool) string {
	if v {
		return "True"
	}
	return "False"
}

// bigIntRepr is str(int), or <int of N bits> past CPython's limit of
// 4,300 decimal digits (converting such an int to decimal is quadratic;
// CPython raises instead).
func bigIntRepr(v *big.Int) string {
	if n := v.BitLen(); n > 14_284 { // 2^14284 has 4,300 digits
		if float64(n-1)*math.Log10(2) >= 4300 {
			return fmt.Sprintf("<int of %d bits>", n)
		}
	}
	return v.String()
}

// ShapeText is a shape as Python prints a tuple: (), (5,), (2, 3).
func ShapeText(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	if len(s) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// PyFloat formats like Python's float repr.
func PyFloat(f float64) string { return PyFloatBits(f, 64) }

// PyFloatBits is Python's repr of f, shortest for a float of bits 16, 32
// or 64 (numpy's repr of float16 and float32 scalars).
func PyFloatBits(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	var s string
	// numpy 2 prints float16 and float32 scalars in scientific notation
	// from 1e3 and 1e6 up (10**precision), float64 (as Python) from 1e16;
	// all below 1e-4.
	upper := 1e16
	switch bits {
	case 16:
		upper = 1e3
	case 32:
		upper = 1e6
	}
	fmtBits := bits
	if bits == 16 {
		fmtBits = 32
	}
	digits := -1
	if bits == 16 {
		digits = halfDigits(f)
	}
	if a := math.Abs(f); f != 0 && (a < 1e-4 || a >= upper) {
		s = strconv.FormatFloat(f, 'e', max(digits-1, -1), fmtBits)
		mant, e, _ := strings.Cut(s, "e")
		sign := e[0]
		e = strings.TrimLeft(e[1:], "0")
		if len(e) < 2 {
			e = strings.Repeat("0", 2-len(e)) + e
		}
		return mant + "e" + string(sign) + e
	}
	if digits > 0 {
		s = strconv.FormatFloat(f, 'g', digits, 64)
		if strings.ContainsAny(s, "e") {
			s = strconv.FormatFloat(f, 'f', -1, 64)
		}
	} else {
		s = strconv.FormatFloat(f, 'f', -1, fmtBits)
	}
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// halfDigits is the fewest significant digits that give f back as a
// float16.
func halfDigits(f float64) int {
	for d := 1; d < 6; d++ {
		g, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', d, 64), 64)
		if err == nil && toHalf(g) == toHalf(f) {
			return d
		}
	}
	return 5
}

// toHalf rounds f to the nearest float16 (returned as a float64).
func toHalf(f float64) float64 {
	if f == 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return f
	}
	e := math.Floor(math.Log2(math.Abs(f)))
	e = max(e, -14)
	q := math.Ldexp(1, int(e)-10)
	return math.RoundToEven(f/q) * q
}

// pyComplex is Python's repr of a complex: 2j, (1+2j).
func pyComplex(c complex128) string {
	if isPureImag(c) {
		return complexParts(c, 64)
	}
	return "(" + complexParts(c, 64) + ")"
}

func isPureImag(c complex128) bool { return real(c) == 0 && !math.Signbit(real(c)) }

// complexParts is a complex as numpy and Python write it inside the
// parentheses: each part's float repr (for floats of bits) without a
// trailing ".0", the real part left out when it is +0.
func complexParts(c complex128, bits int) string {
	re, im := real(c), imag(c)
	ims := strings.TrimSuffix(PyFloatBits(im, bits), ".0")
	if isPureImag(c) {
		return ims + "j"
	}
	res := strings.TrimSuffix(PyFloatBits(re, bits), ".0")
	if !strings.HasPrefix(ims, "-") {
		ims = "+" + ims
	}
	return res + ims + "j"
}

// scalarTypes names numpy's scalar types by kind and item size.
func scalarType(d bridge.DType) string {
	switch d.Kind {
	case 'b':
		return "bool"
	case 'i':
		return fmt.Sprintf("int%d", 8*d.ItemSize)
	case 'u':
		return fmt.Sprintf("uint%d", 8*d.ItemSize)
	case 'f':
		if d.ItemSize == 16 {
			return "longdouble"
		}
		return fmt.Sprintf("float%d", 8*d.ItemSize)
	case 'c':
		if d.ItemSize == 32 {
			return "clongdouble"
		}
		return fmt.Sprintf("complex%d", 8*d.ItemSize)
	case 'U':
		return "str_"
	case 'S':
		return "bytes_"
	case 'V':
		return "void"
	case 'M':
		return "datetime64"
	case 'm':
		return "timedelta64"
	}
	return "generic"
}

// scalarRepr is numpy 2's repr of a scalar: np.float64(1.5), np.True_,
// np.str_('a'), np.datetime64('2020-01-01').
func scalarRepr(s bridge.Scalar) string {
	o := &out{ctx: context.Background(), keep: true, limit: DefaultMaxBytes, exact: true}
	o.scalarRepr(s)
	return string(o.buf)
}

// scalarRepr writes numpy 2's repr of a scalar; the text of a str_,
// bytes_ or void scalar is written from its bytes as it goes.
func (o *out) scalarRepr(s bridge.Scalar) {
	d := s.DType
	name := "np." + scalarType(d)
	if len(s.Raw) != d.ItemSize {
		o.str(name + "(...)")
		return
	}
	switch d.Kind {
	case 'U':
		if !validUCS4(s) {
			o.str(name + "(...)")
			return
		}
		o.str(name + "(")
		o.pyStrUCS4(s)
		o.str(")")
		return
	case 'S':
		o.str(name + "(")
		o.pyBytes(bytes.TrimRight(s.Raw, "\x00"))
		o.str(")")
		return
	case 'V': // numpy writes every byte of a void as \xHH
		o.str(name + "(b'")
		for _, c := range s.Raw {
			if o.err != nil {
				return
			}
			o.escDigits(`\x`, rune(c), 2, upperHexDigits)
		}
		o.str("')")
		return
	}
	switch v := s.Value().(type) {
	case bool:
		if v {
			o.str("np.True_")
		} else {
			o.str("np.False_")
		}
	case int64:
		switch d.Kind {
		case 'M':
			if d.UnitCount > 1 || d.Unit == "" && v != nat {
				o.str(name + "(" + pyrepr.Str(datetimeText(v, d)) + ",'" + unitText(d) + "')")
			} else {
				o.str(name + "(" + pyrepr.Str(datetimeText(v, d)) + ")")
			}
		case 'm':
			o.str(timedeltaRepr(v, d))
		default:
			o.str(fmt.Sprintf("%s(%d)", name, v))
		}
	case uint64:
		o.str(fmt.Sprintf("%s(%d)", name, v))
	case float64:
		o.str(name + "(" + PyFloatBits(v, 8*d.ItemSize) + ")")
	case complex128:
		o.str(name + "(" + complexParts(v, 4*d.ItemSize) + ")")
	default:
		if t, ok := longDouble(s); ok {
			o.str(name + "(" + t + ")")
		} else {
			o.str(name + "(...)")
		}
	}
}

// ucs4 returns the code points of a str_ scalar (UTF-32 in its byte
// order), trailing NULs dropped, one at a time.
func ucs4(s bridge.Scalar) (n int, at func(i int) rune) {
	b := s.Raw
	be := s.DType.ByteOrder == '>'
	at = func(i int) rune {
		if be {
			return rune(binary.BigEndian.Uint32(b[4*i:]))
		}
		return rune(binary.LittleEndian.Uint32(b[4*i:]))
	}
	n = len(b) / 4
	for n > 0 && at(n-1) == 0 {
		n--
	}
	return n, at
}

// validUCS4: every code point of a str_ scalar is in range (numpy raises
// on the others; Scalar.Value returns nil).
func validUCS4(s bridge.Scalar) bool {
	n, at := ucs4(s)
	for i := range n {
		if r := at(i); r < 0 || r > 0x10ffff {
			return false
		}
	}
	return true
}

// pyStrUCS4 is pyStr of a str_ scalar's text, read from its bytes.
func (o *out) pyStrUCS4(s bridge.Scalar) {
	o.leaf(sizeKey{unsafe.SliceData(s.Raw), len(s.Raw), 'U'}, len(s.Raw), func(o *out) {
		n, at := ucs4(s)
		single, double := false, false
		for i := range n {
			switch at(i) {
			case '\'':
				single = true
			case '"':
				double = true
			}
		}
		quote := '\''
		if single && !double {
			quote = '"'
		}
		o.rune(quote)
		for i := 0; i < n && o.err == nil; i++ {
			o.pyRune(at(i), quote)
		}
		o.rune(quote)
	})
}

// jsonStrUCS4 is jsonStr of a str_ scalar's text.
func (o *out) jsonStrUCS4(s bridge.Scalar) {
	o.leaf(sizeKey{unsafe.SliceData(s.Raw), len(s.Raw), 'u'}, len(s.Raw), func(o *out) {
		n, at := ucs4(s)
		o.byte('"')
		for i := 0; i < n && o.err == nil; i++ {
			o.jsonRune(at(i))
		}
		o.byte('"')
	})
}

// longDouble formats an x87 80-bit long double (numpy's longdouble on
// x86-64): the shortest decimal that gives the same 64-bit mantissa.
func longDouble(s bridge.Scalar) (string, bool) {
	d := s.DType
	if d.Kind != 'f' || d.ItemSize != 16 {
		return "", false
	}
	b := s.Raw
	if d.ByteOrder == '>' {
		b = reversed(b)
	}
	mant := uint64(0)
	for i := 7; i >= 0; i-- {
		mant = mant<<8 | uint64(b[i])
	}
	se := uint16(b[8]) | uint16(b[9])<<8
	exp := int(se & 0x7fff)
	neg := se&0x8000 != 0
	switch {
	case exp == 0x7fff && mant<<1 == 0:
		if neg {
			return "-inf", true
		}
		return "inf", true
	case exp == 0x7fff:
		return "nan", true
	}
	f := new(big.Float).SetPrec(64).SetUint64(mant)
	f.SetMantExp(f, exp-16383-63)
	if neg {
		f.Neg(f)
	}
	t := f.Text('g', -1)
	if !strings.ContainsAny(t, ".en") {
		t += ".0"
	}
	return t, true
}

func reversed(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

// dtypeReprName is what numpy's repr(dtype) shows: dtype('float64'),
// dtype('>f8'), dtype('<U3'), dtype('S5'), dtype('<M8[ns]').
func dtypeReprName(d bridge.DType) string {
	switch d.Kind {
	case 'S', 'V':
		return d.String()[1:]
	case 'U', 'M', 'm':
		return d.String()
	}
	if d.ByteOrder == '>' {
		return d.String()
	}
	return d.Name()
}
