package convert

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"

	"mmpbridge/bridge"
	"mmpbridge/internal/atomicfile"
)

// .npz files are zip archives of .npy members, one per array: np.savez
// stores them, np.savez_compressed deflates them.
//
// npz -> mmpkl: every .npy member becomes the key of its name without
// ".npy", in archive order. The npy headers are read first (so that an
// unsupported member is found before any data moves, and the progress
// total is known); then the main goroutine reserves each member's slot in
// archive order, a pool of runtime.NumCPU() workers fills the slots
// concurrently (stored members by copy_file_range, deflated ones inflated
// in 1 MiB pieces), and a committer goroutine commits the slots in archive
// order. At most 2×NumCPU members are in flight, each in constant memory.
// The CRC-32 of every member is checked. For the mmappickle profile
// (C-order data only) a Fortran-ordered member is transposed: stored ones
// from a read-only mapping of the archive, deflated ones after inflating
// them into an unlinked temporary file beside the output.
//
// mmpkl -> npz: every array becomes the member KEY.npy, in file order, as
// np.savez writes it. A masked array becomes KEY.npy (the data),
// KEY.mask.npy (the mask, a bool array of the same shape and order) and
// KEY.fill_value.npy (its fill value, a 0-d array, when the file keeps
// one), read back as one masked array (npz_masked.go). Generic values are left out and
// reported through Options.Skipped. With Options.Compress the members are
// deflated, each member's data in 1 MiB pieces compressed in parallel on
// all cores (as pigz does) and concatenated into one deflate stream.

func init() {
	toMmpkl[Npz] = npzToMmpkl
	fromMmpkl[Npz] = mmpklToNpz
}

// newInflater and deflaters are the deflate implementation:
// github.com/klauspost/compress/flate. Measured on this project's 2-core
// machine against compress/flate, 16 MiB members deflated by numpy's zlib
// (level 6), one core: inflating is 1.3-1.5x faster (random-walk float32:
// 400 vs 300 MB/s; normal float32: 230 vs 155 MB/s; small int32: 270 vs
// 185 MB/s), and deflating at level 6 is 6-70x faster (random walk: 110 vs
// 6 MB/s, for a 3% bigger output). Its level 6 stores pieces its matcher
// finds incompressible where zlib still gains 8% by Huffman coding them:
// those pieces are Huffman-coded instead (huffmanIfSmaller), which brings
// noisy float data to zlib's size. BenchmarkNpzInflate and
// BenchmarkNpzDeflate repeat the comparisons.
var newInflater = flate.NewReader

// deflaters holds *flate.Writer (level 6, as np.savez_compressed's zlib)
// for reuse by ResetDict.
var deflaters sync.Pool

// huffmanDeflaters holds *flate.Writer (Huffman only) for reuse.
var huffmanDeflaters sync.Pool

const pieceSize = 1 << 20 // inflate/deflate unit

// npzMember is a member to convert, its npy header read.
type npzMember struct {
	f         *zip.File
	name      string // `member "x.npy"`
	key       string
	h         npyHeader
	dataOff   int64  // stored members: offset of the array data in the archive
	hdrCRC    uint32 // stored members: CRC-32 of the npy header bytes
	transpose bool
}

func npzToMmpkl(ctx context.Context, src string, out *bridge.File, opt *Options, p *progress) error {
	fd, err := os.Open(src)
	if err != nil {
		return err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	zr, err := zip.NewReader(fd, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		// Member names are only keys here: "../x.npy" is harmless.
		return fmt.Errorf("%s: %w", src, err)
	}
	zr.RegisterDecompressor(zip.Deflate, newInflater)

	var members []*npzMember
	var total int64
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := npzReadMember(src, fd, size, f, opt.Profile)
		if err != nil {
			var u *UnsupportedError
			if errors.As(err, &u) {
				if err := opt.skip(u); err != nil {
					return err
				}
				continue
			}
			return err
		}
		members = append(members, m)
		total += m.h.NBytes
	}
	p.total.Add(total)
	if err := ensureSpace(src, out, total); err != nil {
		return err
	}
	return npzPut(ctx, src, out, npzUnits(members), opt, p)
}

