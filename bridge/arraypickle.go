package bridge

import (
	"encoding/binary"
	"fmt"
)

// This file recognises the two array encodings without running anything: a
// small stack machine that understands just the opcodes and numpy globals
// the encodings use. Anything else means "not an array" and the value is
// decoded as a generic value instead.

type (
	symMark   struct{}
	symNone   struct{}
	symDict   struct{}
	symBool   bool
	symInt    int64
	symStr    string
	symTuple  []any
	symGlobal struct{ module, name string }
	symBytes  struct {
		off, n int64
		small  []byte // the bytes, when short
	}
	// Objects made by REDUCE and completed by BUILD. id (the offset of the
	// REDUCE) tells apart objects that are otherwise equal, so that BUILD
	// completes the memo entries of that object only.
	symDTypeNew struct {
		descr string
		id    int64
	}
	symDType      struct{ d DType }
	symNDNew      struct{ id int64 }
	symMANew      struct{ id int64 }
	symFromString struct {
		b symBytes
		d DType
	}
)

// arrayGlobals are the globals the array encodings use, keyed by
// "module name". numpy 2 names its core modules numpy._core.
var arrayGlobals = map[string]string{
	"numpy.core.multiarray _reconstruct":  "reconstruct",
	"numpy._core.multiarray _reconstruct": "reconstruct",
	"numpy.core.multiarray fromstring":    "fromstring",
	"numpy._core.multiarray fromstring":   "fromstring",
	"numpy.core.fromnumeric reshape":      "reshape",
	"numpy._core.fromnumeric reshape":     "reshape",
	"numpy ndarray":                       "ndarray",
	"numpy dtype":                         "dtype",
	"numpy.ma.core _mareconstruct":        "mareconstruct",
	"numpy.ma.core MaskedArray":           "MaskedArray",
	"numpy.ma MaskedArray":                "MaskedArray", // numpy 2's pickle names the public module
}

const smallBytes = 64

var errNotArray = fmt.Errorf("not an array")

// parseArrayValue recognises an array or masked array pickled in
// [off, off+n). It returns (nil, nil) when the value is something else, and
// a FormatError when it is an array whose description is inconsistent.
func parseArrayValue(src *source, off, n int64) (any, error) {
	v, err := evalArray(src, off, n)
	if err == errNotArray {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case *Array:
		v.src = src
	case *Masked:
		v.Data.src, v.Mask.src = src, src
		if f, ok := v.Fill.(*Array); ok {
			f.src = src
		}
	}
	return v, nil
}

