package bridge

import (
	"fmt"
	"io"
	"os"

	"github.com/edsrzf/mmap-go"

	"mmpbridge/internal/atomicfile"
	"mmpbridge/internal/transpose"
)

// WriteC writes the array's bytes to w in C (row-major) order, as numpy's
// tobytes() gives them: Fortran-ordered data is transposed on the way, from
// the mapping; an array that is not mapped (a remote file's) is first read
// once, in order, into an unnamed scratch file in the temporary directory
// (into memory when small), so that memory stays bounded whatever its
// size.
func (a *Array) WriteC(w io.Writer) (err error) {
	defer guard(&err, "array")()
	if !a.Fortran || len(a.Shape) < 2 || a.NBytes == 0 {
		_, err := io.Copy(w, a.Section())
		return err
	}
	data := a.Bytes()
	if data == nil {
		d, release, err := spool(a.Section(), a.NBytes)
		if err != nil {
			return fmt.Errorf("reading array: %w", err)
		}
		defer release()
		data = d
	}
	return transpose.FToC(w, data, a.Shape, a.DType.ItemSize)
}

// spoolInMemory is the largest array spool reads into memory.
const spoolInMemory = 8 << 20

// spool reads n bytes of r into memory (n up to spoolInMemory) or into an
// unnamed scratch file it maps; release frees them.
func spool(r io.Reader, n int64) (data []byte, release func(), err error) {
	if n <= spoolInMemory {
		data = make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, nil, err
		}
		return data, func() {}, nil
	}
	if int64(int(n)) != n {
		return nil, nil, fmt.Errorf("%d bytes cannot be mapped here", n)
	}
	f, err := atomicfile.Scratch(os.TempDir())
	if err != nil {
		return nil, nil, err
	}
	m, err := func() (mmap.MMap, error) {
		if c, err := io.Copy(f, io.LimitReader(r, n)); err != nil || c != n {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return mmap.MapRegion(f, int(n), mmap.RDONLY, 0, 0)
	}()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return m, func() { m.Unmap(); f.Close() }, nil
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
