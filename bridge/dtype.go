package bridge

import (
	"fmt"
	"strconv"
	"strings"
)

// DType is a numpy data type of fixed size: booleans, integers, floats,
// complex numbers, datetime64/timedelta64, fixed-width byte (S), unicode
// (U) and void (V) strings, and structured dtypes of these (kind V, with
// Fields; dtype_struct.go). Object dtypes are not represented. DTypes
// compare with ==.
type DType struct {
	// ByteOrder is '<' (little), '>' (big) or '|' (not applicable).
	ByteOrder byte
	// Kind is numpy's kind character: b, i, u, f, c, M, m, S, U or V.
	Kind byte
	// ItemSize is the size of one element in bytes.
	ItemSize int
	// Unit is the datetime64/timedelta64 unit ("D", "ms", ...; "" for generic)
	// and UnitCount its multiplier (10 for "10ms"); unused for other kinds.
	Unit      string
	UnitCount int

	// layout describes a structured or subarray dtype (dtype_struct.go);
	// "" for the others.
	layout string
}

var numericSizes = map[byte][]int{
	'b': {1}, 'i': {1, 2, 4, 8}, 'u': {1, 2, 4, 8},
	'f': {2, 4, 8, 16}, 'c': {8, 16, 32}, 'M': {8}, 'm': {8},
}

var datetimeUnits = map[string]bool{
	"Y": true, "M": true, "W": true, "D": true, "h": true, "m": true, "s": true,
	"ms": true, "us": true, "ns": true, "ps": true, "fs": true, "as": true,
}

// canonicalUnit spells a datetime unit as numpy's dtype.str does ("μs" is
// "us").
func canonicalUnit(u string) string {
	if u == "μs" {
		return "us"
	}
	return u
}

// String returns numpy's dtype.str: "<f8", "|b1", ">i4", "<M8[D]", "<U3", "|S2".
func (d DType) String() string {
	if d.layout != "" {
		return d.descrText()
	}
	switch d.Kind {
	case 'U':
		return fmt.Sprintf("%c%c%d", d.ByteOrder, d.Kind, d.ItemSize/4)
	case 'M', 'm':
		return fmt.Sprintf("%c%c8%s", d.ByteOrder, d.Kind, d.unitSuffix())
	}
	return fmt.Sprintf("%c%c%d", d.ByteOrder, d.Kind, d.ItemSize)
}

func (d DType) unitSuffix() string {
	if d.Unit == "" {
		return ""
	}
	if d.UnitCount > 1 {
		return fmt.Sprintf("[%d%s]", d.UnitCount, d.Unit)
	}
	return "[" + d.Unit + "]"
}

// Name returns numpy's str(dtype), the form mmappickle's own encoding stores:
// "float64", "bool", "datetime64[D]" for native byte order, dtype.str
// otherwise (">i4", "<U3", "|S2").
func (d DType) Name() string {
	if d.ByteOrder == '>' {
		return d.String()
	}
	switch d.Kind {
	case 'b':
		return "bool"
	case 'i':
		return "int" + strconv.Itoa(8*d.ItemSize)
	case 'u':
		return "uint" + strconv.Itoa(8*d.ItemSize)
	case 'f':
		return "float" + strconv.Itoa(8*d.ItemSize)
	case 'c':
		return "complex" + strconv.Itoa(8*d.ItemSize)
	case 'M':
		return "datetime64" + d.unitSuffix()
	case 'm':
		return "timedelta64" + d.unitSuffix()
	}
	return d.String()
}

// NativeEndian reports whether the data needs no byte swapping on this
// (little-endian) machine.
func (d DType) NativeEndian() bool { return d.ByteOrder != '>' }

// alignment is the alignment numpy gives the type (the item size for
// numbers, 4 for U, 1 for S and V; complex aligns on its parts).
func (d DType) alignment() int {
	if d.layout != "" {
		return d.structAlignment()
	}
	switch d.Kind {
	case 'U':
		return 4
	case 'S', 'V':
		return 1
	case 'c':
		return d.ItemSize / 2
	}
	return d.ItemSize
}

