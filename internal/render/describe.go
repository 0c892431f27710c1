package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"math/big"
	"strconv"

	"mmpbridge/bridge"
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
//
// A description longer than DefaultMaxBytes is refused (*LimitError).
func Describe(ctx context.Context, v any, hash bool) ([]byte, error) {
	var buf bytes.Buffer
	b := NewBudget(ctx, 0)
	// Counted first: the buffer is made once, of the right size.
	err := b.describe("", v, hash, func(n int64) io.Writer {
		buf.Grow(int(n))
		return &buf
	})
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteDescribe writes prefix and what Describe returns to w, whole, or
// nothing and a *LimitError when they do not fit what is left of b.
func WriteDescribe(b *Budget, w io.Writer, prefix string, v any, hash bool) error {
	return b.describe(prefix, v, hash, func(int64) io.Writer { return w })
}

// describe renders prefix and Describe's JSON; sink gives the writer once
// the size is known.
func (b *Budget) describe(prefix string, v any, hash bool, sink func(n int64) io.Writer) error {
	var head []byte
	switch v := v.(type) {
	case *bridge.Array:
		info, err := Info(b.ctx, v, hash)
		if err != nil {
			return err
		}
		j, err := Marshal(info)
		if err != nil {
			return err
		}
		head = append([]byte(`{"kind":"array",`), j[1:]...)
	case *bridge.Masked:
		d, err := Info(b.ctx, v.Data, hash)
		if err != nil {
			return err
		}
		m, err := Info(b.ctx, v.Mask, hash)
		if err != nil {
			return err
		}
		j, err := Marshal(struct {
			Kind string    `json:"kind"`
			Data ArrayInfo `json:"data"`
			Mask ArrayInfo `json:"mask"`
		}{"masked", d, m})
		if err != nil {
			return err
		}
		head = append(j[:len(j)-1], `,"fill":`...)
	case pyval.Object:
		j, err := Marshal(struct {
			Kind   string `json:"kind"`
			Module string `json:"module"`
			Name   string `json:"name"`
			Why    string `json:"why"`
		}{"object", v.Module, v.Name, v.Why})
		if err != nil {
			return err
		}
		head = j
	}
	render := func(o *out) {
		o.str(prefix)
		switch v := v.(type) {
		case *bridge.Array, pyval.Object:
			o.str(string(head))
		case *bridge.Masked:
			o.str(string(head))
			if f, ok := v.Fill.(*bridge.Array); ok {
				o.arrayScalarJSON(f)
			} else {
				o.str("null")
			}
			o.byte('}')
		default:
			o.str(`{"kind":"value","json":`)
			o.jsonValue(v, 0)
			if o.exact {
				o.str(`,"exact":true}`)
			} else {
				o.str(`,"exact":false}`)
			}
		}
	}
	_, err := b.emitSized(sink, render)
	return err
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

// arrayScalarJSON writes the JSON of a 0-d array's element (a masked
// array's fill value).
func (o *out) arrayScalarJSON(a *bridge.Array) {
	if a.NBytes > o.limit {
		o.err = &LimitError{Max: o.limit}
		return
	}
	b := a.Bytes()
	if b == nil {
		b = make([]byte, a.NBytes)
		if _, err := a.Section().ReadAt(b, 0); err != nil {
			o.str("null")
			return
		}
	}
	exact := o.exact
	o.jsonScalar(bridge.Scalar{DType: a.DType, Raw: b})
	o.exact = exact
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
//
// The JSON is returned as a json.RawMessage; a value whose JSON is longer
// than DefaultMaxBytes is null, not exact.
func JSONValue(v any) (j any, exact bool) {
	var buf bytes.Buffer
	b := NewBudget(context.Background(), 0)
	exact, err := b.emit(&buf, func(o *out) { o.jsonValue(v, 0) })
	if err != nil {
		return nil, false
	}
	return json.RawMessage(buf.Bytes()), exact
}

func (o *out) lossy() {
	o.exact = false
	o.str("null")
}

// jsonValue writes v's JSON (see JSONValue).
func (o *out) jsonValue(v any, depth int) {
	if o.stopped() {
		return
	}
	if depth > 1000 {
		o.lossy()
		return
	}
	switch v := v.(type) {
	case nil:
		o.str("null")
	case bool:
		if v {
			o.str("true")
		} else {
			o.str("false")
		}
	case string:
		o.jsonStr(v)
	case int64:
		o.str(strconv.FormatInt(v, 10))
	case *big.Int:
		if r := bigIntRepr(v); r[0] != '<' {
			o.str(r)
		} else {
			o.lossy()
		}
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			o.lossy()
		} else {
			o.str(PyFloat(v))
		}
	case []any:
		o.jsonSeq(v, depth)
	case pyval.Tuple:
		o.jsonSeq(v, depth)
	case pyval.OrderedDict:
		o.jsonValue(pyval.Dict(v), depth)
	case pyval.Dict:
		o.byte('{')
		first := true
		for _, it := range v {
			if o.stopped() {
				break
			}
			var k string
			switch key := it.Key.(type) {
			case string:
				k = key
			case bool:
				k = "false"
				if key {
					k = "true"
				}
			case nil:
				k = "null"
			case int64:
				k = strconv.FormatInt(key, 10)
			case *big.Int:
				if k = bigIntRepr(key); k[0] == '<' {
					o.exact = false
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
				o.exact = false // json.dumps refuses such a key
				continue
			}
			if !first {
				o.byte(',')
			}
			first = false
			o.jsonStr(k)
			o.byte(':')
			o.jsonValue(it.Value, depth+1)
		}
		o.byte('}')
	case bridge.Scalar:
		o.jsonScalar(v)
	case bridge.DType:
		o.jsonStr(v.String())
	default:
		o.lossy()
	}
}

func (o *out) jsonScalar(s bridge.Scalar) {
	if len(s.Raw) != s.DType.ItemSize {
		o.lossy()
		return
	}
	switch s.DType.Kind {
	case 'U':
		if !validUCS4(s) {
			o.lossy()
			return
		}
		o.jsonStrUCS4(s)
		return
	case 'S', 'V':
		o.lossy()
		return
	}
	switch v := s.Value().(type) {
	case bool:
		if v {
			o.str("true")
		} else {
			o.str("false")
		}
	case int64:
		switch s.DType.Kind {
		case 'M':
			if v == nat || s.DType.Unit == "" {
				o.lossy()
			} else {
				o.jsonStr(datetimeText(v, s.DType))
			}
		case 'm':
			o.lossy()
		default:
			o.str(strconv.FormatInt(v, 10))
		}
	case uint64:
		o.str(strconv.FormatUint(v, 10))
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			o.lossy()
		} else {
			// The float64 value (a float32's shortest repr would read
			// back as another float64).
			o.str(PyFloat(v))
		}
	default:
		if t, ok := longDouble(s); ok && t != "nan" && t != "inf" && t != "-inf" {
			o.str(t)
		} else {
			o.lossy()
		}
	}
}

func (o *out) jsonSeq(items []any, depth int) {
	o.byte('[')
	for i, x := range items {
		if i > 0 {
			o.byte(',')
		}
		if o.stopped() {
			break
		}
		o.jsonValue(x, depth+1)
	}
	o.byte(']')
}
