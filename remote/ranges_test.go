package remote

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rangeServer serves data with Range, recording each request's range.
type rangeServer struct {
	data []byte
	mu   sync.Mutex
	got  []string
	sent atomic.Int64
}

func (s *rangeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rng := r.Header.Get("Range")
	var a, b int64
	if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &a, &b); err != nil || a > b || a >= int64(len(s.data)) {
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	b = min(b, int64(len(s.data))-1)
	s.mu.Lock()
	s.got = append(s.got, rng)
	s.mu.Unlock()
	w.Header().Set("ETag", `"x"`)
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, len(s.data)))
	w.Header().Set("Content-Length", fmt.Sprint(b-a+1))
	w.WriteHeader(http.StatusPartialContent)
	n, _ := w.Write(s.data[a : b+1])
	s.sent.Add(int64(n))
}

// TestReadRangesExact: each range is one request for exactly its bytes
// (pieces of about 8 MiB past 12 MiB), never rounded to blocks or read ahead, even
// when the ranges walk the file sequentially as a cached read's would.
func TestReadRangesExact(t *testing.T) {
	t.Parallel()
	data := make([]byte, 20<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	srv := &rangeServer{data: data}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	f, err := Open(context.Background(), hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		name  string
		spans [][2]int64 // offset, length
		reqs  int
	}{
		{"none", nil, 0},
		{"one byte", [][2]int64{{1000, 1}}, 1},
		{"sequential small", [][2]int64{{70000, 4}, {70004, 4}, {70008, 4}, {70012, 4}, {71000, 100}}, 5},
		{"strided", [][2]int64{{65536, 4}, {131072, 4}, {196608, 4}, {262144, 4}}, 4},
		{"last byte", [][2]int64{{int64(len(data)) - 1, 1}}, 1},
		{"empty range", [][2]int64{{5, 0}, {6, 3}}, 1},
		{"pieces", [][2]int64{{3, 17 << 20}}, 2},
		{"a little over a piece", [][2]int64{{3, 9 << 20}}, 1},
		{"three pieces", [][2]int64{{0, 20 << 20}}, 3},
	}
	for _, tc := range tests {
		srv.mu.Lock()
		srv.got = nil
		srv.mu.Unlock()
		before := srv.sent.Load()
		var want int64
		rs := make([]Range, len(tc.spans))
		for i, s := range tc.spans {
			rs[i] = Range{Off: s[0], P: make([]byte, s[1])}
			want += s[1]
		}
		if err := f.ReadRanges(context.Background(), rs); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, s := range tc.spans {
			if !bytes.Equal(rs[i].P, data[s[0]:s[0]+s[1]]) {
				t.Errorf("%s: range %d holds other bytes", tc.name, i)
			}
		}
		if moved := srv.sent.Load() - before; moved != want {
			t.Errorf("%s: %d bytes moved for %d asked (%v)", tc.name, moved, want, srv.got)
		}
		if len(srv.got) != tc.reqs {
			t.Errorf("%s: %d requests, want %d: %v", tc.name, len(srv.got), tc.reqs, srv.got)
		}
	}
}

// TestReadRangesRefused: ranges outside the file, a cancelled context and
// a server error end the read with an error, and no request goes out after
// a cancellation.
func TestReadRangesRefused(t *testing.T) {
	t.Parallel()
	srv := &rangeServer{data: make([]byte, 1<<20)}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	f, err := Open(context.Background(), hs.URL, WithRetries(0, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range []Range{{Off: -1, P: make([]byte, 1)}, {Off: 1 << 20, P: make([]byte, 1)}, {Off: 1<<20 - 3, P: make([]byte, 4)}, {Off: 1 << 62, P: make([]byte, 1)}} {
		if err := f.ReadRanges(context.Background(), []Range{r}); err == nil || !strings.Contains(err.Error(), "past the end") {
			t.Errorf("range %d+%d: %v", r.Off, len(r.P), err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv.got = nil
	rs := []Range{{Off: 0, P: make([]byte, 10)}, {Off: 100, P: make([]byte, 10)}}
	if err := f.ReadRanges(ctx, rs); err == nil {
		t.Error("a cancelled read succeeded")
	}
	if len(srv.got) != 0 {
		t.Errorf("requests after cancellation: %v", srv.got)
	}
	hs.Close()
	if err := f.ReadRanges(context.Background(), rs); err == nil {
		t.Error("a read from a closed server succeeded")
	}
}
