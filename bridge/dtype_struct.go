package bridge

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"mmpbridge/internal/pyrepr"
)

// Structured (record) dtypes and the subarray dtypes of their fields.
//
// A structured dtype is a DType of kind 'V' whose fields are named, each
// with its own dtype (plain, structured or a subarray) at a byte offset; a
// subarray dtype (numpy's dtype(('<i4', (2, 3)))) is a kind 'V' dtype of
// its base dtype repeated over a shape, the dtype of a field only (numpy
// turns an array of a subarray dtype into a bigger array of its base).
// Object fields are never represented: numpy would read their bytes as
// pointers.
//
// The layout is held in DType's unexported layout field as a canonical
// string, so that DTypes stay comparable with == (two dtypes are equal when
// numpy's are: same fields, offsets, sizes and alignment flag).

// Field is one field of a structured dtype.
type Field struct {
	Name   string
	DType  DType
	Offset int
}

// Limits of the structured dtypes the package represents (numpy's own have
// none; these bound what a file can make the reader build).
const (
	maxFields      = 1 << 12
	maxDTypeDepth  = 16
	maxLayoutBytes = 1 << 20
)

// StructDType makes a structured dtype of fields and the item size; aligned
// is numpy's align=True (isalignedstruct): offsets as a C compiler places
// them, which the caller's offsets must then be. Fields must lie within the
// item, have distinct non-empty names and no object dtype.
func StructDType(fields []Field, itemSize int, aligned bool) (DType, error) {
	if len(fields) == 0 || len(fields) > maxFields {
		return DType{}, fmt.Errorf("structured dtype with %d fields: %w", len(fields), ErrUnsupported)
	}
	if itemSize < 1 || itemSize > 1<<31-1 {
		return DType{}, fmt.Errorf("structured dtype of %d bytes", itemSize)
	}
	seen := make(map[string]bool, len(fields))
	var b strings.Builder
	b.WriteString("s")
	if aligned {
		b.WriteString("a")
	} else {
		b.WriteString("p")
	}
	b.WriteString(strconv.Itoa(itemSize))
	b.WriteByte(',')
	b.WriteString(strconv.Itoa(len(fields)))
	b.WriteByte('|')
	for _, f := range fields {
		if f.Name == "" {
			return DType{}, errors.New("structured dtype: a field without a name")
		}
		if seen[f.Name] {
			return DType{}, fmt.Errorf("structured dtype: field %q twice", f.Name)
		}
		seen[f.Name] = true
		if err := f.DType.validate(); err != nil {
			return DType{}, fmt.Errorf("structured dtype: field %q: %w", f.Name, err)
		}
		if f.DType.depth() >= maxDTypeDepth {
			return DType{}, fmt.Errorf("structured dtype nested deeper than %d: %w", maxDTypeDepth, ErrUnsupported)
		}
		if f.Offset < 0 || f.Offset > itemSize || f.DType.ItemSize > itemSize-f.Offset {
			return DType{}, fmt.Errorf("structured dtype: field %q (%d bytes at offset %d) is outside the %d-byte item", f.Name, f.DType.ItemSize, f.Offset, itemSize)
		}
		if aligned && f.Offset%f.DType.alignment() != 0 {
			return DType{}, fmt.Errorf("aligned structured dtype: field %q at offset %d is not aligned to %d", f.Name, f.Offset, f.DType.alignment())
		}
		sub := f.DType.code()
		fmt.Fprintf(&b, "%d:%s%d:%d:%s", len(f.Name), f.Name, f.Offset, len(sub), sub)
		if b.Len() > maxLayoutBytes {
			return DType{}, fmt.Errorf("structured dtype too large to describe: %w", ErrUnsupported)
		}
	}
	d := DType{ByteOrder: '|', Kind: 'V', ItemSize: itemSize, layout: b.String()}
	if aligned && itemSize%d.alignment() != 0 {
		return DType{}, fmt.Errorf("aligned structured dtype of %d bytes: not a multiple of its alignment %d", itemSize, d.alignment())
	}
	return d, nil
}

// SubArrayDType makes the dtype of a field holding an array of base over
// shape: numpy's dtype((base, shape)).
func SubArrayDType(base DType, shape []int) (DType, error) {
	if err := base.validate(); err != nil {
		return DType{}, err
	}
	if _, _, ok := base.SubArray(); ok {
		return DType{}, errors.New("subarray of a subarray dtype (numpy merges the shapes)")
	}
	if len(shape) == 0 || len(shape) > 32 {
		return DType{}, fmt.Errorf("subarray dtype with %d dimensions", len(shape))
	}
	if base.depth() >= maxDTypeDepth {
		return DType{}, fmt.Errorf("dtype nested deeper than %d: %w", maxDTypeDepth, ErrUnsupported)
	}
	n := int64(base.ItemSize)
	var b strings.Builder
	b.WriteString("a")
	for i, s := range shape {
		if s < 0 {
			return DType{}, fmt.Errorf("subarray dtype of shape %v", shape)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s))
		n *= int64(s)
		if n > 1<<31-1 {
			return DType{}, fmt.Errorf("subarray dtype of shape %v: too large", shape)
		}
	}
	sub := base.code()
	fmt.Fprintf(&b, ":%d:%s", len(sub), sub)
	if n == 0 {
		return DType{}, fmt.Errorf("subarray dtype of shape %v holds nothing: %w", shape, ErrUnsupported)
	}
	return DType{ByteOrder: '|', Kind: 'V', ItemSize: int(n), layout: b.String()}, nil
}

