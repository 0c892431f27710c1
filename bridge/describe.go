package bridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// ArrayInfo describes an array as `mmpconv inspect --json` prints it.
type ArrayInfo struct {
	DType      string `json:"dtype"`
	Shape      []int  `json:"shape"`
	Order      string `json:"order"`
	Encoding   string `json:"encoding"`
	DataOffset int64  `json:"data_offset"`
	NBytes     int64  `json:"nbytes"`
	SHA256     string `json:"sha256,omitempty"`
}

// Info describes an array; with hash, the sha256 of its bytes in C order
// (numpy's tobytes()) is computed, which reads the whole array.
func (a *Array) Info(hash bool) (ArrayInfo, error) {
	info := ArrayInfo{
		DType: a.DType.String(), Shape: append([]int{}, a.Shape...), Order: string(a.Order()),
		Encoding: a.Encoding.String(), DataOffset: a.Offset, NBytes: a.NBytes,
	}
	if hash {
		h := sha256.New()
		if err := a.WriteC(h); err != nil {
			return info, err
		}
		info.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	return info, nil
}

// DescribeJSON returns the JSON description of a value as `mmpconv inspect
// --json` prints it for one key:
//
//	{"kind": "array", "dtype": "<f8", "shape": [2, 3], "order": "C", "encoding": "portable", "data_offset": N, "nbytes": N[, "sha256": "…"]}
//	{"kind": "masked", "data": {array fields}, "mask": {array fields}}
//	{"kind": "value", "json": the value as JSON, or null where JSON cannot hold it}
func DescribeJSON(v any, hash bool) ([]byte, error) {
	var buf bytes.Buffer
	switch v := v.(type) {
	case *Array:
		info, err := v.Info(hash)
		if err != nil {
			return nil, err
		}
		b, err := marshalJSON(info)
		if err != nil {
			return nil, err
		}
		buf.WriteString(`{"kind":"array",`)
		buf.Write(b[1:])
	case *Masked:
		d, err := v.Data.Info(hash)
		if err != nil {
			return nil, err
		}
		m, err := v.Mask.Info(hash)
		if err != nil {
			return nil, err
		}
		b, err := marshalJSON(struct {
			Kind string    `json:"kind"`
			Data ArrayInfo `json:"data"`
			Mask ArrayInfo `json:"mask"`
		}{"masked", d, m})
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	default:
		j, ok := JSONValue(v)
		if !ok {
			j = nil
		}
		b, err := marshalJSON(j)
		if err != nil {
			return nil, fmt.Errorf("value as JSON: %w", err)
		}
		buf.WriteString(`{"kind":"value","json":`)
		buf.Write(b)
		buf.WriteString("}")
	}
	return buf.Bytes(), nil
}

// marshalJSON is json.Marshal without HTML escaping ("<f8" stays readable).
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
