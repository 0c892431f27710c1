package render

// The renderers as they were before rendering was budgeted (commit
// 6af78cc), kept to check that the budgeted ones write the same bytes
// (TestRenderSameAsBefore). Test code only.

import (
	"bytes"
	"encoding/json"
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

func legacyMarshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func legacyRepr(v any, max int) string {
	var b strings.Builder
	legacyWriteRepr(&b, v, max, 0)
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

func legacyWriteRepr(b *strings.Builder, v any, max, depth int) {
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
			legacyWriteRepr(b, x, max, depth+1)
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
			legacyWriteRepr(b, pyval.Dict(v), max, depth)
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
			legacyWriteRepr(b, it.Key, max, depth+1)
			b.WriteString(": ")
			legacyWriteRepr(b, it.Value, max, depth+1)
		}
		b.WriteString("}")
	case bridge.Scalar:
		b.WriteString(legacyScalarRepr(v))
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

func legacyScalarRepr(s bridge.Scalar) string {
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

func legacyJSONValue(v any) (j any, exact bool) {
	c := legacyJSONConv{exact: true}
	j = c.conv(v, 0)
	return j, c.exact
}

type legacyJSONConv struct{ exact bool }

func (c *legacyJSONConv) lossy() any {
	c.exact = false
	return nil
}

func (c *legacyJSONConv) conv(v any, depth int) any {
	if depth > 1000 {
		return c.lossy()
	}
	switch v := v.(type) {
	case nil, bool:
		return v
	case string:
		return legacyJSONString(v)
	case int64:
		return v
	case *big.Int:
		if r := bigIntRepr(v); r[0] != '<' {
			return json.Number(r)
		}
		return c.lossy()
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return c.lossy()
		}
		return json.Number(PyFloat(v))
	case []any:
		return c.seq(v, depth)
	case pyval.Tuple:
		return c.seq(v, depth)
	case pyval.OrderedDict:
		return c.conv(pyval.Dict(v), depth)
	case pyval.Dict:
		out := make(legacyJSONObject, 0, len(v))
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
				if k = bigIntRepr(key); k[0] == '<' {
					c.exact = false
					continue
				}
			case float64:
				switch {
				case math.IsNaN(key):
					k = "NaN"
				case math.IsInf(key, 1):
					k = "Infinity"
				case math.IsInf(key, -1):
					k = "-Infinity"
				default:
					k = PyFloat(key)
				}
			default:
				c.exact = false // json.dumps refuses such a key
				continue
			}
			out = append(out, legacyJSONMember{k, c.conv(it.Value, depth+1)})
		}
		return out
	case bridge.Scalar:
		return c.scalar(v)
	case bridge.DType:
		return v.String()
	}
	return c.lossy()
}

func (c *legacyJSONConv) scalar(s bridge.Scalar) any {
	switch v := s.Value().(type) {
	case bool:
		return v
	case int64:
		switch s.DType.Kind {
		case 'M':
			if v == nat || s.DType.Unit == "" {
				return c.lossy()
			}
			return legacyJSONString(datetimeText(v, s.DType))
		case 'm':
			return c.lossy()
		}
		return v
	case uint64:
		return json.Number(strconv.FormatUint(v, 10))
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return c.lossy()
		}
		// The float64 value (a float32's shortest repr would read back
		// as another float64).
		return json.Number(PyFloat(v))
	case string:
		return legacyJSONString(v)
	}
	if t, ok := longDouble(s); ok && t != "nan" && t != "inf" && t != "-inf" {
		return json.Number(t)
	}
	return c.lossy()
}

func (c *legacyJSONConv) seq(items []any, depth int) any {
	out := make([]any, len(items))
	for i, x := range items {
		out[i] = c.conv(x, depth+1)
	}
	return out
}

// legacyJSONObject is a JSON object that keeps its members in order.
type legacyJSONObject []legacyJSONMember

type legacyJSONMember struct {
	Key   string
	Value any
}

func (o legacyJSONObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(legacyJSONString(m.Key).quoted())
		b.WriteByte(':')
		v, err := legacyMarshal(m.Value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type legacyJSONString string

func (s legacyJSONString) MarshalJSON() ([]byte, error) { return s.quoted(), nil }

func (s legacyJSONString) quoted() []byte {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range pyrepr.Runes(string(s)) {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r >= 0xd800 && r <= 0xdfff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			var p [4]byte
			b.Write(p[:utf8.EncodeRune(p[:], r)])
		}
	}
	b.WriteByte('"')
	return b.Bytes()
}
