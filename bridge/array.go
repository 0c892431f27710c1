package bridge

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"unsafe"
)

// Profile says how an array is pickled in the file.
type Profile int

const (
	// Portable is numpy's own pickle of the array (_reconstruct + BUILD):
	// plain pickle.load works on numpy 1.x and 2.x.
	Portable Profile = iota
	// Mmappickle is mmappickle's encoding:
	// reshape(fromstring(bytes, dtype), shape). numpy >= 2.3 cannot load it
	// with plain pickle.load.
	Mmappickle
)

func (e Profile) String() string {
	switch e {
	case Portable:
		return "portable"
	case Mmappickle:
		return "mmappickle"
	}
	return fmt.Sprintf("Profile(%d)", int(e))
}

// ParseProfile parses "portable" or "mmappickle".
func ParseProfile(s string) (Profile, error) {
	switch s {
	case "portable":
		return Portable, nil
	case "mmappickle":
		return Mmappickle, nil
	}
	return 0, fmt.Errorf("unknown profile %q (want portable or mmappickle)", s)
}

// Array is a numpy array stored in the file. Its bytes are not read when it
// is parsed: Bytes gives a view of the mapping, Section reads them.
type Array struct {
	DType DType
	Shape []int
	// Fortran is true when the bytes are in Fortran (column-major) order.
	Fortran bool
	Profile Profile
	// Offset and NBytes locate the raw bytes in the file.
	Offset int64
	NBytes int64

	src *source
}

// Order is 'F' for data in Fortran order that is not also in C order (two
// dimensions or more longer than 1, as numpy's flags tell), 'C' otherwise.
func (a *Array) Order() byte {
	if (ArrayHeader{Shape: a.Shape, Fortran: a.Fortran}).isFortranFlag() {
		return 'F'
	}
	return 'C'
}

// Size is the number of elements.
func (a *Array) Size() int64 {
	n, _ := shapeSize(a.Shape)
	return n
}

// Bytes returns the array's raw bytes as a view of the file mapping (no copy),
// or nil when the file is not mapped (a Reader made by NewReader over
// something that is not a mapping). Writable only if the file was opened
// writable; valid until the file is closed.
func (a *Array) Bytes() []byte {
	if a.src == nil || a.src.data == nil {
		return nil
	}
	return a.src.data[a.Offset : a.Offset+a.NBytes : a.Offset+a.NBytes]
}

// Section reads the array's raw bytes (in storage order) from the file.
func (a *Array) Section() *io.SectionReader {
	return io.NewSectionReader(a.src.ra, a.Offset, a.NBytes)
}

// header is what PutArray needs to store the array again.
func (a *Array) header() ArrayHeader {
	return ArrayHeader{DType: a.DType, Shape: a.Shape, Fortran: a.Fortran}
}

// Element is a Go type an array can be viewed as.
type Element interface {
	~bool | ~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64 | ~complex64 | ~complex128
}

// View returns the array's elements as a []T sharing memory with the file
// mapping: no copy. The dtype must match T (int64 for datetime64 and
// timedelta64, uint16 for float16), be native-endian, and the data aligned
// for T.
func View[T Element](a *Array) ([]T, error) {
	var z T
	kind, size := elementKind(any(z))
	dk := a.DType.Kind
	if dk == 'M' || dk == 'm' {
		dk = 'i'
	}
	if a.DType.Kind == 'f' && a.DType.ItemSize == 2 && kind == 'u' {
		dk = 'u'
	}
	if dk != kind || a.DType.ItemSize != size {
		return nil, fmt.Errorf("cannot view dtype %s as %T", a.DType, z)
	}
	if !a.DType.NativeEndian() {
		return nil, fmt.Errorf("cannot view big-endian dtype %s as %T: byte-swap a copy", a.DType, z)
	}
	b := a.Bytes()
	if b == nil {
		return nil, errors.New("array is not memory-mapped")
	}
	if len(b) == 0 {
		return []T{}, nil
	}
	if kind == 'b' {
		// A Go bool must be 0 or 1; the file's bytes need not be.
		for i, c := range b {
			if c > 1 {
				return nil, fmt.Errorf("byte %d of the array is 0x%02x, not a bool: view it as uint8", i, c)
			}
		}
	}
	if uintptr(unsafe.Pointer(&b[0]))%uintptr(unsafe.Alignof(z)) != 0 {
		return nil, fmt.Errorf("array data at offset %d is not aligned for %T (write the file with alignment)", a.Offset, z)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/size), nil
}

func elementKind(v any) (byte, int) {
	switch v.(type) {
	case bool:
		return 'b', 1
	case int8:
		return 'i', 1
	case int16:
		return 'i', 2
	case int32:
		return 'i', 4
	case int64:
		return 'i', 8
	case uint8:
		return 'u', 1
	case uint16:
		return 'u', 2
	case uint32:
		return 'u', 4
	case uint64:
		return 'u', 8
	case float32:
		return 'f', 4
	case float64:
		return 'f', 8
	case complex64:
		return 'c', 8
	case complex128:
		return 'c', 16
	}
	return 0, 0
}

// Masked is a numpy.ma.MaskedArray: data, a boolean mask of the same shape,
// and the fill value when the file records one (nil otherwise; a 0-d *Array
// in the portable encoding).
type Masked struct {
	Data *Array
	Mask *Array
	Fill any
}

// shapeSize multiplies the dimensions, refusing negative ones and overflow.
func shapeSize(shape []int) (int64, bool) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > 1<<62 {
			return 0, false
		}
		n = lo
	}
	return int64(n), true
}

// checkArray validates that the raw byte count matches dtype and shape.
func checkArray(a *Array, off int64) error {
	n, ok := shapeSize(a.Shape)
	if !ok {
		return formatErr(off, "array shape %v is invalid or too large", a.Shape)
	}
	hi, lo := bits.Mul64(uint64(n), uint64(a.DType.ItemSize))
	if hi != 0 {
		return formatErr(off, "array of shape %v and dtype %s needs more than 2^64 bytes", a.Shape, a.DType)
	}
	if lo != uint64(a.NBytes) {
		return formatErr(off, "array of shape %v and dtype %s needs %d bytes, the file has %d", a.Shape, a.DType, lo, a.NBytes)
	}
	return nil
}
