package convert

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edsrzf/mmap-go"

	"mmpbridge/bridge"
)

// .npy files (numpy's format, versions 1.0, 2.0 and 3.0):
//
//	\x93NUMPY <major> <minor> <header length: uint16 (1.x) or uint32 (2.x, 3.x)>
//	{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }   (padded with spaces, ending in \n)
//	<raw data in C or Fortran order>
//
// npyToMmpkl stores the array of an .npy file under one key; mmpklToNpy
// writes one array of an mmappickle file as numpy 1.24's np.save does, byte
// for byte. Array data moves with copy_file_range both ways.

func init() {
	toMmpkl[Npy] = npyToMmpkl
	fromMmpkl[Npy] = mmpklToNpy
}

const (
	npyMagic = "\x93NUMPY"
	// maxNpyHeader bounds the header dict a file may claim (numpy's own
	// reader refuses more than 10,000 characters unless told otherwise).
	maxNpyHeader = 1 << 20
	// copyChunk is how much one copy_file_range call moves between progress
	// reports and cancellation checks.
	copyChunk = 64 << 20
)

// npyHeader is a parsed .npy header.
type npyHeader struct {
	Major, Minor byte
	DType        bridge.DType
	Shape        []int
	Fortran      bool
	DataOff      int64 // size of the magic, version, length and dict: where the data starts
	NBytes       int64 // size of the array data
}

func (h npyHeader) array() bridge.ArrayHeader {
	return bridge.ArrayHeader{DType: h.DType, Shape: h.Shape, Fortran: h.Fortran}
}

// needsTranspose tells whether the data must be transposed to C order to be
// stored in the given profile (the mmappickle encoding holds only C-order
// data).
func (h npyHeader) needsTranspose(p bridge.Encoding) bool {
	return p == bridge.Mmappickle && fortranFlag(h.Shape, h.Fortran)
}

// fortranFlag is numpy's "Fortran-contiguous and not C-contiguous": the
// layouts differ only with more than one dimension longer than 1 (and some
// data). numpy writes fortran_order False otherwise, and so do we.
func fortranFlag(shape []int, fortran bool) bool {
	if !fortran {
		return false
	}
	big := 0
	for _, d := range shape {
		if d == 0 {
			return false
		}
		if d > 1 {
			big++
		}
	}
	return big > 1
}

// npyUnsupported: a valid .npy whose dtype the bridge cannot carry. Callers
// turn it into an *UnsupportedError naming the file and member.
type npyUnsupported struct{ reason string }

func (e *npyUnsupported) Error() string { return e.reason }

