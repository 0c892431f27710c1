package bridge

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"

	"mmpbridge/pyval"
)

// Scalar is a numpy scalar: numpy.float32(1.5), numpy.datetime64(...),
// numpy.str_('a'). Raw holds its DType.ItemSize bytes in DType's byte
// order.
type Scalar struct {
	DType DType
	Raw   []byte
}

// Value returns the scalar as a Go value: bool, int64 (signed integers,
// and datetime64/timedelta64 counts of DType.Unit), uint64, float64 (float16,
// float32 and float64), complex128, string (str_, trailing NULs dropped as
// numpy does), []byte (bytes_ without trailing NULs, void); nil for long
// doubles, which Go has no type for.
func (s *Scalar) Value() any {
	d, b := s.DType, s.Raw
	if len(b) != d.ItemSize {
		return nil
	}
	be := d.ByteOrder == '>'
	switch d.Kind {
	case 'b':
		return b[0] != 0
	case 'i', 'M', 'm':
		u := word(b, be)
		if n := 8 * len(b); n < 64 && u&(1<<(n-1)) != 0 {
			u |= ^uint64(0) << n
		}
		return int64(u)
	case 'u':
		return word(b, be)
	case 'f':
		switch len(b) {
		case 2:
			return halfToFloat(uint16(word(b, be)))
		case 4:
			return float64(math.Float32frombits(uint32(word(b, be))))
		case 8:
			return math.Float64frombits(word(b, be))
		}
	case 'c':
		switch len(b) {
		case 8:
			return complex(float64(math.Float32frombits(uint32(word(b[:4], be)))), float64(math.Float32frombits(uint32(word(b[4:], be)))))
		case 16:
			return complex(math.Float64frombits(word(b[:8], be)), math.Float64frombits(word(b[8:], be)))
		}
	case 'U':
		t, err := s.text()
		if err != nil {
			return nil
		}
		return t
	case 'S':
		return bytes.TrimRight(b, "\x00")
	case 'V':
		return b
	}
	return nil
}

// text decodes a str_ scalar's UTF-32, trailing NULs dropped.
func (s *Scalar) text() (string, error) {
	b := s.Raw
	var out []byte
	end := len(b)
	for end >= 4 && binary.LittleEndian.Uint32(b[end-4:end]) == 0 {
		end -= 4
	}
	for i := 0; i+4 <= end; i += 4 {
		var r uint32
		if s.DType.ByteOrder == '>' {
			r = binary.BigEndian.Uint32(b[i:])
		} else {
			r = binary.LittleEndian.Uint32(b[i:])
		}
		if r > 0x10ffff {
			return "", fmt.Errorf("character U+%x is not in range [U+0000; U+10ffff]", r)
		}
		out = appendCodePoint(out, rune(r))
	}
	return string(out), nil
}

// word reads an unsigned integer of up to 8 bytes.
func word(b []byte, bigEndian bool) uint64 {
	var u uint64
	for i := range min(len(b), 8) {
		if bigEndian {
			u = u<<8 | uint64(b[i])
		} else {
			u |= uint64(b[i]) << (8 * i)
		}
	}
	return u
}

// halfToFloat converts an IEEE 754 binary16 value.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}

// toGo converts what the machine built into Go values. Nodes reached twice
// (through the memo) convert to one shared Go value; a container holding
// itself is an error, and so is a value whose expansion — every use of a
// shared node counted, as a renderer would write it — passes
// Limits.MaxValueBytes.
type toGo struct {
	m       *machine
	done    map[ref]converted
	busy    map[ref]bool
	src     *source
	raw     []byte // the value's pickle, for a top-level Object
	expand  int64
	foreign int // Objects made by globals outside the allow-list
}

type converted struct {
	v    any
	size int64 // the expansion of the value
}

func (c *toGo) value(r ref, depth int) (any, error) {
	cv, err := c.node(r, depth)
	if err != nil {
		return nil, err
	}
	return cv.v, nil
}

func (c *toGo) node(r ref, depth int) (converted, error) {
	if cv, ok := c.done[r]; ok {
		return cv, c.count(r, cv.size) // a shared part, counted again
	}
	if c.busy[r] {
		return converted{}, refuse(c.m.at(r).off, "a container holds itself (pickle.load makes a cycle, which Go values cannot hold)")
	}
	switch c.m.at(r).kind {
	case kList, kTuple, kSet, kFrozenSet, kDict, kODict:
		if depth >= c.m.lim.MaxDepth {
			return converted{}, limitErr(c.m.at(r).off, "containers nested deeper than %d", c.m.lim.MaxDepth)
		}
	}
	c.busy[r] = true
	before := c.expand
	cv, err := c.build(r, depth)
	delete(c.busy, r)
	if err != nil {
		return converted{}, err
	}
	c.done[r] = cv
	// The parts were counted as they were converted: count the rest.
	return cv, c.count(r, cv.size-(c.expand-before))
}

func (c *toGo) count(r ref, n int64) error {
	if c.expand += n; c.expand > c.m.lim.MaxValueBytes {
		return limitErr(c.m.at(r).off, "value expands to more than %d bytes (shared parts counted at each use)", c.m.lim.MaxValueBytes)
	}
	return nil
}

