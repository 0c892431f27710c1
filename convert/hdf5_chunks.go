//go:build !nohdf5

package convert

// Chunked HDF5 datasets compressed by deflate (gzip) and shuffle, h5py's
// usual filters, are read here on every core: libhdf5 inflates chunk by
// chunk on the one thread that may call it, so this file has it hand over
// each chunk's stored bytes (H5Dread_chunk, HDF5 >= 1.10.2) and inflates,
// unshuffles and places them in Go, in parallel. Any other filter, a
// string type (read with a conversion of its padding) or a chunk bigger
// than maxFastChunk goes through H5Dread as before; a chunk never written
// (fill value) is read through H5Dread too.

/*
#include "hdf5_shim.h"
*/
import "C"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"mmpbridge/internal/fault"

	"github.com/klauspost/compress/zlib"
)

// maxFastChunk bounds the chunks read in parallel: a worker holds one
// chunk's bytes twice, and 2×NumCPU chunks are in flight.
const maxFastChunk = 4 << 20

// h5filter is one filter of a dataset's pipeline, in pipeline order.
type h5filter struct {
	id  int
	cd0 uint // first client value: shuffle's element size
}

const (
	h5FilterDeflate = 1
	h5FilterShuffle = 2
)

// readFilters records the dataset's filter pipeline.
func readFilters(dcpl C.hid_t, d *h5dataset) error {
	nf := C.H5Pget_nfilters(dcpl)
	if nf < 0 {
		return h5err("H5Pget_nfilters")
	}
	d.filters = nil
	for i := C.uint(0); i < C.uint(nf); i++ {
		var id C.int
		var cd0 C.uint
		if C.h5_filter_cd(dcpl, i, &id, &cd0) < 0 {
			return h5err("H5Pget_filter2")
		}
		d.filters = append(d.filters, h5filter{int(id), uint(cd0)})
	}
	return nil
}

// fastChunks tells whether the dataset's chunks can be decoded in Go.
func (d *h5dataset) fastChunks() bool {
	if C.MMP_READ_CHUNK == 0 || d.chunk == nil || len(d.h.Shape) == 0 || d.isString || d.nbytes == 0 {
		return false
	}
	n := int64(d.h.DType.ItemSize)
	for _, c := range d.chunk {
		if c <= 0 {
			return false
		}
		n *= int64(c)
		if n > maxFastChunk {
			return false
		}
	}
	for _, f := range d.filters {
		if f.id != h5FilterDeflate && f.id != h5FilterShuffle {
			return false
		}
	}
	return true
}

// contiguousSpan returns where a contiguous dataset's bytes lie in the
// HDF5 file, so that they can be copied by the kernel (copy_file_range)
// instead of through libhdf5 and a mapping: only when no conversion is
// involved, the span lies inside the file, and the first and last elements
// read there are those libhdf5 reads.
func (r *h5reader) contiguousSpan(did, mt C.hid_t, d *h5dataset, f *os.File) (int64, bool) {
	if d.isString || d.nbytes == 0 || len(d.h.Shape) == 0 || d.chunk != nil {
		return 0, false
	}
	off := int64(C.h5_contiguous_offset(did))
	st, err := f.Stat()
	if off < 0 || err != nil || off > st.Size() || d.nbytes > st.Size()-off {
		return 0, false
	}
	item := d.h.DType.ItemSize
	nd := len(d.h.Shape)
	coords := make([]C.hsize_t, nd)
	got, want := make([]byte, item), make([]byte, item)
	for _, last := range []bool{false, true} {
		for ax := range coords {
			coords[ax] = 0
			if last {
				coords[ax] = C.hsize_t(d.h.Shape[ax] - 1)
			}
		}
		if C.h5_read_point(did, mt, C.int(nd), &coords[0], unsafe.Pointer(&want[0])) < 0 {
			C.H5Eclear2(C.H5E_DEFAULT)
			return 0, false
		}
		at := off
		if last {
			at += d.nbytes - int64(item)
		}
		if _, err := f.ReadAt(got, at); err != nil || !bytes.Equal(got, want) {
			return 0, false
		}
	}
	return off, true
}