// npzReadMember checks a member and reads its npy header.
func npzReadMember(src string, fd *os.File, size int64, f *zip.File, profile bridge.Encoding) (*npzMember, error) {
	m := &npzMember{f: f, name: fmt.Sprintf("member %q", f.Name)}
	unsupported := func(reason string) error {
		return &UnsupportedError{File: src, Member: m.name, Reason: reason}
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s: %s", src, m.name, fmt.Sprintf(format, args...))
	}
	key, ok := strings.CutSuffix(f.Name, ".npy")
	if !ok {
		return nil, unsupported("not an .npy member")
	}
	if key == "" || len(key) > 255 {
		return nil, unsupported(fmt.Sprintf("key %q has %d bytes (mmappickle keys have 1 to 255)", key, len(key)))
	}
	if !utf8.ValidString(key) {
		return nil, unsupported(fmt.Sprintf("key %q is not UTF-8", key))
	}
	m.key = key
	if f.Flags&0x41 != 0 { // encrypted, or strongly encrypted
		return nil, unsupported("encrypted members cannot be converted")
	}
	if f.Flags&0x20 != 0 {
		// Flag bit 5: the bytes are a patch against another file, not
		// the member (archive/zip does not check it).
		return nil, unsupported("compressed patched data (zip flag bit 5) cannot be converted")
	}
	var err error
	switch f.Method {
	case zip.Store:
		if f.CompressedSize64 != f.UncompressedSize64 {
			return nil, fail("stored member of %d bytes claims %d uncompressed", f.CompressedSize64, f.UncompressedSize64)
		}
		var off int64
		if off, err = f.DataOffset(); err != nil {
			return nil, fail("%v", err)
		}
		if f.CompressedSize64 > uint64(size) || off > size-int64(f.CompressedSize64) {
			return nil, fail("member data (%d bytes at offset %d) runs past the end of the archive (%d bytes): %v", f.CompressedSize64, off, size, zip.ErrFormat)
		}
		crc := crc32.NewIEEE()
		m.h, err = readNpyHeader(io.TeeReader(io.NewSectionReader(fd, off, int64(f.CompressedSize64)), crc), int64(f.CompressedSize64))
		m.hdrCRC = crc.Sum32()
		m.dataOff = off + m.h.DataOff
	case zip.Deflate:
		var rc io.ReadCloser
		rc, err = f.Open()
		if err != nil {
			return nil, fail("%v", err)
		}
		avail := int64(min(f.UncompressedSize64, 1<<62))
		m.h, err = readNpyHeader(rc, avail)
		rc.Close()
	default:
		return nil, unsupported(fmt.Sprintf("compression method %d is not supported (stored and deflated are)", f.Method))
	}
	if err != nil {
		var u *npyUnsupported
		if errors.As(err, &u) {
			return nil, unsupported(u.reason)
		}
		return nil, fail("%v", err)
	}
	if have := int64(min(f.UncompressedSize64, 1<<62)) - m.h.DataOff; have < m.h.NBytes {
		return nil, fail("truncated: the array data has %d bytes, the header says %d (dtype %s, shape %v)", have, m.h.NBytes, m.h.DType, m.h.Shape)
	}
	m.transpose = m.h.needsTranspose(profile)
	return m, nil
}

type npzJob struct {
	m    *npzMember
	slot *bridge.Slot
	done chan error
}