// readNpyHeader reads the magic, version, header length and header dict
// from r, exactly (nothing past the header is read), validating and
// bounding everything first: avail is how many bytes r holds.
//
// The dict is parsed here rather than by codeberg.org/sbinet/npyio: npyio
// allocates whatever length the file claims, panics on a header without
// '\n' or with keys in an unexpected place, depends on numpy's key order
// and exact ", " separators, accepts negative dimensions, returns the descr
// still quoted (and a structured descr as raw text) and knows no version
// 3.0. A small parser of the Python literals the format allows (what
// numpy's safe_eval accepts for a header) is shorter than the guards npyio
// would need, and reports every problem as an error.
func readNpyHeader(r io.Reader, avail int64) (npyHeader, error) {
	var h npyHeader
	var pre [8]byte
	if avail < 10 {
		return h, fmt.Errorf("not an .npy file: %d bytes", avail)
	}
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return h, fmt.Errorf("reading .npy header: %w", eofUnexpected(err))
	}
	if string(pre[:6]) != npyMagic {
		return h, errors.New("not an .npy file (bad magic)")
	}
	h.Major, h.Minor = pre[6], pre[7]
	var hlen int64
	switch h.Major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return h, fmt.Errorf("reading .npy header: %w", eofUnexpected(err))
		}
		hlen, h.DataOff = int64(binary.LittleEndian.Uint16(b[:])), 10
	case 2, 3:
		var b [4]byte
		if avail < 12 {
			return h, fmt.Errorf("truncated .npy header: %d bytes", avail)
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return h, fmt.Errorf("reading .npy header: %w", eofUnexpected(err))
		}
		hlen, h.DataOff = int64(binary.LittleEndian.Uint32(b[:])), 12
	default:
		return h, fmt.Errorf(".npy format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", h.Major, h.Minor)
	}
	if hlen > maxNpyHeader {
		return h, fmt.Errorf(".npy header of %d bytes exceeds the limit of %d", hlen, maxNpyHeader)
	}
	if h.DataOff+hlen > avail {
		return h, fmt.Errorf("truncated .npy header: it claims %d bytes, %d are there", hlen, avail-h.DataOff)
	}
	h.DataOff += hlen
	buf := make([]byte, hlen)
	if _, err := io.ReadFull(r, buf); err != nil {
		return h, fmt.Errorf("reading .npy header: %w", eofUnexpected(err))
	}
	if len(buf) == 0 || buf[len(buf)-1] != '\n' {
		return h, errors.New("malformed .npy header: it does not end with a newline")
	}
	// Versions 1 and 2 are Latin-1 (field names may use it), 3 is UTF-8:
	// the parser works on UTF-8.
	if h.Major == 3 && !utf8.Valid(buf) {
		return h, errors.New("malformed .npy header: not UTF-8")
	}
	if h.Major < 3 && !isASCII(string(buf)) {
		u := make([]rune, len(buf))
		for i, c := range buf {
			u[i] = rune(c)
		}
		buf = []byte(string(u))
	}
	descr, fortran, shape, err := parseNpyDict(buf, h.Major < 3)
	if err != nil {
		return h, fmt.Errorf("malformed .npy header: %w", err)
	}
	h.Fortran, h.Shape = fortran, shape
	switch d := descr.(type) {
	case string, pyList:
		dt, err := descrToDType(d, 0)
		if err != nil {
			return h, err
		}
		h.DType = dt
	case pyTuple:
		return h, &npyUnsupported{"a subarray dtype as the array's dtype cannot be converted (numpy never writes one)"}
	default:
		return h, fmt.Errorf("malformed .npy header: descr is %s, not a dtype", pyTypeName(descr))
	}
	n, err := h.array().NBytes()
	if err != nil {
		if errors.Is(err, bridge.ErrUnsupported) {
			return h, &npyUnsupported{err.Error()}
		}
		return h, fmt.Errorf("malformed .npy header: %w", err)
	}
	h.NBytes = n
	return h, nil
}

// npyDescrProblem says why d has no .npy descr ("" when it has one): a
// structured dtype whose fields overlap (numpy's descr lists fields one
// after the other).
func npyDescrProblem(d bridge.DType) string {
	fs := d.Fields()
	if fs == nil {
		if base, _, ok := d.SubArray(); ok {
			return npyDescrProblem(base)
		}
		return ""
	}
	end := 0
	for _, f := range fs {
		if f.Offset < end {
			return fmt.Sprintf("structured dtype whose field %q overlaps the one before it: .npy cannot describe it", f.Name)
		}
		if why := npyDescrProblem(f.DType); why != "" {
			return why
		}
		end = f.Offset + f.DType.ItemSize
	}
	return ""
}