// code is d in the layout syntax: "p" + dtype.str for a plain dtype, the
// layout itself otherwise.
func (d DType) code() string {
	if d.layout != "" {
		return d.layout
	}
	return "p" + d.String()
}

// Fields returns the fields of a structured dtype in order, nil for other
// dtypes.
func (d DType) Fields() []Field {
	if !strings.HasPrefix(d.layout, "s") {
		return nil
	}
	fs, _, _, _ := parseStructLayout(d.layout)
	return fs
}

// Aligned reports numpy's isalignedstruct: a structured dtype made with
// align=True.
func (d DType) Aligned() bool { return strings.HasPrefix(d.layout, "sa") }

// SubArray returns the base dtype and shape of a subarray dtype; ok is
// false for other dtypes.
func (d DType) SubArray() (base DType, shape []int, ok bool) {
	if !strings.HasPrefix(d.layout, "a") {
		return DType{}, nil, false
	}
	rest := d.layout[1:]
	i := strings.IndexByte(rest, ':')
	if i < 0 {
		return DType{}, nil, false
	}
	for _, p := range strings.Split(rest[:i], ",") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return DType{}, nil, false
		}
		shape = append(shape, n)
	}
	sub, _, err := takeCode(rest[i+1:])
	if err != nil {
		return DType{}, nil, false
	}
	base, err = decodeCode(sub)
	return base, shape, err == nil
}

// structured reports whether d has fields.
func (d DType) structured() bool { return strings.HasPrefix(d.layout, "s") }

// depth is how deep d nests dtypes (0 for a plain dtype).
func (d DType) depth() int {
	switch {
	case d.structured():
		n := 0
		for _, f := range d.Fields() {
			n = max(n, f.DType.depth())
		}
		return n + 1
	case d.layout != "":
		base, _, _ := d.SubArray()
		return base.depth() + 1
	}
	return 0
}

// parseStructLayout decodes "s" + a|p + size + "," + count + "|" + fields.
func parseStructLayout(s string) (fs []Field, size int, aligned bool, err error) {
	bad := errors.New("bad layout")
	if len(s) < 3 || s[0] != 's' {
		return nil, 0, false, bad
	}
	aligned = s[1] == 'a'
	rest := s[2:]
	i := strings.IndexByte(rest, '|')
	c := strings.IndexByte(rest, ',')
	if i < 0 || c < 0 || c > i {
		return nil, 0, false, bad
	}
	size, err1 := strconv.Atoi(rest[:c])
	n, err2 := strconv.Atoi(rest[c+1 : i])
	if err1 != nil || err2 != nil || n < 1 || n > maxFields || size < 1 {
		return nil, 0, false, bad
	}
	rest = rest[i+1:]
	fs = make([]Field, 0, n)
	for range n {
		var name string
		if name, rest, err = takeCode(rest); err != nil {
			return nil, 0, false, err
		}
		j := strings.IndexByte(rest, ':')
		if j < 0 {
			return nil, 0, false, bad
		}
		off, err := strconv.Atoi(rest[:j])
		if err != nil {
			return nil, 0, false, bad
		}
		var sub string
		if sub, rest, err = takeCode(rest[j+1:]); err != nil {
			return nil, 0, false, err
		}
		d, err := decodeCode(sub)
		if err != nil {
			return nil, 0, false, err
		}
		fs = append(fs, Field{Name: name, DType: d, Offset: off})
	}
	return fs, size, aligned, nil
}

// takeCode reads "N:" and the N bytes after it.
func takeCode(s string) (code, rest string, err error) {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return "", "", errors.New("bad layout")
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n < 0 || n > len(s)-i-1 {
		return "", "", errors.New("bad layout")
	}
	return s[i+1 : i+1+n], s[i+1+n:], nil
}

// decodeCode is the inverse of code.
func decodeCode(c string) (DType, error) {
	switch {
	case strings.HasPrefix(c, "p"):
		return parseDType(c[1:])
	case strings.HasPrefix(c, "s"):
		_, size, _, err := parseStructLayout(c)
		if err != nil {
			return DType{}, err
		}
		return DType{ByteOrder: '|', Kind: 'V', ItemSize: size, layout: c}, nil
	case strings.HasPrefix(c, "a"):
		d := DType{ByteOrder: '|', Kind: 'V', layout: c}
		base, shape, ok := d.SubArray()
		if !ok {
			return DType{}, errors.New("bad layout")
		}
		return SubArrayDType(base, shape)
	}
	return DType{}, errors.New("bad layout")
}