// npzFill reserves the members' slots in archive order, fills them on all
// cores and commits them in archive order.
func npzFill(ctx context.Context, src string, out *bridge.File, members []*npzMember, opt *Options, p *progress) error {
	if len(members) == 0 {
		return nil
	}
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	nw := min(runtime.NumCPU(), len(members))
	jobs := make(chan *npzJob)
	order := make(chan *npzJob, 2*nw)
	var wg sync.WaitGroup
	for range nw {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &npzWorker{src: src, dst: opt.outPath(out), scratchDir: opt.scratchDir, p: p}
			defer w.close()
			for j := range jobs {
				err := ctx2.Err()
				if err == nil {
					if err = w.fill(ctx2, j); err != nil {
						fail(err)
					}
				}
				j.done <- err
			}
		}()
	}
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		for j := range order {
			err := <-j.done
			if err == nil {
				err = ctx2.Err()
			}
			if err == nil {
				err = j.slot.Commit()
			}
			if err != nil {
				fail(err)
			}
		}
	}()
	for _, m := range members {
		if ctx2.Err() != nil {
			break
		}
		h := m.h.array()
		if m.transpose {
			h.Fortran = false
		}
		slot, err := out.Reserve(m.key, h)
		if err != nil {
			fail(fmt.Errorf("%s: %s: %w", src, m.name, err))
			break
		}
		j := &npzJob{m: m, slot: slot, done: make(chan error, 1)}
		order <- j
		jobs <- j
	}
	close(jobs)
	close(order)
	wg.Wait()
	<-committed
	if err := ctx.Err(); err != nil {
		return err
	}
	return firstErr
}

// npzWorker fills slots. It keeps its own descriptors of the archive and of
// the output, so that copy_file_range runs without the output's lock and
// with a file offset of its own; an output that cannot be opened again (an
// unnamed scratch file where /proc is missing: dst "") is written through
// the slots.
type npzWorker struct {
	src, dst   string
	scratchDir string // for transposing deflated members
	p          *progress
	in, out    *os.File
	buf        []byte
	crcBuf     []byte // the CRC goroutine's
}

// open opens the worker's descriptor of the archive, and of the output if
// out.
func (w *npzWorker) open(out bool) (err error) {
	if w.in == nil {
		if w.in, err = os.Open(w.src); err != nil {
			return err
		}
	}
	if out && w.out == nil && w.dst != "" {
		w.out, err = os.OpenFile(w.dst, os.O_RDWR, 0)
	}
	return err
}

func (w *npzWorker) close() {
	if w.in != nil {
		w.in.Close()
	}
	if w.out != nil {
		w.out.Close()
	}
}

func (w *npzWorker) fill(ctx context.Context, j *npzJob) error {
	m := j.m
	var err error
	switch {
	case m.f.Method == zip.Store && m.transpose:
		err = w.storedTransposed(ctx, j)
	case m.f.Method == zip.Store:
		err = w.stored(ctx, j)
	case m.transpose:
		err = w.deflatedTransposed(ctx, j)
	default:
		err = w.deflated(ctx, j)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%s: %s: %w", w.src, m.name, err)
	}
	return err
}

// stored copies a stored member's data into its slot by copy_file_range
// while a second goroutine checks the member's CRC-32, reading the archive
// by pread into a buffer of its own (0.12 s/GiB from the page cache; a
// walk through mmap windows took 0.6 s): the kernel copies on one core,
// the CRC runs on another.
func (w *npzWorker) stored(ctx context.Context, j *npzJob) (err error) {
	m := j.m
	if err := w.open(true); err != nil {
		return err
	}
	var dst io.Writer = io.NewOffsetWriter(j.slot, 0)
	if w.out != nil {
		if _, err := w.out.Seek(j.slot.Offset, io.SeekStart); err != nil {
			return err
		}
		dst = w.out
	}
	type result struct {
		crc uint32
		err error
	}
	sum := make(chan result, 1)
	go func() {
		if w.crcBuf == nil {
			w.crcBuf = make([]byte, pieceSize)
		}
		crc, err := crcRange(ctx, w.crcBuf, m.hdrCRC, w.in, m.dataOff, m.h.NBytes)
		sum <- result{crc, err}
	}()
	span := &fileSpan{ctx: ctx, f: w.in, off: m.dataOff, n: m.h.NBytes, p: w.p}
	_, err = span.WriteTo(dst)
	r := <-sum
	if err != nil {
		return err
	}
	if r.err != nil {
		return r.err
	}
	return w.checkStoredCRC(m, r.crc)
}

