package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"unicode"

	"mmpbridge/pyval"
)

// parseJSONValue parses JSON into the Go values the bridge pickles: objects
// become dicts in their order, arrays lists, integers int64 (or *big.Int),
// other numbers float64.
// A duplicate key in an object is an error (json.Unmarshal would keep the
// last silently); a bare word is taken for a string forgotten in quotes.
func parseJSONValue(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := jsonNext(dec, 0)
	if err != nil {
		if t := strings.TrimSpace(s); t != "" && isBareWord(t) {
			return nil, fmt.Errorf("%q is not JSON; a string needs quotes: --json '\"%s\"'", t, t)
		}
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
			d := pyval.Dict{}
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key := k.(string)
				if seen[key] {
					return nil, fmt.Errorf("duplicate key %q in an object (at byte %d)", key, dec.InputOffset())
				}
				seen[key] = true
				v, err := jsonNext(dec, depth+1)
				if err != nil {
					return nil, err
				}
				d = append(d, pyval.DictItem{Key: key, Value: v})
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

// isBareWord: letters, digits, and _-./: only, not a JSON literal.
func isBareWord(s string) bool {
	switch s {
	case "true", "false", "null":
		return false
	}
	for _, c := range s {
		if !(c == '_' || c == '-' || c == '.' || c == '/' || c == ':' || unicode.IsLetter(c) || unicode.IsDigit(c)) {
			return false
		}
	}
	_, err := strconv.ParseFloat(s, 64)
	return err != nil
}

// readJSONArg resolves put's --json argument: @FILE reads the file, - reads
// standard input, anything else is the JSON itself.
func readJSONArg(arg string, stdin io.Reader) (string, error) {
	const limit = 1 << 30
	var r io.Reader
	switch {
	case arg == "-":
		r = stdin
	case strings.HasPrefix(arg, "@"):
		f, err := os.Open(arg[1:])
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	default:
		return arg, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return "", err
	}
	if len(b) > limit {
		return "", fmt.Errorf("%s: more than 1 GiB of JSON", arg)
	}
	return string(b), nil
}
