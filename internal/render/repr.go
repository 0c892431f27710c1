package render

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrepr"
	"mmpbridge/pyval"
)

// Repr formats a decoded value the way Python's repr() does with numpy 2
// (np.float64(1.5), dtype('<U3')), arrays as a short description, cut to
// about max bytes (0: no limit). An int of more than 4,300 decimal digits,
// which CPython refuses to print, shows as <int of N bits>.
func Repr(v any, max int) string {
	var b strings.Builder
	writeRepr(&b, v, max, 0)
	s := b.String()
	if max > 0 && len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

func writeRepr(b *strings.Builder, v any, max, depth int) {
	if max > 0 && b.Len() > max {
		return
	}
	if depth > 100 {
		b.WriteString("...")
		return
	}
	seq := func(open, close string, items []any, single bool) {
		b.WriteString(open)
		for i, x := range items {
			if i > 0 {
				b.WriteString(", ")
			}
			if max > 0 && b.Len() > max {
				break
			}
			writeRepr(b, x, max, depth+1)
		}
		if single && len(items) == 1 {
			b.WriteString(",")
		}
		b.WriteString(close)
	}
	switch v := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		b.WriteString(pyBool(v))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case int:
		b.WriteString(strconv.Itoa(v))
	case *big.Int:
		b.WriteString(bigIntRepr(v))
	case float64:
		b.WriteString(PyFloat(v))
	case complex128:
		b.WriteString(pyComplex(v))
	case string:
		b.WriteString(pyrepr.Str(v))
	case []byte:
		b.WriteString(pyrepr.Bytes(v))
	case pyval.ByteArray:
		b.WriteString("bytearray(" + pyrepr.Bytes(v) + ")")
	case []any:
		seq("[", "]", v, false)
	case pyval.Tuple:
		seq("(", ")", v, true)
	case pyval.Set:
		if len(v) == 0 {
			b.WriteString("set()")
			return
		}
		seq("{", "}", v, false)
	case pyval.FrozenSet:
		b.WriteString("frozenset(")
		if len(v) > 0 {
			seq("{", "}", v, false)
		}
		b.WriteString(")")
	case pyval.OrderedDict: // Python 3.12's repr
		b.WriteString("OrderedDict(")
		if len(v) > 0 {
			writeRepr(b, pyval.Dict(v), max, depth)
		}
		b.WriteString(")")
	case pyval.Dict:
		b.WriteString("{")
		for i, it := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			if max > 0 && b.Len() > max {
				break
			}
			writeRepr(b, it.Key, max, depth+1)
			b.WriteString(": ")
			writeRepr(b, it.Value, max, depth+1)
		}
		b.WriteString("}")
	case bridge.Scalar:
		b.WriteString(scalarRepr(v))
	case bridge.DType:
		b.WriteString("dtype(" + pyrepr.Str(dtypeReprName(v)) + ")")
	case pyval.Object:
		fmt.Fprintf(b, "<%s.%s object, not decoded", v.Module, v.Name)
		if v.Why != "" {
			fmt.Fprintf(b, ": %s", v.Why)
		}
		b.WriteString(">")
	case *bridge.Array:
		fmt.Fprintf(b, "array(dtype=%s, shape=%s)", v.DType, ShapeText(v.Shape))
	case *bridge.Masked:
		fmt.Fprintf(b, "masked_array(dtype=%s, shape=%s)", v.Data.DType, ShapeText(v.Data.Shape))
	default:
		fmt.Fprintf(b, "%v", v)
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
	d := s.DType
	name := "np." + scalarType(d)
	switch v := s.Value().(type) {
	case bool:
		if v {
			return "np.True_"
		}
		return "np.False_"
	case int64:
		switch d.Kind {
		case 'M':
			if d.UnitCount > 1 || d.Unit == "" && v != nat {
				return name + "(" + pyrepr.Str(datetimeText(v, d)) + ",'" + unitText(d) + "')"
			}
			return name + "(" + pyrepr.Str(datetimeText(v, d)) + ")"
		case 'm':
			return timedeltaRepr(v, d)
		}
		return fmt.Sprintf("%s(%d)", name, v)
	case uint64:
		return fmt.Sprintf("%s(%d)", name, v)
	case float64:
		return name + "(" + PyFloatBits(v, 8*d.ItemSize) + ")"
	case complex128:
		return name + "(" + complexParts(v, 4*d.ItemSize) + ")"
	case string:
		return name + "(" + pyrepr.Str(v) + ")"
	case []byte:
		if d.Kind == 'V' { // numpy writes every byte of a void as \xHH
			var b strings.Builder
			for _, c := range s.Raw {
				fmt.Fprintf(&b, `\x%02X`, c)
			}
			return name + "(b'" + b.String() + "')"
		}
		return name + "(" + pyrepr.Bytes(v) + ")"
	}
	if t, ok := longDouble(s); ok {
		return name + "(" + t + ")"
	}
	return name + "(...)"
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