// crcRange continues crc over n bytes of f from off, read into buf.
func crcRange(ctx context.Context, buf []byte, crc uint32, f *os.File, off, n int64) (uint32, error) {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return crc, err
		}
		k, err := f.ReadAt(buf[:min(int64(len(buf)), n)], off)
		crc = crc32.Update(crc, crc32.IEEETable, buf[:k])
		off += int64(k)
		n -= int64(k)
		if err == io.EOF && n > 0 {
			return crc, io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return crc, err
		}
	}
	return crc, nil
}

// checkStoredCRC finishes the CRC with the bytes of the member past the
// array data (normally none) and compares.
func (w *npzWorker) checkStoredCRC(m *npzMember, crc uint32) error {
	if tail := int64(m.f.UncompressedSize64) - m.h.DataOff - m.h.NBytes; tail > 0 {
		var err error
		if w.buf == nil {
			w.buf = make([]byte, pieceSize)
		}
		if crc, err = crcRange(context.Background(), w.buf, crc, w.in, m.dataOff+m.h.NBytes, tail); err != nil {
			return err
		}
	}
	if crc != m.f.CRC32 {
		return fmt.Errorf("CRC-32 %08x, the archive says %08x: %w", crc, m.f.CRC32, zip.ErrChecksum)
	}
	return nil
}

// crcMapped continues crc over mapped bytes; a fault (the file shrank) is
// an error.
func crcMapped(crc uint32, b []byte) (sum uint32, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading mapped data: %v", r)
		}
	}()
	return crc32.Update(crc, crc32.IEEETable, b), nil
}

// storedTransposed maps a stored Fortran-ordered member and writes its C
// order transpose into the slot (mmappickle profile).
func (w *npzWorker) storedTransposed(ctx context.Context, j *npzJob) (err error) {
	m := j.m
	if err := w.open(false); err != nil {
		return err
	}
	mp, data, err := mapRegion(w.in, m.dataOff, m.h.NBytes)
	if err != nil {
		return err
	}
	defer mp.Unmap()
	if err := writeFToC(ctx, j.slot, data, m.h.Shape, m.h.DType.ItemSize, w.p); err != nil {
		return err
	}
	crc, err := crcMapped(m.hdrCRC, data)
	if err != nil {
		return err
	}
	return w.checkStoredCRC(m, crc)
}

// openData opens a deflated member positioned at its array data. The
// compressed bytes are read in 1 MiB pieces (archive/zip's Open reads them
// 4 KiB at a time: 60,000 preads for a 256 MiB archive) and inflated by
// newInflater; the CRC-32 and size are checked at the end, as archive/zip
// does (finishData).
func openData(m *npzMember) (io.ReadCloser, error) {
	raw, err := m.f.OpenRaw()
	if err != nil {
		return nil, err
	}
	fr := newInflater(bufio.NewReaderSize(raw, pieceSize))
	rc := &memberReader{r: fr, c: fr, f: m.f}
	if _, err := io.CopyN(io.Discard, rc, m.h.DataOff); err != nil {
		rc.Close()
		return nil, eofUnexpected(err)
	}
	return rc, nil
}

// memberReader reads an inflated member, checking its CRC-32 and size at
// the end as archive/zip's reader does.
type memberReader struct {
	r   io.Reader
	c   io.Closer
	f   *zip.File
	crc uint32
	n   uint64
	err error
}

