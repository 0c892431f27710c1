//go:build !nohdf5

package convert

import (
	"encoding/binary"
	"fmt"

	"mmpbridge/bridge"
)

// Numpy scalars and arrays inside the "__attrs__" value. bridge.File.Put
// encodes plain Go values only: it has no form for a *bridge.Scalar or an
// *bridge.Array inside a generic value, but it copies a bridge.Object's
// complete pickle. This file writes such pickles the way numpy does
// (protocol 4, numpy 1's module names, which numpy 2 loads too):
//
//	numpy.core.multiarray.scalar(numpy.dtype(descr, False, True) + state, raw)
//	numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b') + BUILD (1, shape, dtype, False, raw)
//
// and the bridge reads them back as *bridge.Scalar and *bridge.Array, so the
// attributes keep their exact dtype through mmappickle.

// attrArray is an array attribute read from HDF5: C-ordered raw elements
// of dt.
type attrArray struct {
	dt    bridge.DType
	shape []int
	raw   []byte
}

// pickleAttrValues replaces, in a value made of Dicts, lists and leaves,
// every *bridge.Scalar and *attrArray by the bridge.Object of its numpy
// pickle.
func pickleAttrValues(v any) (any, error) {
	switch x := v.(type) {
	case bridge.Dict:
		out := make(bridge.Dict, len(x))
		for i, it := range x {
			pv, err := pickleAttrValues(it.Value)
			if err != nil {
				return nil, err
			}
			out[i] = bridge.DictItem{Key: it.Key, Value: pv}
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			pe, err := pickleAttrValues(e)
			if err != nil {
				return nil, err
			}
			out[i] = pe
		}
		return out, nil
	case *bridge.Scalar:
		p, err := scalarPickle(x.DType, x.Raw)
		if err != nil {
			return nil, err
		}
		return bridge.Object{Module: "numpy.core.multiarray", Name: "scalar", Pickle: p}, nil
	case *attrArray:
		p, err := arrayPickle(x.dt, x.shape, x.raw)
		if err != nil {
			return nil, err
		}
		return bridge.Object{Module: "numpy", Name: "ndarray", Pickle: p}, nil
	}
	return v, nil
}

type pickler struct{ b []byte }

const (
	pkMark        = '('
	pkStop        = '.'
	pkBinInt      = 'J'
	pkBinInt1     = 'K'
	pkBinInt2     = 'M'
	pkNone        = 'N'
	pkReduce      = 'R'
	pkBuild       = 'b'
	pkTuple       = 't'
	pkEmptyTuple  = ')'
	pkEmptyDict   = '}'
	pkShortBytes  = 'C'
	pkBinBytes    = 'B'
	pkProto       = 0x80
	pkTuple1      = 0x85
	pkTuple2      = 0x86
	pkTuple3      = 0x87
	pkNewTrue     = 0x88
	pkNewFalse    = 0x89
	pkLong1       = 0x8a
	pkShortUni    = 0x8c
	pkBinUnicode  = 'X'
	pkBinBytes8   = 0x8e
	pkStackGlobal = 0x93
)

func (p *pickler) op(b ...byte) { p.b = append(p.b, b...) }

func (p *pickler) str(s string) {
	if len(s) < 256 {
		p.op(pkShortUni, byte(len(s)))
	} else {
		p.op(pkBinUnicode)
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(s)))
	}
	p.b = append(p.b, s...)
}

func (p *pickler) bytes(b []byte) {
	switch {
	case len(b) < 256:
		p.op(pkShortBytes, byte(len(b)))
	case uint64(len(b)) <= 0xffffffff:
		p.op(pkBinBytes)
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(b)))
	default:
		p.op(pkBinBytes8)
		p.b = binary.LittleEndian.AppendUint64(p.b, uint64(len(b)))
	}
	p.b = append(p.b, b...)
}

