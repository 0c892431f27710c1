package bridge

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"unicode/utf8"

	"mmpbridge/pyval"
)

// maxEncodeDepth is how deeply encodeValue nests containers.
const maxEncodeDepth = 1000

// batchSize is how many items CPython writes per APPENDS, SETITEMS or
// ADDITEMS.
const batchSize = 1000

// encodeValue appends the pickle opcodes of v to buf exactly as CPython's
// pickle.dumps(v, 4) writes them once mmappickle has removed PROTO, FRAME
// and STOP and renumbered the memo from memoStart. It returns the memo index
// the next value starts from.
//
// v is made of nil, bool, Go integers and *big.Int, floats (float32 as
// Python's float), complex numbers, strings (valid UTF-8), []byte, and the
// containers []any (any other slice or array but []byte too), Tuple, Dict,
// maps with string or integer keys (written in sorted key order), Set and
// FrozenSet (in the order given, CPython writes its iteration order),
// ByteArray, Scalar and NDArray (numpy's own pickles of them), and Object
// (its pickle copied with its memo renumbered, see
// renumberMemo). Plain Go values share nothing, so nothing else uses the
// memo; where CPython's pickle shares an object (the same str twice, say)
// it writes BINGET where encodeValue repeats the value, which unpickles the
// same. A NaN keeps its bits (Python's float('nan') is 0x7ff8000000000000,
// Go's math.NaN() 0x7ff8000000000001).
//
// Other Go types, invalid UTF-8, unhashable dict keys or set elements and
// nesting deeper than 1000 containers are errors wrapping ErrUnsupported.
// On error buf is left as it was.
func encodeValue(buf *bytes.Buffer, v any, memoStart int64) (memoEnd int64, err error) {
	e := valueEncoder{buf: buf, memo: memoStart}
	n := buf.Len()
	if err := e.encode(v, 0, false); err != nil {
		buf.Truncate(n)
		return memoStart, err
	}
	return e.memo, nil
}

type valueEncoder struct {
	buf  *bytes.Buffer
	memo int64
}

// encode writes v nested in depth containers; key: v must be hashable.
func (e *valueEncoder) encode(v any, depth int, key bool) error {
	switch v := v.(type) {
	case nil:
		e.buf.WriteByte(opNone)
	case bool:
		if v {
			e.buf.WriteByte(opNewTrue)
		} else {
			e.buf.WriteByte(opNewFalse)
		}
	case int:
		e.int(int64(v))
	case int8:
		e.int(int64(v))
	case int16:
		e.int(int64(v))
	case int32:
		e.int(int64(v))
	case int64:
		e.int(v)
	case uint:
		e.uint(uint64(v))
	case uint8:
		e.int(int64(v))
	case uint16:
		e.int(int64(v))
	case uint32:
		e.int(int64(v))
	case uint64:
		e.uint(v)
	case *big.Int:
		if v == nil {
			return fmt.Errorf("%w: nil *big.Int", ErrUnsupported)
		}
		return e.bigInt(v)
	case float32:
		e.float(float64(v))
	case float64:
		e.float(v)
	case complex64:
		e.complex(complex128(v))
	case complex128:
		e.complex(v)
	case string:
		return e.str(v)
	case []byte:
		e.bytes(v)
	case pyval.ByteArray:
		if key {
			return errUnhashable("bytearray")
		}
		e.global("builtins", "bytearray")
		if len(v) == 0 {
			e.buf.WriteByte(opEmptyTuple)
		} else {
			e.bytes(v)
			e.buf.WriteByte(opTuple1)
		}
		e.buf.WriteByte(opReduce)
	case pyval.Tuple:
		return e.tuple(v, depth, key)
	case []any:
		return e.list(len(v), func(i int) any { return v[i] }, depth, key)
	case pyval.Dict:
		return e.dict(len(v), func(i int) (any, any) { return v[i].Key, v[i].Value }, depth, key, false)
	case pyval.OrderedDict:
		return e.dict(len(v), func(i int) (any, any) { return v[i].Key, v[i].Value }, depth, key, true)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return e.dict(len(keys), func(i int) (any, any) { return keys[i], v[keys[i]] }, depth, key, false)
	case pyval.Set:
		return e.set(v, depth, key)
	case pyval.FrozenSet:
		return e.frozenSet(v, depth)
	case pyval.Object:
		return e.object(v)
	case *pyval.Object:
		return e.object(*v)
	case Scalar:
		return e.scalar(&v)
	case *Scalar:
		return e.scalar(v)
	case NDArray:
		return e.ndarray(&v, key)
	case *NDArray:
		return e.ndarray(v, key)
	default:
		return e.reflect(reflect.ValueOf(v), depth, key)
	}
	return nil
}

