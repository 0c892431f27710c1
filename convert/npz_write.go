package convert

// mmpkl -> npz: every array as a member, as np.savez writes it.

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"mmpbridge/internal/fault"

	"mmpbridge/bridge"
)

// mmpklToNpz writes every array of in as an .npy member of the archive dst.
func mmpklToNpz(ctx context.Context, src string, in *bridge.Reader, dst string, opt *Options, p *progress) error {
	type item struct {
		name string
		arr  *bridge.Array
	}
	var items []item
	names := map[string]string{} // member name -> key it came from
	// add adds the members of key k, all or (when one's name is taken)
	// none.
	add := func(k string, its ...item) error {
		for _, it := range its {
			if prev, dup := names[it.name]; dup {
				return opt.skip(&UnsupportedError{File: src, Member: fmt.Sprintf("key %q", k), Reason: fmt.Sprintf("its member %q would collide with that of key %q", it.name, prev)})
			}
		}
		for _, it := range its {
			names[it.name] = k
			items = append(items, it)
			p.total.Add(it.arr.NBytes)
		}
		return nil
	}
	for _, k := range in.Keys() {
		kind, err := in.KindOf(k)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		switch kind {
		case bridge.KindArray:
			var a *bridge.Array
			if a, err = in.Array(k); err == nil {
				if why := npyDescrProblem(a.DType); why != "" {
					err = opt.skip(&UnsupportedError{File: src, Member: fmt.Sprintf("key %q", k), Reason: why})
					break
				}
				err = add(k, item{k + ".npy", a})
			}
		case bridge.KindMasked:
			// The data as KEY.npy, the mask as KEY.mask.npy, the fill
			// value (when the file keeps one) as KEY.fill_value.npy: read
			// back as one masked array (npz_masked.go).
			var m *bridge.Masked
			if m, err = in.Masked(k); err == nil {
				its := []item{{k + ".npy", m.Data}, {k + ".mask.npy", m.Mask}}
				if f, ok := m.Fill.(*bridge.Array); ok && len(f.Shape) == 0 && f.DType == m.Data.DType {
					its = append(its, item{k + ".fill_value.npy", f})
				}
				err = add(k, its...)
			}
		default:
			if opt.Skipped != nil {
				opt.Skipped(fmt.Sprintf("key %q", k), "generic values have no .npy form")
			}
		}
		if err != nil {
			var u *UnsupportedError
			if errors.As(err, &u) {
				return err
			}
			return fmt.Errorf("%s: %w", src, err)
		}
	}
	modified := modTime(src)
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	if opt.Compress {
		zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
			return newParallelDeflater(ctx, w), nil
		})
	}
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := it.arr
		hdr := npyHeaderBytes(a.DType, a.Shape, fortranFlag(a.Shape, a.Fortran))
		fh := &zip.FileHeader{Name: it.name, Modified: modified}
		var w io.Writer
		if opt.Compress {
			fh.Method = zip.Deflate
			w, err = zw.CreateHeader(fh)
		} else {
			// Stored with the sizes and CRC in the local header, as np.savez
			// writes them (no data descriptor: readers that stream or use
			// DataOffset need none).
			crc := crc32.ChecksumIEEE(hdr)
			if crc, err = arrayCRC(crc, a); err != nil {
				return fmt.Errorf("%s: %w", src, err)
			}
			fh.Method = zip.Store
			fh.CRC32 = crc
			fh.UncompressedSize64 = uint64(len(hdr)) + uint64(a.NBytes)
			fh.CompressedSize64 = fh.UncompressedSize64
			if !isASCII(it.name) {
				// CreateRaw, unlike CreateHeader, leaves the UTF-8 flag to
				// us; without it readers take the name as CP437.
				fh.Flags |= 0x800
			}
			w, err = zw.CreateRaw(fh)
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		if err := writeArrayData(ctx, w, a, p); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// modTime is the time the members get: the source's, so that converting
// the same file twice gives the same archive.
func modTime(src string) time.Time {
	if st, err := os.Stat(src); err == nil {
		return st.ModTime()
	}
	return time.Time{}
}

// arrayCRC continues crc over the array's bytes (mapped when possible).
func arrayCRC(crc uint32, a *bridge.Array) (uint32, error) {
	if b := a.Bytes(); b != nil {
		for off := 0; off < len(b); off += 4 * pieceSize {
			piece := b[off:min(len(b), off+4*pieceSize)]
			var err error
			if crc, err = crcMapped(crc, piece); err != nil {
				return crc, err
			}
			release(piece)
		}
		return crc, nil
	}
	buf := make([]byte, pieceSize)
	r := a.Section()
	for {
		n, err := r.Read(buf)
		crc = crc32.Update(crc, crc32.IEEETable, buf[:n])
		if err == io.EOF {
			return crc, nil
		}
		if err != nil {
			return crc, err
		}
	}
}

// writeArrayData writes the array's bytes to w in pieces, counting progress.
func writeArrayData(ctx context.Context, w io.Writer, a *bridge.Array, p *progress) error {
	if b := a.Bytes(); b != nil {
		for off := 0; off < len(b); off += 4 * pieceSize {
			if err := ctx.Err(); err != nil {
				return err
			}
			piece := b[off:min(len(b), off+4*pieceSize)]
			if err := writeMapped(w, piece); err != nil {
				return err
			}
			release(piece)
			p.add(int64(len(piece)))
		}
		return nil
	}
	_, err := io.Copy(w, p.reader(a.Section()))
	return err
}

func writeMapped(w io.Writer, b []byte) (err error) {
	defer fault.Guard(&err, "reading mapped data", bridge.ErrShrank)()
	_, err = w.Write(b)
	return err
}
