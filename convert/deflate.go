package convert

// The parallel deflater of --compress: 1 MiB pieces deflated on all cores
// and joined into one deflate stream (as pigz does).

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
)

// deflaters holds *flate.Writer (level 6, as np.savez_compressed's zlib)
// for reuse by ResetDict.
var deflaters sync.Pool

// huffmanDeflaters holds *flate.Writer (Huffman only) for reuse.
var huffmanDeflaters sync.Pool

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
