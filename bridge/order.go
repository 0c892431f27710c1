package bridge

import (
	"fmt"
	"io"

	"mmpbridge/internal/transpose"
)

// WriteC writes the array's bytes to w in C (row-major) order, as numpy's
// tobytes() gives them: Fortran-ordered data is transposed on the way.
// Transposing needs the array mapped (or reads it into memory when not).
func (a *Array) WriteC(w io.Writer) (err error) {
	defer guard(&err, "array")()
	if !a.Fortran || len(a.Shape) < 2 || a.NBytes == 0 {
		_, err := io.Copy(w, a.Section())
		return err
	}
	data := a.Bytes()
	if data == nil {
		data = make([]byte, a.NBytes)
		if _, err := a.Section().ReadAt(data, 0); err != nil {
			return fmt.Errorf("reading array: %w", err)
		}
	}
	return transpose.FToC(w, data, a.Shape, a.DType.ItemSize)
}

// cReader streams an array in C order (through a pipe when it must be
// transposed). Close ends the transposition when the stream is not read to
// its end.
func (a *Array) cReader() io.ReadCloser {
	if !a.Fortran || len(a.Shape) < 2 {
		return io.NopCloser(a.Section())
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(a.WriteC(pw)) }()
	return pr
}