// reflect encodes the values of other Go types by their kind.
func (e *valueEncoder) reflect(rv reflect.Value, depth int, key bool) error {
	switch rv.Kind() {
	case reflect.Bool:
		return e.encode(rv.Bool(), depth, key)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.int(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.uint(rv.Uint())
	case reflect.Float32, reflect.Float64:
		e.float(rv.Float())
	case reflect.Complex64, reflect.Complex128:
		e.complex(rv.Complex())
	case reflect.String:
		return e.str(rv.String())
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
			e.bytes(rv.Bytes())
			return nil
		}
		return e.list(rv.Len(), func(i int) any { return rv.Index(i).Interface() }, depth, key)
	case reflect.Map:
		keys := rv.MapKeys()
		switch rv.Type().Key().Kind() {
		case reflect.String:
			slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.String(), b.String()) })
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.Int(), b.Int()) })
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.Uint(), b.Uint()) })
		default:
			return fmt.Errorf("%w: cannot pickle a map with %s keys", ErrUnsupported, rv.Type().Key())
		}
		return e.dict(len(keys), func(i int) (any, any) {
			return keys[i].Interface(), rv.MapIndex(keys[i]).Interface()
		}, depth, key, false)
	default:
		if !rv.IsValid() {
			return e.encode(nil, depth, key)
		}
		return fmt.Errorf("%w: cannot pickle Go type %s", ErrUnsupported, rv.Type())
	}
	return nil
}

func errUnhashable(what string) error {
	return fmt.Errorf("%w: unhashable %s as a dict key or set element", ErrUnsupported, what)
}

// open checks the nesting of a container about to be written.
func (e *valueEncoder) open(depth int) error {
	if depth >= maxEncodeDepth {
		return fmt.Errorf("%w: containers nested deeper than %d", ErrUnsupported, maxEncodeDepth)
	}
	return nil
}

// int writes BININT1, BININT2, BININT or LONG1, as CPython picks them.
func (e *valueEncoder) int(v int64) {
	switch {
	case v >= 0 && v <= math.MaxUint8:
		e.buf.Write([]byte{opBinInt1, byte(v)})
	case v >= 0 && v <= math.MaxUint16:
		e.buf.Write([]byte{opBinInt2, byte(v), byte(v >> 8)})
	case v >= math.MinInt32 && v <= math.MaxInt32:
		e.buf.WriteByte(opBinInt)
		e.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(v)))
	default:
		e.long(binary.LittleEndian.AppendUint64(nil, uint64(v)))
	}
}

func (e *valueEncoder) uint(v uint64) {
	if v <= math.MaxInt64 {
		e.int(int64(v))
		return
	}
	e.long(append(binary.LittleEndian.AppendUint64(nil, v), 0))
}

func (e *valueEncoder) bigInt(v *big.Int) error {
	if v.IsInt64() {
		e.int(v.Int64())
		return nil
	}
	// Little-endian two's complement in len(abs)+1 bytes, then trimmed.
	n := len(v.Bytes()) + 1
	t := new(big.Int).Set(v)
	if v.Sign() < 0 {
		t.Add(t, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	b := t.FillBytes(make([]byte, n))
	slices.Reverse(b)
	if len(b) > math.MaxInt32 {
		return fmt.Errorf("%w: int too large to pickle", ErrUnsupported)
	}
	e.long(b)
	return nil
}

// long writes LONG1 or LONG4 with b, little-endian two's complement, cut to
// the fewest bytes that keep its value.
func (e *valueEncoder) long(b []byte) {
	for len(b) > 1 {
		top, next := b[len(b)-1], b[len(b)-2]&0x80
		if !(top == 0 && next == 0 || top == 0xff && next != 0) {
			break
		}
		b = b[:len(b)-1]
	}
	if len(b) < 256 {
		e.buf.Write([]byte{opLong1, byte(len(b))})
	} else {
		e.buf.WriteByte(opLong4)
		e.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(b))))
	}
	e.buf.Write(b)
}