// descrToDType reads an .npy descr as numpy's descr_to_dtype does: a dtype
// string, or a list of (name, descr) and (name, descr, shape) fields laid
// out one after the other, where a (”, '|Vn') field is padding.
func descrToDType(descr any, depth int) (bridge.DType, error) {
	if depth > 16 {
		return bridge.DType{}, &npyUnsupported{"a structured dtype nested more than 16 deep"}
	}
	switch d := descr.(type) {
	case string:
		t := strings.TrimLeft(d, "<>|=")
		if d == "object" || strings.HasPrefix(t, "O") {
			if depth > 0 {
				return bridge.DType{}, &npyUnsupported{"structured dtypes with object fields cannot be converted (they need allow_pickle)"}
			}
			return bridge.DType{}, &npyUnsupported{"object arrays cannot be converted (they need allow_pickle)"}
		}
		dt, err := bridge.ParseDType(d)
		if err != nil {
			return bridge.DType{}, &npyUnsupported{err.Error()}
		}
		return dt, nil
	case pyList:
		var fields []bridge.Field
		off := 0
		for i, x := range d {
			item, ok := x.(pyTuple)
			if !ok || len(item) < 2 || len(item) > 3 {
				return bridge.DType{}, fmt.Errorf("malformed .npy header: field %d of descr is %s, not (name, dtype[, shape])", i, pyTypeName(x))
			}
			name, ok := item[0].(string)
			if !ok {
				if _, titled := item[0].(pyTuple); titled {
					return bridge.DType{}, &npyUnsupported{"structured dtypes with field titles cannot be converted"}
				}
				return bridge.DType{}, fmt.Errorf("malformed .npy header: field %d is named by %s", i, pyTypeName(item[0]))
			}
			ft, err := descrToDType(item[1], depth+1)
			if err != nil {
				return bridge.DType{}, err
			}
			if len(item) == 3 {
				var shape []int
				switch sh := item[2].(type) {
				case int64:
					shape = []int{int(sh)}
				case pyTuple:
					for _, n := range sh {
						v, ok := n.(int64)
						if !ok || v < 0 || v > 1<<31-1 {
							return bridge.DType{}, fmt.Errorf("malformed .npy header: field %q has shape %v", name, sh)
						}
						shape = append(shape, int(v))
					}
				default:
					return bridge.DType{}, fmt.Errorf("malformed .npy header: field %q has shape %s", name, pyTypeName(item[2]))
				}
				if len(shape) > 0 {
					if ft, err = bridge.SubArrayDType(ft, shape); err != nil {
						return bridge.DType{}, &npyUnsupported{fmt.Sprintf("field %q: %v", name, err)}
					}
				}
			}
			if name == "" && ft.Kind == 'V' && ft.Fields() == nil {
				if _, _, sub := ft.SubArray(); !sub {
					off += ft.ItemSize // padding
					continue
				}
			}
			fields = append(fields, bridge.Field{Name: name, DType: ft, Offset: off})
			off += ft.ItemSize
			if off > 1<<31-1 {
				return bridge.DType{}, &npyUnsupported{"a structured dtype larger than 2 GiB"}
			}
		}
		dt, err := bridge.StructDType(fields, off, false)
		if err != nil {
			return bridge.DType{}, &npyUnsupported{err.Error()}
		}
		return dt, nil
	}
	return bridge.DType{}, fmt.Errorf("malformed .npy header: a field's dtype is %s", pyTypeName(descr))
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
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

// npyHeaderBytes returns the header numpy 1.24's np.save writes for an array
// (format 1.0 unless the header needs 2.0): the dict with sorted keys and
// repr'd values, spare spaces for growing the first (C) or last (Fortran)
// axis, padding spaces and '\n' up to a multiple of 64 bytes.
func npyHeaderBytes(d bridge.DType, shape []int, fortran bool) []byte {
	var dict strings.Builder
	if d.Fields() != nil {
		// numpy's dtype.descr, padding as ('', '|Vn') fields.
		dict.WriteString("{'descr': ")
		dict.WriteString(d.String())
		dict.WriteString(", 'fortran_order': ")
	} else {
		dict.WriteString("{'descr': '")
		dict.WriteString(d.String())
		dict.WriteString("', 'fortran_order': ")
	}
	if fortran {
		dict.WriteString("True")
	} else {
		dict.WriteString("False")
	}
	dict.WriteString(", 'shape': (")
	for i, n := range shape {
		if i > 0 {
			dict.WriteString(", ")
		}
		dict.WriteString(strconv.Itoa(n))
	}
	if len(shape) == 1 {
		dict.WriteByte(',')
	}
	dict.WriteString("), }")
	if len(shape) > 0 {
		grow := shape[0]
		if fortran {
			grow = shape[len(shape)-1]
		}
		const growthAxisMaxDigits = 21
		dict.WriteString(strings.Repeat(" ", max(0, growthAxisMaxDigits-len(strconv.Itoa(grow)))))
	}
	// numpy's header is Latin-1 (formats 1.0 and 2.0) when it can be,
	// UTF-8 (format 3.0) otherwise: only field names can need either.
	text := dict.String()
	utf8Header := false
	if !isASCII(text) {
		var l []byte
		for _, r := range text {
			if r > 0xff {
				utf8Header = true
				break
			}
			l = append(l, byte(r))
		}
		if !utf8Header {
			text = string(l)
		}
	}
	hlen := len(text) + 1
	prefix := 10
	major := byte(1)
	if 64-(prefix+hlen)%64+hlen > 0xffff {
		prefix, major = 12, 2
	}
	if utf8Header {
		prefix, major = 12, 3
	}
	pad := 64 - (prefix+hlen)%64 // numpy pads 1 to 64 spaces, never 0
	b := make([]byte, 0, prefix+hlen+pad)
	b = append(b, npyMagic...)
	if prefix == 10 {
		b = append(b, 1, 0)
		b = binary.LittleEndian.AppendUint16(b, uint16(hlen+pad))
	} else {
		b = append(b, major, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(hlen+pad))
	}
	b = append(b, text...)
	b = append(b, strings.Repeat(" ", pad)...)
	return append(b, '\n')
}

// npyToMmpkl stores the array of the .npy file src under opt.Key or the
// file's stem.
func npyToMmpkl(ctx context.Context, src string, out *bridge.File, opt *Options, p *progress) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	h, err := readNpyHeader(io.NewSectionReader(f, 0, size), size)
	if err != nil {
		var u *npyUnsupported
		if errors.As(err, &u) {
			return opt.skip(&UnsupportedError{File: src, Member: "array", Reason: u.reason})
		}
		return fmt.Errorf("%s: %w", src, err)
	}
	if have := size - h.DataOff; have < h.NBytes {
		return fmt.Errorf("%s: truncated: the array data has %d bytes, the header says %d (dtype %s, shape %v)", src, have, h.NBytes, h.DType, h.Shape)
	}
	key := opt.Key
	if key == "" {
		key = strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))
	}
	p.total.Add(h.NBytes)
	if h.needsTranspose(opt.Profile) {
		// The mmappickle encoding holds C-order data: map the source and
		// write its transpose into a reserved slot.
		m, data, err := mapRegion(f, h.DataOff, h.NBytes)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		defer m.Unmap()
		slot, err := out.Reserve(key, bridge.ArrayHeader{DType: h.DType, Shape: h.Shape})
		if err != nil {
			return err
		}
		if err := writeFToC(ctx, slot, data, h.Shape, h.DType.ItemSize, p); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		return slot.Commit()
	}
	return out.PutArray(key, h.array(), &fileSpan{ctx: ctx, name: src, f: f, off: h.DataOff, n: h.NBytes, p: p})
}

