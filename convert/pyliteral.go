package convert

// The Python literals an .npy header may hold, parsed as numpy's safe_eval
// would (dicts, strings with Python's escapes, ints, tuples, lists).

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

func pyTypeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an int"
	case bool:
		return "a bool"
	case nil:
		return "None"
	case pyTuple:
		return "a tuple"
	case pyList:
		return "a list"
	case *pyDict:
		return "a dict"
	}
	return fmt.Sprintf("%T", v)
}

// parseNpyDict parses the header dict: exactly the keys descr,
// fortran_order and shape, in any order, as numpy's reader demands.
// legacyL accepts Python 2's long suffix (3L), as numpy does for format
// versions 1.0 and 2.0.
func parseNpyDict(s []byte, legacyL bool) (descr any, fortran bool, shape []int, err error) {
	p := &pyParser{s: s, legacyL: legacyL}
	v, err := p.value(0)
	if err != nil {
		return nil, false, nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, false, nil, fmt.Errorf("unexpected %q after the dict at byte %d", p.s[p.i], p.i)
	}
	d, ok := v.(*pyDict)
	if !ok {
		return nil, false, nil, fmt.Errorf("the header is %s, not a dict", pyTypeName(v))
	}
	if len(d.keys) != 3 || !hasKey(d, "descr") || !hasKey(d, "fortran_order") || !hasKey(d, "shape") {
		return nil, false, nil, fmt.Errorf("header keys are %q, want descr, fortran_order and shape", d.keys)
	}
	fortran, ok = d.vals["fortran_order"].(bool)
	if !ok {
		return nil, false, nil, fmt.Errorf("fortran_order is %s, not a bool", pyTypeName(d.vals["fortran_order"]))
	}
	t, ok := d.vals["shape"].(pyTuple)
	if !ok {
		return nil, false, nil, fmt.Errorf("shape is %s, not a tuple", pyTypeName(d.vals["shape"]))
	}
	if len(t) > 64 {
		return nil, false, nil, fmt.Errorf("shape has %d dimensions (numpy allows at most 64)", len(t))
	}
	shape = make([]int, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok {
			return nil, false, nil, fmt.Errorf("shape dimension %d is %s, not an int", i, pyTypeName(x))
		}
		if n < 0 {
			return nil, false, nil, fmt.Errorf("shape dimension %d is negative (%d)", i, n)
		}
		shape[i] = int(n)
	}
	return d.vals["descr"], fortran, shape, nil
}

func hasKey(d *pyDict, k string) bool {
	_, ok := d.vals[k]
	return ok
}

// pyParser reads the Python literals an .npy header may hold: dicts with
// string keys, strings, ints, True/False/None, tuples and lists.
type pyParser struct {
	s       []byte
	i       int
	legacyL bool
}

const maxPyDepth = 32

func (p *pyParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.i++
		default:
			return
		}
	}
}

func (p *pyParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *pyParser) value(depth int) (any, error) {
	if depth > maxPyDepth {
		return nil, p.errorf("literals nested more than %d deep", maxPyDepth)
	}
	p.space()
	if p.i >= len(p.s) {
		return nil, p.errorf("unexpected end")
	}
	c := p.s[p.i]
	switch {
	case c == '{':
		p.i++
		d := &pyDict{vals: map[string]any{}}
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return d, nil
			}
			k, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, p.errorf("dict key is %s, not a string", pyTypeName(k))
			}
			if _, dup := d.vals[ks]; dup {
				return nil, p.errorf("key %q appears twice", ks)
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, p.errorf("expected ':' after key %q", ks)
			}
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			d.keys = append(d.keys, ks)
			d.vals[ks] = v
			if !p.separator('}') {
				return nil, p.errorf("expected ',' or '}' in dict")
			}
		}
	case c == '(' || c == '[':
		closing := byte(')')
		if c == '[' {
			closing = ']'
		}
		p.i++
		var items []any
		commas := 0
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == closing {
				p.i++
				break
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
			p.space()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				commas++
			}
			if !p.separator(closing) {
				return nil, p.errorf("expected ',' or %q", closing)
			}
		}
		if c == '[' {
			return pyList(items), nil
		}
		if len(items) == 1 && commas == 0 {
			return items[0], nil // (x) is x, not a tuple
		}
		return pyTuple(items), nil
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || c >= '0' && c <= '9':
		return p.int()
	case c == 'u' || c == 'U':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '\'' || p.s[p.i+1] == '"') {
			p.i++
			return p.str()
		}
	}
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] == '_' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= '0' && p.s[p.i] <= '9') {
		p.i++
	}
	switch string(p.s[start:p.i]) {
	case "True":
		return true, nil
	case "False":
		return false, nil
	case "None":
		return nil, nil
	case "":
		return nil, p.errorf("unexpected %q", c)
	}
	return nil, fmt.Errorf("at byte %d: unexpected name %q", start, p.s[start:p.i])
}