// float writes BINFLOAT, the bits of f big-endian.
func (e *valueEncoder) float(f float64) {
	e.buf.WriteByte(opBinFloat)
	e.buf.Write(binary.BigEndian.AppendUint64(nil, math.Float64bits(f)))
}

// complex writes builtins.complex(re, im), as complex.__reduce__ gives it.
func (e *valueEncoder) complex(c complex128) {
	e.global("builtins", "complex")
	e.float(real(c))
	e.float(imag(c))
	e.buf.Write([]byte{opTuple2, opReduce})
}

func (e *valueEncoder) global(module, name string) {
	e.str(module)
	e.str(name)
	e.buf.WriteByte(opStackGlobal)
}

// str writes SHORT_BINUNICODE, BINUNICODE or BINUNICODE8.
func (e *valueEncoder) str(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: string %.40q is not valid UTF-8", ErrUnsupported, s)
	}
	e.header(len(s), opShortBinUni, opBinUnicode, opBinUnicode8)
	e.buf.WriteString(s)
	return nil
}

// bytes writes SHORT_BINBYTES, BINBYTES or BINBYTES8.
func (e *valueEncoder) bytes(b []byte) {
	e.header(len(b), opShortBinBytes, opBinBytes, opBinBytes8)
	e.buf.Write(b)
}

// header writes the opcode and length of an n-byte payload.
func (e *valueEncoder) header(n int, short, mid, long byte) {
	switch {
	case n < 256:
		e.buf.Write([]byte{short, byte(n)})
	case uint64(n) <= math.MaxUint32:
		e.buf.WriteByte(mid)
		e.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(n)))
	default:
		e.buf.WriteByte(long)
		e.buf.Write(binary.LittleEndian.AppendUint64(nil, uint64(n)))
	}
}

func (e *valueEncoder) tuple(t pyval.Tuple, depth int, key bool) error {
	if err := e.open(depth); err != nil {
		return err
	}
	if len(t) == 0 {
		e.buf.WriteByte(opEmptyTuple)
		return nil
	}
	if len(t) > 3 {
		e.buf.WriteByte(opMark)
	}
	for _, x := range t {
		if err := e.encode(x, depth+1, key); err != nil {
			return err
		}
	}
	if len(t) > 3 {
		e.buf.WriteByte(opTuple)
	} else {
		e.buf.WriteByte(opTuple1 + byte(len(t)-1))
	}
	return nil
}

// list writes EMPTY_LIST, then one item and APPEND, or batches of MARK,
// items, APPENDS (CPython's batch_list_exact).
func (e *valueEncoder) list(n int, item func(int) any, depth int, key bool) error {
	if key {
		return errUnhashable("list")
	}
	if err := e.open(depth); err != nil {
		return err
	}
	e.buf.WriteByte(opEmptyList)
	return e.batches(n, n == 1, opAppend, opAppends, func(i int) error {
		return e.encode(item(i), depth+1, false)
	})
}

// dict writes EMPTY_DICT (or an empty OrderedDict), then one pair and
// SETITEM, or batches of MARK,
// pairs, SETITEMS.
func (e *valueEncoder) dict(n int, item func(int) (any, any), depth int, key, ordered bool) error {
	if key {
		return errUnhashable("dict")
	}
	if err := e.open(depth); err != nil {
		return err
	}
	if ordered { // collections.OrderedDict(), as its __reduce__ gives it
		e.global("collections", "OrderedDict")
		e.buf.Write([]byte{opEmptyTuple, opReduce})
	} else {
		e.buf.WriteByte(opEmptyDict)
	}
	return e.batches(n, n == 1, opSetItem, opSetItems, func(i int) error {
		k, v := item(i)
		if err := e.encode(k, depth+1, true); err != nil {
			return err
		}
		return e.encode(v, depth+1, false)
	})
}