// fileSpan streams n bytes of f from off. Its WriteTo, which the bridge
// (and io.Copy) prefer, moves them in copyChunk pieces through
// *io.LimitedReader over the *os.File, so that an *os.File destination gets
// them by copy_file_range, and counts progress and checks for cancellation
// between pieces. f's offset is moved.
type fileSpan struct {
	ctx  context.Context
	name string // the file, for errors (or "")
	f    *os.File
	off  int64
	n    int64
	p    *progress
	pos  int64 // for Read
}

func (s *fileSpan) WriteTo(w io.Writer) (int64, error) {
	if _, err := s.f.Seek(s.off+s.pos, io.SeekStart); err != nil {
		return 0, err
	}
	var done int64
	for s.pos < s.n {
		if err := s.ctx.Err(); err != nil {
			return done, err
		}
		m := min(copyChunk, s.n-s.pos)
		got, err := io.Copy(w, &io.LimitedReader{R: s.f, N: m})
		s.pos += got
		done += got
		s.p.add(got)
		if err != nil {
			return done, err
		}
		if got < m {
			return done, s.truncated()
		}
	}
	return done, nil
}

func (s *fileSpan) Read(b []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if s.pos >= s.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), s.n-s.pos)]
	n, err := s.f.ReadAt(b, s.off+s.pos)
	s.pos += int64(n)
	s.p.add(int64(n))
	if err == io.EOF && n > 0 {
		err = nil
	}
	if err == io.EOF {
		err = s.truncated()
	}
	return n, err
}