func (d DType) validate() error {
	if d.layout != "" {
		if d.Kind != 'V' || d.ByteOrder != '|' || d.ItemSize < 1 {
			return fmt.Errorf("structured dtype %c%c%d", d.ByteOrder, d.Kind, d.ItemSize)
		}
		return nil
	}
	switch d.ByteOrder {
	case '<', '>', '|':
	default:
		return fmt.Errorf("dtype byte order %q", d.ByteOrder)
	}
	switch d.Kind {
	case 'S', 'V':
		if d.ItemSize < 1 || d.ItemSize > 1<<31-1 {
			return fmt.Errorf("dtype %c with item size %d", d.Kind, d.ItemSize)
		}
		if d.ByteOrder != '|' {
			return fmt.Errorf("dtype %c with byte order %q", d.Kind, d.ByteOrder)
		}
		return nil
	case 'U':
		if d.ItemSize < 4 || d.ItemSize%4 != 0 || d.ItemSize > 1<<31-4 {
			return fmt.Errorf("dtype U with item size %d", d.ItemSize)
		}
		if d.ByteOrder == '|' {
			return fmt.Errorf("dtype U without byte order")
		}
		return nil
	}
	sizes, ok := numericSizes[d.Kind]
	if !ok {
		return fmt.Errorf("dtype kind %q is not supported", d.Kind)
	}
	found := false
	for _, s := range sizes {
		found = found || s == d.ItemSize
	}
	if !found {
		return fmt.Errorf("dtype %c%d does not exist", d.Kind, d.ItemSize)
	}
	if (d.ItemSize == 1) != (d.ByteOrder == '|') {
		return fmt.Errorf("dtype %c%d with byte order %q", d.Kind, d.ItemSize, d.ByteOrder)
	}
	if d.Kind == 'M' || d.Kind == 'm' {
		if d.Unit != "" && !datetimeUnits[d.Unit] {
			return fmt.Errorf("datetime unit %q", d.Unit)
		}
		if d.Unit != "" && d.UnitCount < 1 {
			return fmt.Errorf("datetime unit count %d", d.UnitCount)
		}
	}
	return nil
}

var dtypeNames = map[string]string{
	"bool": "|b1", "int8": "|i1", "uint8": "|u1",
	"int16": "<i2", "int32": "<i4", "int64": "<i8",
	"uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
	"float16": "<f2", "float32": "<f4", "float64": "<f8", "float128": "<f16",
	"complex64": "<c8", "complex128": "<c16", "complex256": "<c32",
}

// ParseDType parses numpy's dtype.str ("<f8", "|b1", "<M8[D]", "<U3"), the
// names str(dtype) gives ("float64", "bool", "datetime64[D]") and the short
// forms numpy accepts for them ("f8", "i4", "b1", "U3", "S2", "M8[s]").
func ParseDType(s string) (DType, error) {
	d, err := parseDType(s)
	if err != nil {
		return DType{}, fmt.Errorf("dtype %q: %w", s, err)
	}
	if err := d.validate(); err != nil {
		return DType{}, fmt.Errorf("dtype %q: %w", s, err)
	}
	return d, nil
}