// set writes EMPTY_SET, then batches of MARK, items, ADDITEMS.
func (e *valueEncoder) set(s pyval.Set, depth int, key bool) error {
	if key {
		return errUnhashable("set")
	}
	if err := e.open(depth); err != nil {
		return err
	}
	e.buf.WriteByte(opEmptySet)
	return e.batches(len(s), false, 0, opAddItems, func(i int) error {
		return e.encode(s[i], depth+1, true)
	})
}

// frozenSet writes MARK, every item, FROZENSET.
func (e *valueEncoder) frozenSet(s pyval.FrozenSet, depth int) error {
	if err := e.open(depth); err != nil {
		return err
	}
	e.buf.WriteByte(opMark)
	for _, x := range s {
		if err := e.encode(x, depth+1, true); err != nil {
			return err
		}
	}
	e.buf.WriteByte(opFrozenSet)
	return nil
}

// batches writes n items: a single one followed by one (when single), else
// in batches of batchSize between MARK and many.
func (e *valueEncoder) batches(n int, single bool, one, many byte, item func(int) error) error {
	if single {
		if err := item(0); err != nil {
			return err
		}
		e.buf.WriteByte(one)
		return nil
	}
	for i := 0; i < n; {
		e.buf.WriteByte(opMark)
		for end := min(n, i+batchSize); i < end; i++ {
			if err := item(i); err != nil {
				return err
			}
		}
		e.buf.WriteByte(many)
	}
	return nil
}

// object copies an undecoded value's pickle with its memo renumbered.
func (e *valueEncoder) object(o pyval.Object) error {
	if o.Pickle == nil {
		return fmt.Errorf("%w: an undecoded part (%s.%s) of a value cannot be written alone: copy the whole value's pickle", ErrUnsupported, o.Module, o.Name)
	}
	ops, err := unframe(o.Pickle)
	if err != nil {
		return fmt.Errorf("object %s.%s: %w", o.Module, o.Name, err)
	}
	out, end, err := renumberMemo(ops, 0, 0, e.memo)
	if err != nil {
		return fmt.Errorf("object %s.%s: %w", o.Module, o.Name, err)
	}
	e.buf.Write(out)
	e.memo = end
	return nil
}

// NDArray is an array held in memory, to store inside a value with
// File.Put (an attribute's array, say): Data holds its elements in the
// order Fortran says, in DType's byte order. Put writes numpy's own pickle
// of it, which the bridge reads back as an *Array and numpy as an ndarray.
// Arrays of their own keys are stored with PutArray, which streams them.
type NDArray struct {
	DType   DType
	Shape   []int
	Fortran bool
	Data    []byte
}

// numpy writes a numpy object's pickle, made by emit, with the memo
// numbered on from the value's.
func (e *valueEncoder) numpy(emit func(*emitter)) {
	em := newEmitter()
	emit(em)
	segs, end := em.finish(e.memo)
	for _, s := range segs {
		e.buf.Write(s)
	}
	e.memo = end
}

func (e *valueEncoder) scalar(s *Scalar) error {
	if err := s.DType.validate(); err != nil {
		return fmt.Errorf("%w: numpy scalar: %v", ErrUnsupported, err)
	}
	if len(s.Raw) != s.DType.ItemSize {
		return fmt.Errorf("%w: numpy scalar of dtype %s from %d bytes", ErrUnsupported, s.DType, len(s.Raw))
	}
	e.numpy(func(em *emitter) { em.scalarPickle(s.DType, s.Raw) })
	return nil
}

func (e *valueEncoder) ndarray(a *NDArray, key bool) error {
	if key {
		return errUnhashable("numpy.ndarray")
	}
	h := ArrayHeader{DType: a.DType, Shape: a.Shape, Fortran: a.Fortran}
	n, err := h.NBytes()
	if err != nil {
		return fmt.Errorf("%w: array: %v", ErrUnsupported, err)
	}
	if int64(len(a.Data)) != n {
		return fmt.Errorf("%w: array of dtype %s and shape %v from %d bytes (it needs %d)", ErrUnsupported, a.DType, a.Shape, len(a.Data), n)
	}
	data := a.Data
	if data == nil {
		data = []byte{}
	}
	e.numpy(func(em *emitter) { em.ndarrayPickle(h, n, data, "") })
	return nil
}