func (m *memberReader) Read(b []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.r.Read(b)
	m.crc = crc32.Update(m.crc, crc32.IEEETable, b[:n])
	m.n += uint64(n)
	if m.n > m.f.UncompressedSize64 {
		err = zip.ErrFormat
	}
	if err == io.EOF {
		switch {
		case m.n != m.f.UncompressedSize64:
			err = io.ErrUnexpectedEOF
		case m.crc != m.f.CRC32:
			err = fmt.Errorf("CRC-32 %08x, the archive says %08x: %w", m.crc, m.f.CRC32, zip.ErrChecksum)
		}
	}
	m.err = err
	return n, err
}

func (m *memberReader) Close() error { return m.c.Close() }

// finishData reads the member to its end, which checks the CRC-32 and
// size (trailing bytes past the array are ignored, as numpy does).
func finishData(rc io.Reader) error {
	_, err := io.Copy(io.Discard, rc)
	return err
}

// deflated inflates a member into its slot in 1 MiB pieces (pwrite: a full
// disk is an error, where writing through a mapping would crash).
func (w *npzWorker) deflated(ctx context.Context, j *npzJob) error {
	m := j.m
	rc, err := openData(m)
	if err != nil {
		return err
	}
	defer rc.Close()
	if w.buf == nil {
		w.buf = make([]byte, pieceSize)
	}
	var off int64
	for off < m.h.NBytes {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(rc, w.buf[:min(int64(len(w.buf)), m.h.NBytes-off)])
		if n > 0 {
			if _, err := j.slot.WriteAt(w.buf[:n], off); err != nil {
				return err
			}
			off += int64(n)
			w.p.add(int64(n))
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return fmt.Errorf("truncated: the array data ends after %d of %d bytes", off, m.h.NBytes)
			}
			return err
		}
	}
	return finishData(rc)
}

// deflatedTransposed inflates a Fortran-ordered member into an unlinked
// temporary file beside the output (constant memory), maps it and writes
// its C-order transpose into the slot (mmappickle profile).
func (w *npzWorker) deflatedTransposed(ctx context.Context, j *npzJob) error {
	m := j.m
	rc, err := openData(m)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := atomicfile.Scratch(w.scratchDir)
	if err != nil {
		return err
	}
	defer tmp.Close()
	n, err := io.Copy(tmp, &ctxReader{ctx: ctx, r: io.LimitReader(rc, m.h.NBytes)})
	if err != nil {
		return err
	}
	if n < m.h.NBytes {
		return fmt.Errorf("truncated: the array data ends after %d of %d bytes", n, m.h.NBytes)
	}
	if err := finishData(rc); err != nil {
		return err
	}
	mp, data, err := mapRegion(tmp, 0, m.h.NBytes)
	if err != nil {
		return err
	}
	defer mp.Unmap()
	return writeFToC(ctx, j.slot, data, m.h.Shape, m.h.DType.ItemSize, w.p)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

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
	r := a.Reader()
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
	_, err := io.Copy(w, p.reader(a.Reader()))
	return err
}

func writeMapped(w io.Writer, b []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading mapped data: %v", r)
		}
	}()
	_, err = w.Write(b)
	return err
}

// parallelDeflater compresses one zip member on all cores: the input is cut
// into 1 MiB pieces, each deflated by its own goroutine with the 32 KiB
// before it as preset dictionary and ended by a sync flush (byte-aligned,
// not final), and the compressed pieces are written in order, then an
// empty final block. The result is one ordinary deflate stream (pigz does
// the same). At most 2×NumCPU pieces are in flight.
type parallelDeflater struct {
	ctx     context.Context
	out     io.Writer
	cur     []byte
	dict    []byte // the last 32 KiB of input before cur
	pending []*deflatePiece
	max     int
	err     error
	pool    *sync.Pool
}

type deflatePiece struct {
	in, dict []byte
	out      bytes.Buffer
	done     chan struct{}
	err      error
}