// structAlignment is numpy's alignment of a structured or subarray dtype:
// the base's for a subarray; for a structured dtype, the largest of its
// fields' when aligned, else 1.
func (d DType) structAlignment() int {
	if base, _, ok := d.SubArray(); ok {
		return base.alignment()
	}
	if !d.Aligned() {
		return 1
	}
	a := 1
	for _, f := range d.Fields() {
		a = max(a, f.DType.alignment())
	}
	return a
}

// descrText is numpy's dtype.descr of a structured dtype as Python writes
// it, with the padding numpy spells as unnamed void fields:
// [('x', '<f8'), (”, '|V4'), ('y', '<i4', (2,))]; a subarray dtype alone
// as (base, shape). Fields that overlap or come out of order, which descr
// cannot say, give numpy's str(dtype) instead: {'names': [...], 'formats':
// [...], 'offsets': [...], 'itemsize': N} (writeDictForm). Either way
// numpy reads the text back as the dtype: descr_to_dtype of a list,
// numpy.dtype of a dict.
func (d DType) descrText() string {
	var b strings.Builder
	d.writeDescr(&b, false)
	return b.String()
}

// writeDescr writes the descr list (or numpy's dict form, see
// writeDictForm); strStyle spells byte-order-less dtypes as str(dtype)
// does ('u1', not descr's '|u1'), as numpy does inside its dict form.
func (d DType) writeDescr(b *strings.Builder, strStyle bool) {
	if base, shape, ok := d.SubArray(); ok {
		b.WriteString("(")
		base.writeDescrItem(b, strStyle)
		b.WriteString(", " + pyTuple(shape) + ")")
		return
	}
	if !d.structured() {
		b.WriteString(strconv.Quote(d.String()))
		return
	}
	pos := 0
	overlap := false
	for _, f := range d.Fields() {
		overlap = overlap || f.Offset < pos
		pos = max(pos, f.Offset+f.DType.ItemSize)
	}
	if overlap {
		// numpy's descr cannot say fields that overlap or come out of
		// order (dtype.descr raises): numpy's str(dtype) then.
		d.writeDictForm(b)
		return
	}
	b.WriteByte('[')
	pos = 0
	first := true
	sep := func() {
		if !first {
			b.WriteString(", ")
		}
		first = false
	}
	for _, f := range d.Fields() {
		if f.Offset > pos {
			sep()
			fmt.Fprintf(b, "('', '|V%d')", f.Offset-pos)
		}
		sep()
		b.WriteString("(" + pyrepr.Str(f.Name) + ", ")
		if base, shape, ok := f.DType.SubArray(); ok {
			base.writeDescrItem(b, strStyle)
			b.WriteString(", " + pyTuple(shape))
		} else {
			f.DType.writeDescrItem(b, strStyle)
		}
		b.WriteString(")")
		pos = f.Offset + f.DType.ItemSize
	}
	if d.ItemSize > pos {
		sep()
		fmt.Fprintf(b, "('', '|V%d')", d.ItemSize-pos)
	}
	b.WriteByte(']')
}

// writeDictForm writes numpy's str(dtype) of a structured dtype whose
// fields overlap or are out of order, which numpy.dtype(ast.literal_eval(s))
// reads back exactly: {'names': [...], 'formats': [...], 'offsets': [...],
// 'itemsize': N[, 'aligned': True]}.
func (d DType) writeDictForm(b *strings.Builder) {
	const strStyle = true
	fields := d.Fields()
	b.WriteString("{'names': [")
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pyrepr.Str(f.Name))
	}
	b.WriteString("], 'formats': [")
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		if base, shape, ok := f.DType.SubArray(); ok {
			b.WriteString("(")
			base.writeDescrItem(b, strStyle)
			b.WriteString(", " + pyTuple(shape) + ")")
		} else {
			f.DType.writeDescrItem(b, strStyle)
		}
	}
	b.WriteString("], 'offsets': [")
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(f.Offset))
	}
	fmt.Fprintf(b, "], 'itemsize': %d", d.ItemSize)
	if d.Aligned() {
		b.WriteString(", 'aligned': True")
	}
	b.WriteByte('}')
}

// writeDescrItem writes a field's dtype: '<f8' in Python quotes, or a
// nested list.
func (d DType) writeDescrItem(b *strings.Builder, strStyle bool) {
	if d.structured() {
		d.writeDescr(b, strStyle)
		return
	}
	t := d.String()
	if strStyle {
		t = strings.TrimPrefix(t, "|")
	}
	b.WriteString("'" + t + "'")
}

func pyTuple(s []int) string {
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	if len(s) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Equal reports whether d and o are the same dtype (as d == o; for
// comparison libraries such as go-cmp, which use an Equal method).
func (d DType) Equal(o DType) bool { return d == o }
