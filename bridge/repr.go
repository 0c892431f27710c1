package bridge

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Repr formats a decoded value the way Python's repr() does (arrays as a
// short description), cut to about max bytes (0: no limit).
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
		if v {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case int:
		b.WriteString(strconv.Itoa(v))
	case *big.Int:
		b.WriteString(v.String())
	case float64:
		b.WriteString(pyFloat(v))
	case float32:
		b.WriteString(pyFloat(float64(v)))
	case complex128:
		b.WriteString(pyComplex(v))
	case string:
		b.WriteString(pyStr(v))
	case []byte:
		b.WriteString(pyBytes(v))
	case ByteArray:
		b.WriteString("bytearray(" + pyBytes(v) + ")")
	case []any:
		seq("[", "]", v, false)
	case Tuple:
		seq("(", ")", v, true)
	case Set:
		if len(v) == 0 {
			b.WriteString("set()")
			return
		}
		seq("{", "}", v, false)
	case FrozenSet:
		b.WriteString("frozenset(")
		if len(v) > 0 {
			seq("{", "}", v, false)
		}
		b.WriteString(")")
	case Dict:
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
	case Object:
		fmt.Fprintf(b, "<%s.%s object (%d-byte pickle, not decoded)>", v.Module, v.Name, len(v.Pickle))
	case *Array:
		fmt.Fprintf(b, "array(dtype=%s, shape=%s)", v.DType, pyShape(v.Shape))
	case *Masked:
		fmt.Fprintf(b, "masked_array(dtype=%s, shape=%s)", v.Data.DType, pyShape(v.Data.Shape))
	default:
		fmt.Fprintf(b, "%v", v)
	}
}

func pyShape(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	if len(s) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// pyFloat formats like Python's float repr.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	var s string
	exp := 0
	if f != 0 {
		exp = int(math.Floor(math.Log10(math.Abs(f))))
	}
	if f != 0 && (exp < -4 || exp >= 16) {
		s = strconv.FormatFloat(f, 'e', -1, 64)
		mant, e, _ := strings.Cut(s, "e")
		sign := e[0]
		e = strings.TrimLeft(e[1:], "0")
		if len(e) < 2 {
			e = strings.Repeat("0", 2-len(e)) + e
		}
		return mant + "e" + string(sign) + e
	}
	s = strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

func pyComplex(c complex128) string {
	re, im := real(c), imag(c)
	ims := pyFloat(im)
	ims = strings.TrimSuffix(ims, ".0")
	if re == 0 && !math.Signbit(re) {
		return ims + "j"
	}
	res := strings.TrimSuffix(pyFloat(re), ".0")
	if !strings.HasPrefix(ims, "-") {
		ims = "+" + ims
	}
	return "(" + res + ims + "j)"
}

func pyStr(s string) string {
	quote := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, "\"") {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(quote):
			b.WriteString(`\` + string(quote))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

func pyBytes(p []byte) string {
	quote := byte('\'')
	if strings.Contains(string(p), "'") && !strings.Contains(string(p), "\"") {
		quote = '"'
	}
	var b strings.Builder
	b.WriteString("b")
	b.WriteByte(quote)
	for _, c := range p {
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == quote:
			b.WriteString(`\` + string(quote))
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// JSONValue converts a decoded value to what Python's json module would
// write for it: tuples become arrays, big integers JSON numbers, dict keys
// that are numbers, booleans or None become strings. It reports false for
// values JSON cannot hold (bytes, sets, complex, NaN, undecoded objects),
// where Python's json.dumps raises.
func JSONValue(v any) (any, bool) {
	switch v := v.(type) {
	case nil, bool, string:
		return v, true
	case int64:
		return v, true
	case int:
		return v, true
	case *big.Int:
		return json.Number(v.String()), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, false
		}
		return json.Number(pyFloat(v)), true
	case []any:
		return jsonSeq(v)
	case Tuple:
		return jsonSeq(v)
	case Dict:
		out := make(jsonObject, 0, len(v))
		for _, it := range v {
			var k string
			switch key := it.Key.(type) {
			case string:
				k = key
			case bool:
				k = map[bool]string{true: "true", false: "false"}[key]
			case nil:
				k = "null"
			case int64:
				k = strconv.FormatInt(key, 10)
			case *big.Int:
				k = key.String()
			case float64:
				k = pyFloat(key)
			default:
				return nil, false
			}
			jv, ok := JSONValue(it.Value)
			if !ok {
				return nil, false
			}
			out = append(out, jsonMember{k, jv})
		}
		return out, true
	}
	return nil, false
}

func jsonSeq(items []any) (any, bool) {
	out := make([]any, len(items))
	for i, x := range items {
		j, ok := JSONValue(x)
		if !ok {
			return nil, false
		}
		out[i] = j
	}
	return out, true
}

// jsonObject is a JSON object that keeps its members in order.
type jsonObject []jsonMember

type jsonMember struct {
	Key   string
	Value any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshalJSON(m.Key)
		if err != nil {
			return nil, err
		}
		v, err := marshalJSON(m.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}