func (s *fileSpan) truncated() error {
	err := fmt.Errorf("truncated: the array data ends after %d of %d bytes", s.pos, s.n)
	if s.name != "" {
		err = fmt.Errorf("%s: %w", s.name, err)
	}
	return err
}

// mapRegion maps n bytes of f from off read-only.
func mapRegion(f *os.File, off, n int64) (mmap.MMap, []byte, error) {
	if n == 0 {
		return nil, []byte{}, nil
	}
	page := int64(os.Getpagesize())
	start := off / page * page
	m, err := mmap.MapRegion(f, int(off+n-start), mmap.RDONLY, 0, start)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	return m, m[off-start : off-start+n], nil
}

// writeFToC writes Fortran-ordered data (mapped) to w in C order, in 1 MiB
// pieces. A fault reading the mapping (the file shrank under us) is an
// error, not a crash.
func writeFToC(ctx context.Context, w io.WriterAt, src []byte, shape []int, size int, p *progress) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading mapped data: %v", r)
		}
	}()
	nd := len(shape)
	stride := make([]int, nd) // Fortran strides in bytes
	s := size
	for i := range nd {
		stride[i] = s
		s *= shape[i]
	}
	if s != len(src) {
		return fmt.Errorf("transposing: %d bytes for shape %v of %d-byte items", len(src), shape, size)
	}
	last := nd - 1
	inner, innerStride := shape[last], stride[last]
	buf := make([]byte, 0, max(1<<20, inner*size)/size*size)
	var written int64
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := w.WriteAt(buf, written); err != nil {
			return err
		}
		written += int64(len(buf))
		p.add(int64(len(buf)))
		buf = buf[:0]
		return ctx.Err()
	}
	idx := make([]int, nd) // C-order odometer over all axes but the last
	base := 0
	for {
		if cap(buf)-len(buf) < inner*size {
			if err := flush(); err != nil {
				return err
			}
		}
		o := len(buf)
		buf = buf[:o+inner*size]
		dst := buf[o:]
		off := base
		switch size {
		case 1:
			for j := range inner {
				dst[j] = src[off]
				off += innerStride
			}
		case 2:
			for j := range inner {
				binary.NativeEndian.PutUint16(dst[2*j:], binary.NativeEndian.Uint16(src[off:]))
				off += innerStride
			}
		case 4:
			for j := range inner {
				binary.NativeEndian.PutUint32(dst[4*j:], binary.NativeEndian.Uint32(src[off:]))
				off += innerStride
			}
		case 8:
			for j := range inner {
				binary.NativeEndian.PutUint64(dst[8*j:], binary.NativeEndian.Uint64(src[off:]))
				off += innerStride
			}
		default:
			for j := range inner {
				copy(dst[j*size:(j+1)*size], src[off:off+size])
				off += innerStride
			}
		}
		ax := last - 1
		for ; ax >= 0; ax-- {
			idx[ax]++
			base += stride[ax]
			if idx[ax] < shape[ax] {
				break
			}
			base -= stride[ax] * shape[ax]
			idx[ax] = 0
		}
		if ax < 0 {
			break
		}
	}
	return flush()
}

