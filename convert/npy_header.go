package convert

// The .npy header: read and validated (readNpyHeader), its descr turned
// into a dtype (structured ones too), and written as np.save writes it.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"mmpbridge/bridge"
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
func (h npyHeader) needsTranspose(p bridge.Profile) bool {
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
