package bridge

import (
	"bufio"
	"fmt"
	"io"
)

// WriteC writes the array's bytes to w in C (row-major) order, as numpy's
// tobytes() gives them: Fortran-ordered data is transposed on the way.
// Transposing needs the array mapped (or reads it into memory when not).
func (a *Array) WriteC(w io.Writer) (err error) {
	defer guard(&err, "array")()
	if !a.Fortran || len(a.Shape) < 2 || a.NBytes == 0 {
		_, err := io.Copy(w, a.Reader())
		return err
	}
	data := a.Bytes()
	if data == nil {
		data = make([]byte, a.NBytes)
		if _, err := a.Reader().ReadAt(data, 0); err != nil {
			return fmt.Errorf("reading array: %w", err)
		}
	}
	return transposeFToC(w, data, a.Shape, a.DType.ItemSize)
}

// transposeFToC writes Fortran-ordered data in C order.
func transposeFToC(w io.Writer, data []byte, shape []int, size int) error {
	nd := len(shape)
	// Fortran strides (in bytes) of each axis.
	stride := make([]int, nd)
	s := size
	for i := range nd {
		stride[i] = s
		s *= shape[i]
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	idx := make([]int, nd)
	off := 0
	total, _ := shapeSize(shape)
	last := nd - 1
	for n := int64(0); n < total; n++ {
		if _, err := bw.Write(data[off : off+size]); err != nil {
			return err
		}
		// Advance the C-order index: last axis fastest.
		for ax := last; ax >= 0; ax-- {
			idx[ax]++
			off += stride[ax]
			if idx[ax] < shape[ax] {
				break
			}
			off -= stride[ax] * shape[ax]
			idx[ax] = 0
		}
	}
	return bw.Flush()
}

// cReader streams an array in C order (through a pipe when it must be
// transposed).
func (a *Array) cReader() io.Reader {
	if !a.Fortran || len(a.Shape) < 2 {
		return a.Reader()
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(a.WriteC(pw)) }()
	return pr
}