func evalArray(src *source, off, n int64) (any, error) {
	sc := src.scanner(off, off+n)
	var stack []any
	var marks []int
	memo := map[int64]any{}
	// BUILD completes an object in place: the memo entries holding it
	// (BINPUT after REDUCE, as pickle writes it) must then give the
	// completed object, as BINGET of a dtype shared by a masked array's data
	// and fill value does. building maps an object made by REDUCE to the
	// memo indices that hold it.
	building := map[any][]int64{}
	pop := func() (any, bool) {
		if len(stack) == 0 || (len(marks) > 0 && marks[len(marks)-1] == len(stack)) {
			return nil, false
		}
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		return v, true
	}
	const maxOps = 4096 // the encodings take a few dozen opcodes
	for ops := 0; !sc.done(); ops++ {
		if ops > maxOps {
			return nil, errNotArray
		}
		o, err := sc.next()
		if err != nil {
			// Bytes that are not a pickle (an invalid opcode, a length
			// running past the entry) are malformed whatever the value is.
			return nil, err
		}
		switch o.Code {
		case opMark:
			marks = append(marks, len(stack))
		case opShortBinUni, opBinUnicode, opBinUnicode8:
			if o.PayloadLen > 1024 {
				return nil, errNotArray
			}
			b, err := src.readAt(o.PayloadOff, o.PayloadLen)
			if err != nil {
				return nil, err
			}
			stack = append(stack, symStr(b))
		case opShortBinBytes, opBinBytes, opBinBytes8:
			sb := symBytes{off: o.PayloadOff, n: o.PayloadLen}
			if o.PayloadLen <= smallBytes {
				b, err := src.readAt(o.PayloadOff, o.PayloadLen)
				if err != nil {
					return nil, err
				}
				sb.small = b
			}
			stack = append(stack, sb)
		case opBinInt1, opBinInt2, opBinInt:
			stack = append(stack, symInt(o.Int))
		case opLong1:
			if o.PayloadLen > 8 {
				return nil, errNotArray
			}
			b, err := src.readAt(o.PayloadOff, o.PayloadLen)
			if err != nil {
				return nil, err
			}
			stack = append(stack, symInt(decodeSmallLong(b)))
		case opNone:
			stack = append(stack, symNone{})
		case opNewTrue, opNewFalse:
			stack = append(stack, symBool(o.Code == opNewTrue))
		case opEmptyTuple:
			stack = append(stack, symTuple{})
		case opEmptyDict:
			stack = append(stack, symDict{})
		case opTuple1, opTuple2, opTuple3:
			k := int(o.Code-opTuple1) + 1
			if len(stack) < k || (len(marks) > 0 && len(stack)-marks[len(marks)-1] < k) {
				return nil, errNotArray
			}
			t := append(symTuple{}, stack[len(stack)-k:]...)
			stack = append(stack[:len(stack)-k], t)
		case opTuple:
			if len(marks) == 0 {
				return nil, errNotArray
			}
			m := marks[len(marks)-1]
			marks = marks[:len(marks)-1]
			t := append(symTuple{}, stack[m:]...)
			stack = append(stack[:m], t)
		case opStackGlobal:
			name, ok1 := pop()
			mod, ok2 := pop()
			ns, ok3 := name.(symStr)
			ms, ok4 := mod.(symStr)
			if !ok1 || !ok2 || !ok3 || !ok4 {
				return nil, errNotArray
			}
			if _, ok := arrayGlobals[string(ms)+" "+string(ns)]; !ok {
				return nil, errNotArray
			}
			stack = append(stack, symGlobal{string(ms), string(ns)})
		case opGlobal:
			if o.PayloadLen > 256 || o.Payload2L > 256 {
				return nil, errNotArray
			}
			m, err := src.readAt(o.PayloadOff, o.PayloadLen)
			if err != nil {
				return nil, err
			}
			nm, err := src.readAt(o.Payload2, o.Payload2L)
			if err != nil {
				return nil, err
			}
			if _, ok := arrayGlobals[string(m)+" "+string(nm)]; !ok {
				return nil, errNotArray
			}
			stack = append(stack, symGlobal{string(m), string(nm)})
		case opBinPut, opLongBinPut, opMemoize:
			if len(stack) == 0 {
				return nil, errNotArray
			}
			idx := o.Int
			if o.Code == opMemoize {
				idx = int64(len(memo))
			}
			v := stack[len(stack)-1]
			memo[idx] = v
			switch v.(type) {
			case symDTypeNew, symNDNew, symMANew:
				building[v] = append(building[v], idx)
			}
		case opBinGet, opLongBinGet:
			v, ok := memo[o.Int]
			if !ok {
				return nil, errNotArray
			}
			stack = append(stack, v)
		case opReduce:
			args, ok1 := pop()
			fn, ok2 := pop()
			t, ok3 := args.(symTuple)
			g, ok4 := fn.(symGlobal)
			if !ok1 || !ok2 || !ok3 || !ok4 {
				return nil, errNotArray
			}
			v, err := reduceArray(arrayGlobals[g.module+" "+g.name], t, o.Off)
			if err != nil {
				return nil, err
			}
			stack = append(stack, v)
		case opBuild:
			state, ok1 := pop()
			obj, ok2 := pop()
			t, ok3 := state.(symTuple)
			if !ok1 || !ok2 || !ok3 {
				return nil, errNotArray
			}
			v, err := buildArray(src, obj, t, o.Off)
			if err != nil {
				return nil, err
			}
			switch obj.(type) { // map keys must be comparable
			case symDTypeNew, symNDNew, symMANew:
				for _, i := range building[obj] {
					if memo[i] == obj {
						memo[i] = v
					}
				}
				delete(building, obj)
			}
			stack = append(stack, v)
		default:
			return nil, errNotArray
		}
	}
	if len(stack) != 1 || len(marks) != 0 {
		return nil, errNotArray
	}
	switch v := stack[0].(type) {
	case *Array, *Masked:
		return v, nil
	}
	return nil, errNotArray
}

