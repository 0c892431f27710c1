package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"mmpbridge/bridge"
)

// .npy files (numpy's format, versions 1.0, 2.0 and 3.0):
//
//	\x93NUMPY <major> <minor> <header length: uint16 (1.x) or uint32 (2.x, 3.x)>
//	{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }   (padded with spaces, ending in \n)
//	<raw data in C or Fortran order>
//
// npyToMmpkl stores the array of an .npy file under one key; mmpklToNpy
// writes one array of an mmappickle file as numpy 1.24's np.save does, byte
// for byte. Array data moves with copy_file_range both ways.

func init() {
	toMmpkl[Npy] = npyToMmpkl
	fromMmpkl[Npy] = mmpklToNpy
}

const (
	npyMagic = "\x93NUMPY"
	// maxNpyHeader bounds the header dict a file may claim (numpy's own
	// reader refuses more than 10,000 characters unless told otherwise).
	maxNpyHeader = 1 << 20
	// copyChunk is how much one copy_file_range call moves between progress
	// reports and cancellation checks.
	copyChunk = 64 << 20
)

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// npyToMmpkl stores the array of the .npy file src under opt.Key or the
// file's stem.
func npyToMmpkl(ctx context.Context, src string, out *bridge.File, opt *Options, p *progress) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	h, err := readNpyHeader(io.NewSectionReader(f, 0, size), size)
	if err != nil {
		var u *npyUnsupported
		if errors.As(err, &u) {
			return opt.skip(&UnsupportedError{File: src, Member: "array", Reason: u.reason})
		}
		return fmt.Errorf("%s: %w", src, err)
	}
	if have := size - h.DataOff; have < h.NBytes {
		return fmt.Errorf("%s: truncated: the array data has %d bytes, the header says %d (dtype %s, shape %v)", src, have, h.NBytes, h.DType, h.Shape)
	}
	key := opt.Key
	if key == "" {
		key = strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))
	}
	p.total.Add(h.NBytes)
	if h.needsTranspose(opt.Profile) {
		// The mmappickle encoding holds C-order data: map the source and
		// write its transpose into a reserved slot.
		m, data, err := mapRegion(f, h.DataOff, h.NBytes)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		defer m.Unmap()
		slot, err := out.Reserve(key, bridge.ArrayHeader{DType: h.DType, Shape: h.Shape})
		if err != nil {
			return err
		}
		if err := writeFToC(ctx, slot, data, h.Shape, h.DType.ItemSize, p); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		return slot.Commit()
	}
	return out.PutArray(key, h.array(), &fileSpan{ctx: ctx, name: src, f: f, off: h.DataOff, n: h.NBytes, p: p})
}

// mmpklToNpy writes the one array of in (or opt.Key) to dst as np.save
// would, copying the data with copy_file_range.
// NpyHeader is the .npy header numpy writes for the array (version 1.0 or
// 2.0 as its size needs), padded to 64 bytes.
func NpyHeader(a *bridge.Array) []byte {
	return npyHeaderBytes(a.DType, a.Shape, fortranFlag(a.Shape, a.Fortran))
}

func mmpklToNpy(ctx context.Context, src string, in *bridge.Reader, dst string, opt *Options, p *progress) error {
	key, err := pickNpyKey(src, in, opt.Key)
	if err != nil {
		return err
	}
	arr, err := in.Array(key)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if why := npyDescrProblem(arr.DType); why != "" {
		return &UnsupportedError{File: src, Member: fmt.Sprintf("key %q", key), Reason: why}
	}
	p.total.Add(arr.NBytes)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := out.Write(npyHeaderBytes(arr.DType, arr.Shape, fortranFlag(arr.Shape, arr.Fortran))); err != nil {
		return err
	}
	path := opt.inputPath(src)
	if path == "" {
		// A remote file: fetched in large pieces, several requests at a
		// time, past the block cache (about the array's bytes move); or a
		// scratch file that cannot be opened again: read through it.
		if _, err := io.CopyBuffer(struct{ io.Writer }{out}, p.reader(arr.Section()), make([]byte, 8<<20)); err != nil {
			return fmt.Errorf("%s: key %q: %w", src, key, err)
		}
		return out.Close()
	}
	sf, err := os.Open(path)
	if err != nil {
		return err
	}
	defer sf.Close()
	span := &fileSpan{ctx: ctx, name: src, f: sf, off: arr.Offset, n: arr.NBytes, p: p}
	if _, err := span.WriteTo(out); err != nil {
		return err
	}
	return out.Close()
}

// pickNpyKey chooses the array an .npy output holds: key if given (it must
// be a plain array), else the file's only array.
func pickNpyKey(src string, in *bridge.Reader, key string) (string, error) {
	var arrays []string
	for _, k := range in.Keys() {
		if kind, err := in.KindOf(k); err == nil && kind != bridge.KindValue {
			arrays = append(arrays, k)
		}
	}
	if key != "" {
		kind, err := in.KindOf(key)
		switch {
		case errors.Is(err, bridge.ErrKeyNotFound):
			return "", fmt.Errorf("%s: key %q: %w (arrays: %s)", src, key, bridge.ErrKeyNotFound, quoteKeys(arrays))
		case err != nil:
			return "", fmt.Errorf("%s: %w", src, err)
		case kind == bridge.KindMasked:
			return "", causeError(fmt.Sprintf("%s: key %q is a masked array, which .npy cannot hold (convert to .npz; arrays: %s)", src, key, quoteKeys(arrays)), bridge.ErrNotArray)
		case kind == bridge.KindValue:
			return "", causeError(fmt.Sprintf("%s: key %q holds a value, not an array (arrays: %s)", src, key, quoteKeys(arrays)), bridge.ErrNotArray)
		}
		return key, nil
	}
	switch len(arrays) {
	case 0:
		return "", causeError(fmt.Sprintf("%s: no array to write to .npy", src), bridge.ErrNotArray)
	case 1:
		if kind, _ := in.KindOf(arrays[0]); kind == bridge.KindMasked {
			return "", causeError(fmt.Sprintf("%s: key %q is a masked array, which .npy cannot hold (convert to .npz)", src, arrays[0]), bridge.ErrNotArray)
		}
		return arrays[0], nil
	}
	return "", &UsageError{Msg: fmt.Sprintf("%s holds %d arrays (%s): name the one to write", src, len(arrays), quoteKeys(arrays)), Err: ErrAmbiguousKey}
}

func quoteKeys(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	const show = 20
	q := make([]string, 0, min(len(keys), show))
	for _, k := range keys[:min(len(keys), show)] {
		q = append(q, strconv.Quote(k))
	}
	s := strings.Join(q, ", ")
	if len(keys) > show {
		s += fmt.Sprintf(" and %d more", len(keys)-show)
	}
	return s
}
