package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"

	"mmpbridge/bridge"
)

// parseJSONValue parses JSON into the Go values the bridge pickles: objects
// become dicts in their order, arrays lists, integers int64 (or *big.Int),
// other numbers float64.
func parseJSONValue(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := jsonNext(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the value")
	}
	return v, nil
}

func jsonNext(dec *json.Decoder, depth int) (any, error) {
	if depth > 1000 {
		return nil, fmt.Errorf("nested deeper than 1000")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			list := []any{}
			for dec.More() {
				v, err := jsonNext(dec, depth+1)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err
		case '{':
			d := bridge.Dict{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := jsonNext(dec, depth+1)
				if err != nil {
					return nil, err
				}
				d = append(d, bridge.DictItem{Key: k.(string), Value: v})
			}
			_, err := dec.Token()
			return d, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i, nil
		}
		if b, ok := new(big.Int).SetString(string(t), 10); ok {
			return b, nil
		}
		return strconv.ParseFloat(string(t), 64)
	}
	return tok, nil // string, bool, nil
}
