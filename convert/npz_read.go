package convert

// npz -> mmpkl: the members' headers read first, then their data moved on
// all cores into slots committed in archive order (npz.go says how).

import (
	"archive/zip"
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"mmpbridge/internal/fault"

	"mmpbridge/bridge"
	"mmpbridge/internal/atomicfile"
)

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
func npzReadMember(src string, fd *os.File, size int64, f *zip.File, profile bridge.Profile) (*npzMember, error) {
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
	defer fault.Guard(&err, "reading mapped data", bridge.ErrShrank)()
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