// chunkJob is one chunk's stored bytes and where they go.
type chunkJob struct {
	index int64  // in C order over the chunk grid
	start []int  // first element
	raw   []byte // as stored
	mask  uint32 // filters skipped for this chunk
}

// readChunksParallel fills dst (the array's bytes, C order) from the chunks
// of the open dataset did. It runs on the thread that holds the library
// (h5begin); the workers never call it.
func (r *h5reader) readChunksParallel(did, mt C.hid_t, d *h5dataset, dst []byte, out io.WriterAt, member string, p *progress) error {
	nd := len(d.h.Shape)
	item := int64(d.h.DType.ItemSize)
	dims, chunk := d.h.Shape, d.chunk
	grid := make([]int64, nd)
	nchunks := int64(1)
	chunkBytes := item
	for ax := range nd {
		grid[ax] = (int64(dims[ax]) + int64(chunk[ax]) - 1) / int64(chunk[ax])
		nchunks *= grid[ax]
		chunkBytes *= int64(chunk[ax])
	}
	// Rows of axis 0 are released from the mapping once every chunk
	// covering them is placed.
	perRow := nchunks / grid[0]
	rowBytes := int64(d.nbytes) / int64(dims[0])
	rowsDone := make([]atomic.Int64, grid[0])

	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	var (
		once     sync.Once
		firstErr error
	)
	fail := func(err error) {
		once.Do(func() { firstErr = err })
		cancel()
	}
	nw := runtime.NumCPU()
	jobs := make(chan *chunkJob, 2*nw)
	free := make(chan []byte, 3*nw)
	placed := func(j *chunkJob, n int64) {
		p.add(n)
		g0 := j.start[0] / chunk[0]
		if rowsDone[g0].Add(1) == perRow {
			r0 := int64(g0 * chunk[0])
			rows := min(int64(chunk[0]), int64(dims[0])-r0)
			release(dst[r0*rowBytes : (r0+rows)*rowBytes])
		}
	}
	var wg sync.WaitGroup
	for range nw {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := chunkWorker{d: d, chunkBytes: chunkBytes, dst: dst, out: out}
			for j := range jobs {
				if ctx.Err() == nil {
					n, err := w.place(j)
					if err != nil {
						fail(fmt.Errorf("%s: %s: chunk at %v: %w", r.src, member, j.start, err))
					} else {
						placed(j, n)
					}
				}
				select {
				case free <- j.raw[:0]:
				default:
				}
			}
		}()
	}
	var fs, ms C.hid_t = -1, -1 // for chunks read by H5Dread
	defer func() {
		if fs >= 0 {
			C.H5Sclose(fs)
		}
		if ms >= 0 {
			C.H5Sclose(ms)
		}
	}()
	off := make([]C.hsize_t, nd)
	count := make([]C.hsize_t, nd)
	cdims := make([]C.hsize_t, nd)
	for i, n := range dims {
		cdims[i] = C.hsize_t(n)
	}
	// A stored chunk may be a little larger than its data (deflate of
	// random bytes); more than twice is not a chunk of this dataset.
	maxStored := 2*chunkBytes + 4096
	for ci := int64(0); ci < nchunks && ctx.Err() == nil; ci++ {
		start := make([]int, nd)
		for ax, rest := nd-1, ci; ax >= 0; ax-- {
			start[ax] = int(rest%grid[ax]) * chunk[ax]
			rest /= grid[ax]
			off[ax] = C.hsize_t(start[ax])
		}
		var size C.hsize_t
		if C.H5Dget_chunk_storage_size(did, &off[0], &size) < 0 || size == 0 {
			// Never written: H5Dread gives the fill value.
			C.H5Eclear2(C.H5E_DEFAULT)
			if fs < 0 {
				if fs = C.H5Dget_space(did); fs < 0 {
					fail(h5err("%s: %s: dataspace", r.src, member))
					break
				}
				if ms = C.H5Screate_simple(C.int(nd), &cdims[0], nil); ms < 0 {
					fail(h5err("H5Screate_simple"))
					break
				}
			}
			for ax := range nd {
				count[ax] = C.hsize_t(min(chunk[ax], dims[ax]-start[ax]))
			}
			if C.H5Sselect_hyperslab(fs, C.H5S_SELECT_SET, &off[0], nil, &count[0], nil) < 0 ||
				C.H5Sselect_hyperslab(ms, C.H5S_SELECT_SET, &off[0], nil, &count[0], nil) < 0 ||
				C.H5Dread(did, mt, ms, fs, C.H5P_DEFAULT, unsafe.Pointer(&dst[0])) < 0 {
				fail(h5err("%s: reading %s", r.src, member))
				break
			}
			n := item
			for _, c := range count {
				n *= int64(c)
			}
			placed(&chunkJob{start: start}, n)
			continue
		}
		if int64(size) > maxStored {
			fail(fmt.Errorf("%s: %s: chunk at %v: %d bytes stored for %d bytes of data", r.src, member, start, size, chunkBytes))
			break
		}
		var raw []byte
		select {
		case raw = <-free:
		default:
		}
		if int64(cap(raw)) < int64(size) {
			raw = make([]byte, size, size+size/8)
		}
		raw = raw[:size]
		var mask C.uint32_t
		if C.h5_read_chunk(did, &off[0], &mask, unsafe.Pointer(&raw[0]), C.size_t(size)) < 0 {
			fail(h5err("%s: reading %s", r.src, member))
			break
		}
		select {
		case jobs <- &chunkJob{index: ci, start: start, raw: raw, mask: uint32(mask)}:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if err := r.ctx.Err(); err != nil {
		return err
	}
	return firstErr
}

// chunkWorker decodes chunks: the filters undone in reverse pipeline
// order, then the chunk's part inside the dataset copied into place.
type chunkWorker struct {
	d          *h5dataset
	chunkBytes int64
	dst        []byte      // the array's bytes, mapped
	out        io.WriterAt // the same bytes, by pwrite
	a, b       []byte      // decoding buffers
	zr         io.ReadCloser
	br         bytes.Reader
}

func (w *chunkWorker) place(j *chunkJob) (n int64, err error) {
	data := j.raw
	if w.a == nil {
		w.a, w.b = make([]byte, w.chunkBytes), make([]byte, w.chunkBytes)
	}
	out := w.a
	for i := len(w.d.filters) - 1; i >= 0; i-- {
		if j.mask&(1<<uint(i)) != 0 {
			continue // skipped when this chunk was written
		}
		switch f := w.d.filters[i]; f.id {
		case h5FilterDeflate:
			if data, err = w.inflate(data, out); err != nil {
				return 0, err
			}
		case h5FilterShuffle:
			if int64(len(data)) != w.chunkBytes {
				return 0, fmt.Errorf("shuffled chunk of %d bytes, want %d", len(data), w.chunkBytes)
			}
			unshuffle(out[:len(data)], data, int(f.cd0))
			data = out[:len(data)]
		}
		if &out[0] == &w.a[0] {
			out = w.b
		} else {
			out = w.a
		}
	}
	if int64(len(data)) != w.chunkBytes {
		return 0, fmt.Errorf("chunk decodes to %d bytes, want %d", len(data), w.chunkBytes)
	}
	return w.scatter(data, j.start)
}

// inflate decodes a zlib stream (HDF5's deflate filter) into out, which
// it must fill exactly.
func (w *chunkWorker) inflate(in, out []byte) ([]byte, error) {
	w.br.Reset(in)
	var err error
	if w.zr == nil {
		w.zr, err = zlib.NewReader(&w.br)
	} else {
		err = w.zr.(zlib.Resetter).Reset(&w.br, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("inflating: %w", err)
	}
	n, err := io.ReadFull(w.zr, out)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return nil, fmt.Errorf("inflating: the chunk ends after %d of %d bytes", n, len(out))
	}
	if err != nil {
		return nil, fmt.Errorf("inflating: %w", err)
	}
	var one [1]byte
	if k, err := w.zr.Read(one[:]); k != 0 || (err != nil && err != io.EOF) {
		if err == nil {
			err = errors.New("more data than the chunk holds")
		}
		return nil, fmt.Errorf("inflating: %w", err)
	}
	return out, nil
}

// unshuffle undoes HDF5's shuffle filter: byte k of every element was
// stored together, element after element; bytes past the last whole
// element are kept as they are.
func unshuffle(dst, src []byte, size int) {
	if size <= 1 {
		copy(dst, src)
		return
	}
	n := len(src) / size
	switch size {
	case 2:
		p0, p1 := src[:n], src[n:2*n]
		for i := range n {
			d := dst[2*i : 2*i+2 : 2*i+2]
			d[0], d[1] = p0[i], p1[i]
		}
	case 4:
		p0, p1, p2, p3 := src[:n], src[n:2*n], src[2*n:3*n], src[3*n:4*n]
		for i := range n {
			d := dst[4*i : 4*i+4 : 4*i+4]
			d[0], d[1], d[2], d[3] = p0[i], p1[i], p2[i], p3[i]
		}
	case 8:
		p0, p1, p2, p3 := src[:n], src[n:2*n], src[2*n:3*n], src[3*n:4*n]
		p4, p5, p6, p7 := src[4*n:5*n], src[5*n:6*n], src[6*n:7*n], src[7*n:8*n]
		for i := range n {
			d := dst[8*i : 8*i+8 : 8*i+8]
			d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = p0[i], p1[i], p2[i], p3[i], p4[i], p5[i], p6[i], p7[i]
		}
	default:
		for k := range size {
			plane := src[k*n : (k+1)*n]
			for i, c := range plane {
				dst[i*size+k] = c
			}
		}
	}
	copy(dst[n*size:], src[n*size:])
}

// errMappedWrite: a memory fault writing an output's mapping, which is how
// a full disk shows through a mapping.
var errMappedWrite = errors.New("a memory fault writing the output's mapping (is the disk full?)")

// scatter copies the part of a decoded chunk (C order, full chunk shape)
// that lies inside the dataset into the array's bytes; it returns the bytes
// placed. A fault writing the mapping (the disk is full) is an error.
func (w *chunkWorker) scatter(data []byte, start []int) (n int64, err error) {
	defer fault.Guard(&err, "writing the array", errMappedWrite)()
	dims, chunk := w.d.h.Shape, w.d.chunk
	nd := len(dims)
	item := int64(w.d.h.DType.ItemSize)
	ext := make([]int, nd)
	for ax := range nd {
		ext[ax] = min(chunk[ax], dims[ax]-start[ax])
	}
	// A chunk spanning whole rows is one run of the array's bytes: written
	// by pwrite, which fills whole pages without the kernel first zeroing
	// them as a fault on a new page of the mapping does.
	whole := true
	for ax := 1; ax < nd; ax++ {
		whole = whole && start[ax] == 0 && chunk[ax] == dims[ax]
	}
	if whole && w.out != nil {
		n = int64(ext[0]) * int64(len(data)) / int64(chunk[0])
		do := int64(start[0]) * (int64(len(data)) / int64(chunk[0]))
		if _, err := w.out.WriteAt(data[:n], do); err != nil {
			return 0, err
		}
		return n, nil
	}
	run := int64(ext[nd-1]) * item
	idx := make([]int, nd) // over ext, last axis fixed at 0
	for {
		var so, do int64
		sstride, dstride := item, item
		for ax := nd - 1; ax >= 0; ax-- {
			so += int64(idx[ax]) * sstride
			do += int64(start[ax]+idx[ax]) * dstride
			sstride *= int64(chunk[ax])
			dstride *= int64(dims[ax])
		}
		copy(w.dst[do:do+run], data[so:so+run])
		n += run
		ax := nd - 2
		for ; ax >= 0; ax-- {
			if idx[ax]++; idx[ax] < ext[ax] {
				break
			}
			idx[ax] = 0
		}
		if ax < 0 {
			return n, nil
		}
	}
}