func (c *toGo) build(r ref, depth int) (converted, error) {
	m := c.m
	nd := m.at(r)
	switch nd.kind {
	case kNone:
		return converted{nil, 8}, nil
	case kBool:
		return converted{nd.i != 0, 8}, nil
	case kInt:
		v, _ := m.intOf(r)
		if v.big != nil {
			return converted{v.big, 8 + int64(len(v.big.Bits()))*8}, nil
		}
		return converted{v.small, 8}, nil
	case kFloat:
		return converted{m.floatOf(r), 8}, nil
	case kComplex:
		return converted{nd.x.(complex128), 16}, nil
	case kStr:
		s, _ := m.str(r)
		return converted{s, 8 + int64(len(s))}, nil
	case kBytes:
		b, _ := m.bytesOf(r)
		return converted{bytes.Clone(b), 8 + int64(len(b))}, nil
	case kByteArray:
		b, _ := m.bytesOf(r)
		return converted{pyval.ByteArray(bytes.Clone(b)), 8 + int64(len(b))}, nil
	case kScalar:
		s := *nd.x.(*Scalar)
		return converted{s, 16 + int64(len(s.Raw))}, nil
	case kDType:
		return converted{nd.x.(DType), 16}, nil
	case kArray, kFromString:
		a := *nd.x.(*Array)
		a.src = c.src
		return converted{&a, 64}, nil
	case kMasked:
		mk := *nd.x.(*Masked)
		d, k := *mk.Data, *mk.Mask
		d.src, k.src = c.src, c.src
		mk.Data, mk.Mask = &d, &k
		if f, ok := mk.Fill.(*Array); ok {
			fc := *f
			if fc.src == nil { // a converted fill holds its own bytes
				fc.src = c.src
			}
			mk.Fill = &fc
		}
		return converted{&mk, 128}, nil
	case kList, kTuple, kSet, kFrozenSet:
		if nd.flags&fNoDedup != 0 {
			return c.opaque(nd, "builtins", nd.kind.String(), "holds items whose Python equality is not modelled (numpy datetimes, ranges, dtypes or undecoded objects)"), nil
		}
		out := make([]any, len(nd.items))
		size := int64(8 + 8*len(nd.items))
		for i, it := range nd.items {
			cv, err := c.node(it, depth+1)
			if err != nil {
				return converted{}, err
			}
			out[i] = cv.v
			size += cv.size
		}
		switch nd.kind {
		case kTuple:
			return converted{pyval.Tuple(out), size}, nil
		case kSet:
			return converted{pyval.Set(out), size}, nil
		case kFrozenSet:
			return converted{pyval.FrozenSet(out), size}, nil
		}
		return converted{out, size}, nil
	case kDict, kODict:
		module, name := "builtins", "dict"
		if nd.kind == kODict {
			module, name = "collections", "OrderedDict"
		}
		if nd.flags&fNoDedup != 0 {
			return c.opaque(nd, module, name, "has keys whose Python equality is not modelled (numpy datetimes, ranges, dtypes or undecoded objects)"), nil
		}
		d := make(pyval.Dict, len(nd.items)/2)
		size := int64(8 + 16*len(d))
		for i := range d {
			k, err := c.node(nd.items[2*i], depth+1)
			if err != nil {
				return converted{}, err
			}
			v, err := c.node(nd.items[2*i+1], depth+1)
			if err != nil {
				return converted{}, err
			}
			d[i] = pyval.DictItem{Key: k.v, Value: v.v}
			size += k.size + v.size
		}
		if nd.kind == kODict {
			return converted{pyval.OrderedDict(d), size}, nil
		}
		return converted{d, size}, nil
	case kSlice, kRange:
		return c.opaque(nd, "builtins", nd.kind.String(), "ranges and slices are not decoded"), nil
	case kGlobal:
		n := nd.x.([2]string)
		return c.opaque(nd, n[0], n[1], "a class or function itself"), nil
	case kDTypeNew:
		return c.opaque(nd, "numpy", "dtype", "a dtype whose state was never set"), nil
	case kArrayNew:
		return c.opaque(nd, "numpy", "ndarray", "an array whose state was never set"), nil
	case kMaskedNew:
		return c.opaque(nd, "numpy.ma", "MaskedArray", "an array whose state was never set"), nil
	case kOpaque:
		op := nd.x.(*opaque)
		if op.foreign {
			c.foreign++
		}
		return c.opaque(nd, op.module, op.name, op.why), nil
	}
	return converted{}, refuse(nd.off, "cannot decode a %s", nd.kind)
}

func (c *toGo) opaque(nd *node, module, name, why string) converted {
	return converted{pyval.Object{Module: module, Name: name, Why: why}, 64}
}

// goValue converts the root of a value; a root that is undecoded keeps the
// value's pickle so that it can be copied verbatim.
func (m *machine) goValue(root ref, src *source, raw func() ([]byte, error)) (any, error) {
	c := &toGo{m: m, done: map[ref]converted{}, busy: map[ref]bool{}, src: src}
	v, err := c.value(root, 0)
	if err != nil {
		return nil, err
	}
	if f := m.foreign; f != nil && c.foreign == 0 {
		// The import happened and its result was dropped: pickle.load
		// runs it (an import runs code, and may fail), the value shown
		// would not say so.
		v = pyval.Object{Module: f.module, Name: f.name,
			Why: "pickle.load imports it while building this value (and discards it): the import runs code and may fail"}
	}
	if o, ok := v.(pyval.Object); ok {
		p, err := raw()
		if err != nil {
			return nil, err
		}
		o.Pickle = p
		v = o
	}
	return v, nil
}

// isBigInt tells a *big.Int outside the int64 range.
func isBigInt(v any) bool {
	b, ok := v.(*big.Int)
	return ok && !b.IsInt64()
}