func decodeSmallLong(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	var buf [8]byte
	if b[len(b)-1]&0x80 != 0 {
		buf = [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	copy(buf[:], b)
	return int64(binary.LittleEndian.Uint64(buf[:]))
}

func reduceArray(fn string, args symTuple, off int64) (any, error) {
	switch fn {
	case "dtype":
		if len(args) == 3 {
			if s, ok := args[0].(symStr); ok {
				return symDTypeNew{string(s), off}, nil
			}
		}
	case "reconstruct":
		if len(args) == 3 {
			if g, ok := args[0].(symGlobal); ok && g.name == "ndarray" {
				return symNDNew{off}, nil
			}
		}
	case "mareconstruct":
		if len(args) == 4 {
			if g, ok := args[0].(symGlobal); ok && g.name == "MaskedArray" {
				return symMANew{off}, nil
			}
		}
	case "fromstring":
		if len(args) == 2 {
			b, ok1 := args[0].(symBytes)
			s, ok2 := args[1].(symStr)
			if ok1 && ok2 {
				d, err := ParseDType(string(s))
				if err != nil {
					return nil, &FormatError{Offset: off, Msg: fmt.Sprintf("mmappickle array: %v", err), Err: err}
				}
				return symFromString{b, d}, nil
			}
		}
	case "reshape":
		if len(args) == 2 {
			fs, ok1 := args[0].(symFromString)
			shp, ok2 := args[1].(symTuple)
			if ok1 && ok2 {
				shape, err := shapeOf(shp, off)
				if err != nil {
					return nil, err
				}
				a := &Array{DType: fs.d, Shape: shape, Encoding: Mmappickle, Offset: fs.b.off, NBytes: fs.b.n}
				return a, checkArray(a, off)
			}
		}
	case "MaskedArray":
		if len(args) == 2 {
			d, ok1 := args[0].(*Array)
			m, ok2 := args[1].(*Array)
			if ok1 && ok2 {
				return newMasked(d, m, nil, off)
			}
		}
	}
	return nil, errNotArray
}

func newMasked(d, m *Array, fill any, off int64) (*Masked, error) {
	if m.DType.Kind != 'b' {
		return nil, formatErr(off, "masked array: mask has dtype %s, want |b1", m.DType)
	}
	if len(d.Shape) != len(m.Shape) {
		return nil, formatErr(off, "masked array: data shape %v, mask shape %v", d.Shape, m.Shape)
	}
	for i := range d.Shape {
		if d.Shape[i] != m.Shape[i] {
			return nil, formatErr(off, "masked array: data shape %v, mask shape %v", d.Shape, m.Shape)
		}
	}
	return &Masked{Data: d, Mask: m, Fill: fill}, nil
}

func shapeOf(t symTuple, off int64) ([]int, error) {
	if len(t) > 64 {
		return nil, formatErr(off, "array has %d dimensions (numpy allows 64)", len(t))
	}
	shape := make([]int, len(t))
	for i, v := range t {
		n, ok := v.(symInt)
		if !ok {
			return nil, errNotArray
		}
		if n < 0 || int64(n) > 1<<62 {
			return nil, formatErr(off, "array dimension %d is %d", i, n)
		}
		shape[i] = int(n)
	}
	return shape, nil
}

func buildArray(src *source, obj any, state symTuple, off int64) (any, error) {
	switch obj.(type) {
	case symDTypeNew:
		return buildDType(obj.(symDTypeNew).descr, state, off)
	case symNDNew:
		// (version, shape, dtype, is_fortran, rawdata)
		if len(state) != 5 {
			return nil, errNotArray
		}
		a, err := arrayFromState(src, state[1], state[2], state[3], state[4], off)
		if err != nil {
			return nil, err
		}
		return a, nil
	case symMANew:
		// (version, shape, dtype, is_fortran, rawdata, rawmask, fill_value)
		if len(state) != 7 {
			return nil, errNotArray
		}
		a, err := arrayFromState(src, state[1], state[2], state[3], state[4], off)
		if err != nil {
			return nil, err
		}
		mask, ok := state[5].(symBytes)
		if !ok {
			return nil, errNotArray
		}
		m := &Array{DType: DType{ByteOrder: '|', Kind: 'b', ItemSize: 1}, Shape: a.Shape, Fortran: a.Fortran,
			Encoding: Portable, Offset: mask.off, NBytes: mask.n, src: src}
		if err := checkArray(m, off); err != nil {
			return nil, err
		}
		var fill any
		switch f := state[6].(type) {
		case symNone:
		case *Array:
			fill = f
		default:
			return nil, errNotArray
		}
		return newMasked(a, m, fill, off)
	}
	return nil, errNotArray
}

func arrayFromState(src *source, shp, dt, isF, raw any, off int64) (*Array, error) {
	t, ok1 := shp.(symTuple)
	d, ok2 := dt.(symDType)
	f, ok3 := isF.(symBool)
	b, ok4 := raw.(symBytes)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, errNotArray
	}
	shape, err := shapeOf(t, off)
	if err != nil {
		return nil, err
	}
	a := &Array{DType: d.d, Shape: shape, Fortran: bool(f), Encoding: Portable, Offset: b.off, NBytes: b.n, src: src}
	return a, checkArray(a, off)
}

// buildDType applies numpy's dtype state:
// (3, byteorder, subdescr, names, fields, elsize, alignment, flags) or
// (4, ..., flags, metadata) where datetime metadata is ({}, (unit, num, 1, 1)).
func buildDType(descr string, st symTuple, off int64) (any, error) {
	if len(st) != 8 && len(st) != 9 {
		return nil, errNotArray
	}
	order, ok := st[1].(symStr)
	if !ok || len(order) != 1 {
		return nil, errNotArray
	}
	for _, i := range []int{2, 3, 4} { // subarray, names, fields: structured dtypes
		if _, ok := st[i].(symNone); !ok {
			return nil, errNotArray
		}
	}
	elsize, ok := st[5].(symInt)
	if !ok {
		return nil, errNotArray
	}
	unit, count := "", int64(0)
	if len(st) == 9 {
		md, ok := st[8].(symTuple)
		if ok && len(md) == 2 {
			ut, ok := md[1].(symTuple)
			if !ok || len(ut) != 4 {
				return nil, errNotArray
			}
			ub, ok1 := ut[0].(symBytes)
			c, ok2 := ut[1].(symInt)
			if !ok1 || !ok2 || ub.small == nil {
				return nil, errNotArray
			}
			unit, count = string(ub.small), int64(c)
		} else if _, none := st[8].(symNone); !none {
			return nil, errNotArray
		}
	}
	d, err := dtypeFromPickle(descr, order[0], int64(elsize), unit, count)
	if err != nil {
		return nil, &FormatError{Offset: off, Msg: err.Error(), Err: err}
	}
	return symDType{d}, nil
}