func newParallelDeflater(ctx context.Context, out io.Writer) *parallelDeflater {
	return &parallelDeflater{
		ctx: ctx, out: out, max: 2 * runtime.NumCPU(),
		pool: &sync.Pool{New: func() any { return make([]byte, 0, pieceSize) }},
	}
}

func (d *parallelDeflater) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if d.err != nil {
			return n, d.err
		}
		if d.cur == nil {
			d.cur = d.pool.Get().([]byte)[:0]
		}
		k := copy(d.cur[len(d.cur):cap(d.cur)], b)
		d.cur = d.cur[:len(d.cur)+k]
		b, n = b[k:], n+k
		if len(d.cur) == cap(d.cur) {
			d.dispatch()
		}
	}
	return n, d.err
}

func (d *parallelDeflater) dispatch() {
	if err := d.ctx.Err(); err != nil && d.err == nil {
		d.err = err
	}
	for len(d.pending) >= d.max && d.err == nil {
		d.writeHead()
	}
	if d.err != nil {
		return
	}
	pc := &deflatePiece{in: d.cur, dict: d.dict, done: make(chan struct{})}
	const window = 32 << 10
	d.dict = append([]byte(nil), d.cur[max(0, len(d.cur)-window):]...)
	d.cur = nil
	d.pending = append(d.pending, pc)
	go func() {
		defer close(pc.done)
		pc.out.Grow(len(pc.in)/2 + 64)
		fw, _ := deflaters.Get().(*flate.Writer)
		var err error
		if fw == nil {
			fw, err = flate.NewWriterDict(&pc.out, flate.DefaultCompression, pc.dict)
		} else {
			fw.ResetDict(&pc.out, pc.dict)
		}
		if err == nil {
			_, err = fw.Write(pc.in)
		}
		if err == nil {
			err = fw.Flush()
		}
		if err == nil {
			deflaters.Put(fw)
			err = pc.huffmanIfSmaller()
		}
		pc.err = err
	}()
}

// huffmanIfSmaller recompresses a piece with Huffman coding alone when
// level 6 found almost nothing to gain: klauspost's fast levels store what
// their matcher finds incompressible, where zlib still entropy-codes it
// (noisy float arrays: 8% smaller), and Huffman alone gets the same
// (BenchmarkNpzDeflate) at 300 MB/s a core. The smaller output is kept.
func (pc *deflatePiece) huffmanIfSmaller() error {
	if pc.out.Len() < len(pc.in)-len(pc.in)/32 {
		return nil
	}
	var h bytes.Buffer
	h.Grow(len(pc.in))
	fw, _ := huffmanDeflaters.Get().(*flate.Writer)
	if fw == nil {
		var err error
		if fw, err = flate.NewWriter(&h, flate.HuffmanOnly); err != nil {
			return err
		}
	} else {
		fw.Reset(&h)
	}
	if _, err := fw.Write(pc.in); err != nil {
		return err
	}
	if err := fw.Flush(); err != nil {
		return err
	}
	huffmanDeflaters.Put(fw)
	if h.Len() < pc.out.Len() {
		pc.out = h
	}
	return nil
}

func (d *parallelDeflater) writeHead() {
	pc := d.pending[0]
	d.pending = d.pending[1:]
	<-pc.done
	if d.err == nil {
		d.err = pc.err
	}
	if d.err == nil {
		_, d.err = d.out.Write(pc.out.Bytes())
	}
	d.pool.Put(pc.in[:0])
}

func (d *parallelDeflater) Close() error {
	if len(d.cur) > 0 {
		d.dispatch()
	}
	for len(d.pending) > 0 {
		d.writeHead()
	}
	if d.err == nil {
		// An empty final block with fixed Huffman codes: BFINAL=1,
		// BTYPE=01, end-of-block.
		_, d.err = d.out.Write([]byte{0x03, 0x00})
	}
	return d.err
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