// mmpklToNpy writes the one array of in (or opt.Key) to dst as np.save
// would, copying the data with copy_file_range.
// NpyHeader is the .npy header numpy writes for the array (version 1.0 or
// 2.0 as its size needs), padded to 64 bytes.
func NpyHeader(a *bridge.Array) []byte {
	return npyHeaderBytes(a.DType, a.Shape, fortranFlag(a.Shape, a.Fortran))
}

func mmpklToNpy(ctx context.Context, src string, in *bridge.Reader, dst string, opt *Options, p *progress) error {
	key, err := pickNpyKey(src, in, opt.Key)
	if err != nil {
		return err
	}
	arr, err := in.Array(key)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if why := npyDescrProblem(arr.DType); why != "" {
		return &UnsupportedError{File: src, Member: fmt.Sprintf("key %q", key), Reason: why}
	}
	p.total.Add(arr.NBytes)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := out.Write(npyHeaderBytes(arr.DType, arr.Shape, fortranFlag(arr.Shape, arr.Fortran))); err != nil {
		return err
	}
	path := opt.inputPath(src)
	if path == "" {
		// A remote file: fetched in large pieces, several requests at a
		// time, past the block cache (about the array's bytes move); or a
		// scratch file that cannot be opened again: read through it.
		if _, err := io.CopyBuffer(struct{ io.Writer }{out}, p.reader(arr.Reader()), make([]byte, 8<<20)); err != nil {
			return fmt.Errorf("%s: key %q: %w", src, key, err)
		}
		return out.Close()
	}
	sf, err := os.Open(path)
	if err != nil {
		return err
	}
	defer sf.Close()
	span := &fileSpan{ctx: ctx, name: src, f: sf, off: arr.Offset, n: arr.NBytes, p: p}
	if _, err := span.WriteTo(out); err != nil {
		return err
	}
	return out.Close()
}

// pickNpyKey chooses the array an .npy output holds: key if given (it must
// be a plain array), else the file's only array.
func pickNpyKey(src string, in *bridge.Reader, key string) (string, error) {
	var arrays []string
	for _, k := range in.Keys() {
		if kind, err := in.KindOf(k); err == nil && kind != bridge.KindValue {
			arrays = append(arrays, k)
		}
	}
	if key != "" {
		kind, err := in.KindOf(key)
		switch {
		case errors.Is(err, bridge.ErrKeyNotFound):
			return "", fmt.Errorf("%s: key %q: %w (arrays: %s)", src, key, bridge.ErrKeyNotFound, quoteKeys(arrays))
		case err != nil:
			return "", fmt.Errorf("%s: %w", src, err)
		case kind == bridge.KindMasked:
			return "", causeError(fmt.Sprintf("%s: key %q is a masked array, which .npy cannot hold (convert to .npz; arrays: %s)", src, key, quoteKeys(arrays)), bridge.ErrNotArray)
		case kind == bridge.KindValue:
			return "", causeError(fmt.Sprintf("%s: key %q holds a value, not an array (arrays: %s)", src, key, quoteKeys(arrays)), bridge.ErrNotArray)
		}
		return key, nil
	}
	switch len(arrays) {
	case 0:
		return "", causeError(fmt.Sprintf("%s: no array to write to .npy", src), bridge.ErrNotArray)
	case 1:
		if kind, _ := in.KindOf(arrays[0]); kind == bridge.KindMasked {
			return "", causeError(fmt.Sprintf("%s: key %q is a masked array, which .npy cannot hold (convert to .npz)", src, arrays[0]), bridge.ErrNotArray)
		}
		return arrays[0], nil
	}
	return "", &UsageError{fmt.Sprintf("%s holds %d arrays (%s): choose one with --key", src, len(arrays), quoteKeys(arrays))}
}

func quoteKeys(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	const show = 20
	q := make([]string, 0, min(len(keys), show))
	for _, k := range keys[:min(len(keys), show)] {
		q = append(q, strconv.Quote(k))
	}
	s := strings.Join(q, ", ")
	if len(keys) > show {
		s += fmt.Sprintf(" and %d more", len(keys)-show)
	}
	return s
}