func (p *pickler) int(n int64) {
	switch {
	case n >= 0 && n < 256:
		p.op(pkBinInt1, byte(n))
	case n >= 0 && n < 65536:
		p.op(pkBinInt2)
		p.b = binary.LittleEndian.AppendUint16(p.b, uint16(n))
	case n >= -1<<31 && n < 1<<31:
		p.op(pkBinInt)
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(int32(n)))
	default:
		p.op(pkLong1, 8)
		p.b = binary.LittleEndian.AppendUint64(p.b, uint64(n))
	}
}

func (p *pickler) global(module, name string) {
	p.str(module)
	p.str(name)
	p.op(pkStackGlobal)
}

// dtype writes numpy.dtype(descr, False, True) and its BUILD state.
func (p *pickler) dtype(d bridge.DType) error {
	descr := fmt.Sprintf("%c%d", d.Kind, d.ItemSize)
	elsize, align, version := int64(-1), int64(-1), int64(3)
	switch d.Kind {
	case 'b', 'i', 'u', 'f', 'c':
	case 'S', 'V':
		elsize, align = int64(d.ItemSize), 1
	case 'M', 'm':
		descr, version = string(d.Kind)+"8", 4
	default:
		return fmt.Errorf("dtype %s has no numpy scalar pickle here", d)
	}
	if d.String() == "" || (d.Kind != 'M' && d.Kind != 'm' && d.Unit != "") {
		return fmt.Errorf("dtype %s has no numpy scalar pickle here", d)
	}
	p.global("numpy", "dtype")
	p.str(descr)
	p.op(pkNewFalse, pkNewTrue, pkTuple3, pkReduce, pkMark)
	p.int(version)
	p.str(string(d.ByteOrder))
	p.op(pkNone, pkNone, pkNone)
	p.int(elsize)
	p.int(align)
	p.int(0)
	if version == 4 {
		unit, count := d.Unit, int64(d.UnitCount)
		if unit == "" {
			unit, count = "generic", 1
		}
		p.op(pkEmptyDict, pkMark)
		p.bytes([]byte(unit))
		p.int(count)
		p.int(1)
		p.int(1)
		p.op(pkTuple, pkTuple2)
	}
	p.op(pkTuple, pkBuild)
	return nil
}

// scalarPickle is the complete pickle of the numpy scalar of dtype d made
// of raw (d.ItemSize bytes in d's byte order).
func scalarPickle(d bridge.DType, raw []byte) ([]byte, error) {
	if len(raw) != d.ItemSize {
		return nil, fmt.Errorf("a numpy scalar of dtype %s from %d bytes", d, len(raw))
	}
	p := &pickler{}
	p.op(pkProto, 4)
	p.global("numpy.core.multiarray", "scalar")
	if err := p.dtype(d); err != nil {
		return nil, err
	}
	p.bytes(raw)
	p.op(pkTuple2, pkReduce, pkStop)
	return p.b, nil
}

// arrayPickle is the complete pickle of a C-ordered numpy array.
func arrayPickle(d bridge.DType, shape []int, raw []byte) ([]byte, error) {
	n := int64(d.ItemSize)
	for _, s := range shape {
		n *= int64(s)
	}
	if int64(len(raw)) != n {
		return nil, fmt.Errorf("an array of dtype %s and shape %v from %d bytes", d, shape, len(raw))
	}
	p := &pickler{}
	p.op(pkProto, 4)
	p.global("numpy.core.multiarray", "_reconstruct")
	p.global("numpy", "ndarray")
	p.int(0)
	p.op(pkTuple1)
	p.bytes([]byte("b"))
	p.op(pkTuple3, pkReduce, pkMark)
	p.int(1)
	switch len(shape) {
	case 0:
		p.op(pkEmptyTuple)
	default:
		p.op(pkMark)
		for _, s := range shape {
			p.int(int64(s))
		}
		p.op(pkTuple)
	}
	if err := p.dtype(d); err != nil {
		return nil, err
	}
	p.op(pkNewFalse)
	p.bytes(raw)
	p.op(pkTuple, pkBuild, pkStop)
	return p.b, nil
}