func parseDType(s string) (DType, error) {
	if s == "object" {
		return DType{}, fmt.Errorf("object dtype: %w", ErrUnsupported)
	}
	if std, ok := dtypeNames[s]; ok {
		s = std
	}
	if rest, ok := strings.CutPrefix(s, "datetime64"); ok {
		s = "<M8" + rest
	} else if rest, ok := strings.CutPrefix(s, "timedelta64"); ok {
		s = "<m8" + rest
	}
	var d DType
	if s == "" {
		return d, fmt.Errorf("empty")
	}
	order := byte('=')
	switch s[0] {
	case '<', '>', '|', '=':
		order, s = s[0], s[1:]
	}
	if s == "" {
		return d, fmt.Errorf("no kind")
	}
	d.Kind, s = s[0], s[1:]
	if d.Kind == 'O' {
		return d, fmt.Errorf("object dtype: %w", ErrUnsupported)
	}
	if d.Kind == '?' {
		d.Kind, s = 'b', "1"+s
	}
	unit := ""
	if i := strings.IndexByte(s, '['); i >= 0 {
		if !strings.HasSuffix(s, "]") || (d.Kind != 'M' && d.Kind != 'm') {
			return d, fmt.Errorf("unexpected unit")
		}
		unit, s = s[i+1:len(s)-1], s[:i]
		if unit == "" {
			return d, fmt.Errorf("empty datetime unit")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return d, fmt.Errorf("bad size %q", s)
	}
	d.ItemSize = n
	if d.Kind == 'U' {
		if n > (1<<31-1)/4 {
			return d, fmt.Errorf("size %d too large", n)
		}
		d.ItemSize = 4 * n
	}
	if d.Kind == 'M' || d.Kind == 'm' {
		if unit != "" {
			d.UnitCount = 1
			j := 0
			for j < len(unit) && unit[j] >= '0' && unit[j] <= '9' {
				j++
			}
			if j > 0 {
				c, err := strconv.Atoi(unit[:j])
				if err != nil || c < 1 {
					return d, fmt.Errorf("bad unit %q", unit)
				}
				d.UnitCount = c
			}
			d.Unit = canonicalUnit(unit[j:])
			if d.Unit == "" {
				return d, fmt.Errorf("bad unit %q", unit)
			}
		}
	}
	d.ByteOrder = normalizeOrder(order, d.Kind, d.ItemSize)
	return d, nil
}

// normalizeOrder resolves '=' to the native order (little-endian) and gives
// types without byte order '|', as numpy's dtype.str does.
func normalizeOrder(order, kind byte, size int) byte {
	if kind == 'S' || kind == 'V' || (kind != 'U' && size == 1) {
		return '|'
	}
	if order == '=' || order == '|' {
		return '<'
	}
	return order
}

// descr returns the first argument numpy's dtype pickle passes to
// numpy.dtype(): "f8", "b1", "U3", "S2", "M8".
func (d DType) descr() string {
	switch d.Kind {
	case 'U':
		return fmt.Sprintf("U%d", d.ItemSize/4)
	case 'M', 'm':
		return string(d.Kind) + "8"
	}
	return fmt.Sprintf("%c%d", d.Kind, d.ItemSize)
}

// dtypeFromPickle builds a DType from numpy's dtype pickle: the descr string
// passed to numpy.dtype() and the BUILD state's byte order, element size and
// datetime metadata.
func dtypeFromPickle(descr string, order byte, elsize int64, unit string, count int64) (DType, error) {
	d, err := parseDType(descr)
	if err != nil {
		return d, fmt.Errorf("dtype descr %q: %w", descr, err)
	}
	if d.Unit != "" {
		return d, fmt.Errorf("dtype descr %q carries a unit", descr)
	}
	switch d.Kind {
	case 'U', 'S', 'V':
		if elsize > 0 && elsize != int64(d.ItemSize) {
			if d.ItemSize != 0 || elsize > 1<<31-1 {
				return d, fmt.Errorf("dtype %q with element size %d", descr, elsize)
			}
			d.ItemSize = int(elsize)
		}
	}
	if d.Kind == 'M' || d.Kind == 'm' {
		if unit != "generic" && unit != "" {
			if count < 1 || count > 1<<31-1 {
				return d, fmt.Errorf("datetime unit count %d", count)
			}
			d.Unit, d.UnitCount = canonicalUnit(unit), int(count)
		}
	}
	d.ByteOrder = normalizeOrder(order, d.Kind, d.ItemSize)
	if err := d.validate(); err != nil {
		return d, err
	}
	return d, nil
}
