package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrepr"
	"mmpbridge/pyval"
)

// ArrayInfo describes an array as `mmpconv inspect --json` prints it.
type ArrayInfo struct {
	DType      string `json:"dtype"`
	Shape      []int  `json:"shape"`
	Order      string `json:"order"`
	Profile    string `json:"encoding"`
	DataOffset int64  `json:"data_offset"`
	NBytes     int64  `json:"nbytes"`
	SHA256     string `json:"sha256,omitempty"`
}

// Info describes an array; with hash, the sha256 of its bytes in C order
// (numpy's tobytes()) is computed, which reads the whole array and stops
// when ctx is cancelled.
func Info(ctx context.Context, a *bridge.Array, hash bool) (ArrayInfo, error) {
	info := ArrayInfo{
		DType: a.DType.String(), Shape: append([]int{}, a.Shape...), Order: string(a.Order()),
		Profile: a.Profile.String(), DataOffset: a.Offset, NBytes: a.NBytes,
	}
	if hash {
		h := sha256.New()
		if err := a.WriteC(ctxWriter{ctx, h}); err != nil {
			return info, err
		}
		info.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	return info, nil
}

// Describe returns the JSON of one key's value as `mmpconv inspect --json`
// prints it and libmmp's mmp_entry_json returns it:
//
//	{"kind": "array", "dtype": "<f8", "shape": [2, 3], "order": "C", "encoding": "portable", "data_offset": N, "nbytes": N[, "sha256": "…"]}
//	{"kind": "masked", "data": {array fields}, "mask": {array fields}, "fill": JSON or null}
//	{"kind": "value", "json": JSON, "exact": true|false}
//	{"kind": "object", "module": "datetime", "name": "date", "why": "…"}
//
// "exact" is false when parts of the value JSON cannot hold became null
// (bytes, sets, complex numbers, non-finite floats, undecoded parts, dict
// keys other than str, int, float, bool and None).
func Describe(ctx context.Context, v any, hash bool) ([]byte, error) {
	var buf bytes.Buffer
	switch v := v.(type) {
	case *bridge.Array:
		info, err := Info(ctx, v, hash)
		if err != nil {
			return nil, err
		}
		b, err := Marshal(info)
		if err != nil {
			return nil, err
		}
		buf.WriteString(`{"kind":"array",`)
		buf.Write(b[1:])
	case *bridge.Masked:
		d, err := Info(ctx, v.Data, hash)
		if err != nil {
			return nil, err
		}
		m, err := Info(ctx, v.Mask, hash)
		if err != nil {
			return nil, err
		}
		var fill any
		if f, ok := v.Fill.(*bridge.Array); ok {
			fill = arrayScalarJSON(f)
		}
		b, err := Marshal(struct {
			Kind string    `json:"kind"`
			Data ArrayInfo `json:"data"`
			Mask ArrayInfo `json:"mask"`
			Fill any       `json:"fill"`
		}{"masked", d, m, fill})
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	case pyval.Object:
		b, err := Marshal(struct {
			Kind   string `json:"kind"`
			Module string `json:"module"`
			Name   string `json:"name"`
			Why    string `json:"why"`
		}{"object", v.Module, v.Name, v.Why})
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	default:
		j, exact := JSONValue(v)
		b, err := Marshal(j)
		if err != nil {
			return nil, fmt.Errorf("value as JSON: %w", err)
		}
		buf.WriteString(`{"kind":"value","json":`)
		buf.Write(b)
		fmt.Fprintf(&buf, `,"exact":%v}`, exact)
	}
	return buf.Bytes(), nil
}

// ctxWriter fails once ctx is cancelled.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// arrayScalarJSON is the JSON of a 0-d array's element (a masked array's
// fill value).
func arrayScalarJSON(a *bridge.Array) any {
	b := a.Bytes()
	if b == nil {
		b = make([]byte, a.NBytes)
		if _, err := a.Section().ReadAt(b, 0); err != nil {
			return nil
		}
	}
	j, _ := JSONValue(bridge.Scalar{DType: a.DType, Raw: b})
	return j
}

// Marshal is json.Marshal without HTML escaping ("<f8" stays readable).
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// JSONValue converts a decoded value to JSON: what Python's json module
// writes for the plain parts (tuples as arrays, dict keys that are numbers,
// booleans or None as strings), numpy scalars as numbers or strings
// (datetimes in ISO form), dtypes as their str. exact is false when a part
// JSON cannot hold became null or, for a dict key, was left out: bytes,
// sets, complex numbers, NaN and infinities, timedeltas, arrays inside
// values, undecoded objects, ints past CPython's 4,300 digits.
func JSONValue(v any) (j any, exact bool) {
	c := jsonConv{exact: true}
	j = c.conv(v, 0)
	return j, c.exact
}

type jsonConv struct{ exact bool }

func (c *jsonConv) lossy() any {
	c.exact = false
	return nil
}

func (c *jsonConv) conv(v any, depth int) any {
	if depth > 1000 {
		return c.lossy()
	}
	switch v := v.(type) {
	case nil, bool:
		return v
	case string:
		return jsonString(v)
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
			out = append(out, jsonMember{k, c.conv(it.Value, depth+1)})
		}
		return out
	case bridge.Scalar:
		return c.scalar(v)
	case bridge.DType:
		return v.String()
	}
	return c.lossy()
}

func (c *jsonConv) scalar(s bridge.Scalar) any {
	switch v := s.Value().(type) {
	case bool:
		return v
	case int64:
		switch s.DType.Kind {
		case 'M':
			if v == nat || s.DType.Unit == "" {
				return c.lossy()
			}
			return jsonString(datetimeText(v, s.DType))
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
		return jsonString(v)
	}
	if t, ok := longDouble(s); ok && t != "nan" && t != "inf" && t != "-inf" {
		return json.Number(t)
	}
	return c.lossy()
}

func (c *jsonConv) seq(items []any, depth int) any {
	out := make([]any, len(items))
	for i, x := range items {
		out[i] = c.conv(x, depth+1)
	}
	return out
}

// jsonObject is a JSON object that keeps its members in order.
type jsonObject []jsonMember

type jsonMember struct {
	Key   string
	Value any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(jsonString(m.Key).quoted())
		b.WriteByte(':')
		v, err := Marshal(m.Value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// jsonString is a string in the bridge's canonical form, written to JSON
// as Python's json module writes it: lone surrogates as \udXXX escapes.
type jsonString string

func (s jsonString) MarshalJSON() ([]byte, error) { return s.quoted(), nil }

func (s jsonString) quoted() []byte {
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
