package transpose

import (
	"bytes"
	"errors"
	"testing"
)

// fToCNaive is the definition: C-order index -> Fortran offset.
func fToCNaive(src []byte, shape []int, size int) []byte {
	n := 1
	for _, d := range shape {
		n *= d
	}
	out := make([]byte, 0, len(src))
	idx := make([]int, len(shape))
	for range n {
		off, stride := 0, size
		for ax := range shape {
			off += idx[ax] * stride
			stride *= shape[ax]
		}
		out = append(out, src[off:off+size]...)
		for ax := len(shape) - 1; ax >= 0; ax-- {
			idx[ax]++
			if idx[ax] < shape[ax] {
				break
			}
			idx[ax] = 0
		}
	}
	return out
}

func TestFToC(t *testing.T) {
	t.Parallel()
	shapes := [][]int{{}, {5}, {2, 3}, {3, 2}, {1, 7}, {7, 1}, {2, 3, 4}, {4, 1, 3, 2}, {0, 3}, {3, 0}, {1000, 700}, {3, Piece/8 + 5}, {2, 3*Piece + 1}, {2, 2, Piece / 3}}
	for _, shape := range shapes {
		for _, size := range []int{1, 2, 3, 4, 8, 16} {
			n := size
			for _, d := range shape {
				n *= d
			}
			if n > 8<<20 {
				continue
			}
			src := make([]byte, n)
			for i := range src {
				src[i] = byte(i*7 + i>>8)
			}
			got := &pieceWriter{}
			if err := FToC(got, src, shape, size); err != nil {
				t.Fatalf("%v x%d: %v", shape, size, err)
			}
			if want := fToCNaive(src, shape, size); !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%v x%d: wrong order", shape, size)
			}
			if got.largest > max(Piece, size) {
				t.Errorf("%v x%d: a write of %d bytes", shape, size, got.largest)
			}
		}
	}
}

func TestFToCRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n     int
		shape []int
		size  int
	}{{5, []int{2, 3}, 1}, {6, []int{2, -3}, 1}, {0, []int{2, 3}, 0}, {0, []int{1 << 40, 1 << 40, 0}, 8}} {
		if err := FToC(&bytes.Buffer{}, make([]byte, c.n), c.shape, c.size); err == nil {
			t.Errorf("%d bytes, shape %v x%d: accepted", c.n, c.shape, c.size)
		}
	}
}

// pieceWriter keeps what is written and the largest write.
type pieceWriter struct {
	bytes.Buffer
	largest int
}

func (w *pieceWriter) Write(p []byte) (int, error) {
	w.largest = max(w.largest, len(p))
	return w.Buffer.Write(p)
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after--; w.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestFToCWriteError(t *testing.T) {
	t.Parallel()
	src := make([]byte, 4*Piece)
	err := FToC(&failWriter{after: 1}, src, []int{1024, 4 * Piece / 1024 / 4}, 4)
	if err == nil || err.Error() != "disk full" {
		t.Errorf("got %v, want the writer's error", err)
	}
}

func BenchmarkFToC(b *testing.B) {
	src := make([]byte, 64<<20)
	shape := []int{4096, len(src) / 4096 / 8}
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if err := FToC(discard{}, src, shape, 8); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
