package transpose

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Piece is the most bytes FToC hands w at a time (or one item, when items
// are larger).
const Piece = 1 << 20

// FToC writes src, the elements of an array of the given shape and item
// size in Fortran order, to w in C order, in pieces of at most Piece bytes
// whatever the shape: an innermost row longer than that is gathered in
// parts. Arrays of fewer than two dimensions are the same in both orders
// and are written as they are.
func FToC(w io.Writer, src []byte, shape []int, size int) error {
	nd := len(shape)
	stride := make([]int, nd) // Fortran strides in bytes
	s := size
	for i := range nd {
		if shape[i] < 0 || shape[i] > 0 && s > math.MaxInt/shape[i] {
			return fmt.Errorf("transposing: shape %v of %d-byte items has no size", shape, size)
		}
		stride[i] = s
		s *= shape[i]
	}
	if size <= 0 || s != len(src) {
		return fmt.Errorf("transposing: %d bytes for shape %v of %d-byte items", len(src), shape, size)
	}
	if nd < 2 || len(src) == 0 {
		_, err := w.Write(src)
		return err
	}
	last := nd - 1
	inner, innerStride := shape[last], stride[last]
	buf := make([]byte, 0, min(max(1, Piece/size), len(src)/size)*size)
	flush := func() error {
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}
	idx := make([]int, nd) // C-order odometer over all axes but the last
	base := 0
	for {
		for j := 0; j < inner; {
			if len(buf) == cap(buf) {
				if err := flush(); err != nil {
					return err
				}
			}
			n := min(inner-j, (cap(buf)-len(buf))/size)
			o := len(buf)
			buf = buf[:o+n*size]
			row(buf[o:], src, base+j*innerStride, n, innerStride, size)
			j += n
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

// row gathers n items of size bytes from src, starting at off and stride
// bytes apart, into dst.
func row(dst, src []byte, off, n, stride, size int) {
	switch size {
	case 1:
		for j := range n {
			dst[j] = src[off]
			off += stride
		}
	case 2:
		for j := range n {
			binary.NativeEndian.PutUint16(dst[2*j:], binary.NativeEndian.Uint16(src[off:]))
			off += stride
		}
	case 4:
		for j := range n {
			binary.NativeEndian.PutUint32(dst[4*j:], binary.NativeEndian.Uint32(src[off:]))
			off += stride
		}
	case 8:
		for j := range n {
			binary.NativeEndian.PutUint64(dst[8*j:], binary.NativeEndian.Uint64(src[off:]))
			off += stride
		}
	default:
		for j := range n {
			copy(dst[j*size:(j+1)*size], src[off:off+size])
			off += stride
		}
	}
}