// separator consumes a ',' (possibly before the closing bracket) or the
// closing bracket itself, which it leaves for the caller's loop.
func (p *pyParser) separator(closing byte) bool {
	p.space()
	if p.i >= len(p.s) {
		return false
	}
	switch p.s[p.i] {
	case ',':
		p.i++
		return true
	case closing:
		return true
	}
	return false
}

func (p *pyParser) str() (any, error) {
	q := p.s[p.i]
	p.i++
	var b []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == q:
			p.i++
			return string(b), nil
		case c == '\n':
			return nil, p.errorf("newline in string")
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return nil, p.errorf("unterminated string")
			}
			// Python's escapes (field names of structured dtypes use them).
			e := p.s[p.i+1]
			p.i += 2
			hex := 0
			switch e {
			case '\\', '\'', '"':
				b = append(b, e)
			case 'n':
				b = append(b, '\n')
			case 't':
				b = append(b, '\t')
			case 'r':
				b = append(b, '\r')
			case 'a':
				b = append(b, 7)
			case 'b':
				b = append(b, 8)
			case 'f':
				b = append(b, 12)
			case 'v':
				b = append(b, 11)
			case 'x':
				hex = 2
			case 'u':
				hex = 4
			case 'U':
				hex = 8
			default:
				if e >= '0' && e <= '7' {
					v := rune(e - '0')
					for k := 0; k < 2 && p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '7'; k++ {
						v = v*8 + rune(p.s[p.i]-'0')
						p.i++
					}
					b = utf8.AppendRune(b, v)
				} else {
					b = append(b, '\\', e) // Python keeps unknown escapes
				}
			}
			if hex > 0 {
				if p.i+hex > len(p.s) {
					return nil, p.errorf("truncated \\%c escape", e)
				}
				v, err := strconv.ParseUint(string(p.s[p.i:p.i+hex]), 16, 32)
				if err != nil || v > utf8.MaxRune || (v >= 0xd800 && v < 0xe000) {
					return nil, p.errorf("bad \\%c escape", e)
				}
				b = utf8.AppendRune(b, rune(v))
				p.i += hex
			}
		default:
			b = append(b, c)
			p.i++
		}
	}
	return nil, p.errorf("unterminated string")
}

func (p *pyParser) int() (any, error) {
	start := p.i
	if p.s[p.i] == '-' || p.s[p.i] == '+' {
		p.i++
		p.space()
	}
	digits := p.i
	for p.i < len(p.s) && (p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == '_') {
		p.i++
	}
	if p.i == digits {
		return nil, fmt.Errorf("at byte %d: malformed number", start)
	}
	text := strings.ReplaceAll(string(p.s[digits:p.i]), "_", "")
	if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') && p.legacyL {
		p.i++
	}
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E' || p.s[p.i] == 'x' || p.s[p.i] == 'j') {
		return nil, fmt.Errorf("at byte %d: only decimal integers are expected", start)
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("at byte %d: number %s is out of range", start, text)
	}
	if p.s[start] == '-' {
		n = -n
	}
	return n, nil
}

// Python literals of an .npy header.
type (
	pyTuple []any
	pyList  []any
	pyDict  struct {
		keys []string
		vals map[string]any
	}
)
