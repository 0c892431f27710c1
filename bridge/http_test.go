package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mmpbridge/pyval"
	"mmpbridge/remote"
)

// served is a file behind an httptest server that serves it as static
// servers do (Range, ETag, Last-Modified, If-Match), with faults to inject.
type served struct {
	mu     sync.Mutex
	data   []byte
	etag   string
	mod    time.Time
	fault  func(w http.ResponseWriter, r *http.Request) bool // true: handled
	ranges []string
	srv    *httptest.Server
}

func serve(t *testing.T, data []byte) *served {
	s := &served{data: data, etag: `"v1"`, mod: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		data, etag, mod, fault := s.data, s.etag, s.mod, s.fault
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.mu.Unlock()
		if fault != nil && fault(w, r) {
			return
		}
		w.Header().Set("ETag", etag)
		http.ServeContent(w, r, "f.mmpkl", mod, bytes.NewReader(data))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *served) url() string { return s.srv.URL + "/f.mmpkl" }

func (s *served) replace(data []byte, etag string) {
	s.mu.Lock()
	s.data, s.etag, s.mod = data, etag, s.mod.Add(time.Hour)
	s.mu.Unlock()
}

func (s *served) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// httpTestFile writes a file of n small arrays, a value and one big array.
func httpTestFile(t *testing.T, n int, big int) []byte {
	t.Helper()
	name := filepath.Join(t.TempDir(), "f.mmpkl")
	f, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	dt, _ := ParseDType("<i8")
	for i := range n {
		b := make([]byte, 80)
		for j := range b {
			b[j] = byte(i + j)
		}
		if err := f.PutArray(fmt.Sprintf("a%d", i), ArrayHeader{DType: dt, Shape: []int{10}}, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Put("meta", pyval.Dict{{Key: "gain", Value: 1.5}}); err != nil {
		t.Fatal(err)
	}
	if big > 0 {
		u8, _ := ParseDType("|u1")
		b := make([]byte, big)
		for i := range b {
			b[i] = byte(i * 7)
		}
		if err := f.PutArray("big", ArrayHeader{DType: u8, Shape: []int{big}}, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func fastRetries() remote.Option { return remote.WithRetries(3, time.Millisecond) }

// sameAsLocal reads every key of r and of the same bytes held locally.
func sameAsLocal(t *testing.T, r *Reader, data []byte) {
	t.Helper()
	local, err := newReaderBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(r.Keys()), fmt.Sprint(local.Keys()); got != want {
		t.Fatalf("keys %s, want %s", got, want)
	}
	for _, k := range local.Keys() {
		lv, err := local.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		rv, err := r.Get(k)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if la, ok := lv.(*Array); ok {
			ra := rv.(*Array)
			lb, _ := io.ReadAll(la.Section())
			rb, err := io.ReadAll(ra.Section())
			if err != nil || !bytes.Equal(lb, rb) || la.DType != ra.DType || fmt.Sprint(la.Shape) != fmt.Sprint(ra.Shape) {
				t.Fatalf("%s: remote array differs (%v)", k, err)
			}
			continue
		}
		if fmt.Sprint(lv) != fmt.Sprint(rv) {
			t.Fatalf("%s: %v, want %v", k, rv, lv)
		}
	}
}

func TestHTTPReadsAsLocal(t *testing.T) {
	t.Parallel()
	data := httpTestFile(t, 2000, 20<<20)
	s := serve(t, data)
	f, err := remote.Open(context.Background(), s.url())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != int64(len(data)) {
		t.Fatalf("size %d, want %d", f.Size(), len(data))
	}
	r, err := NewReader(f, f.Size())
	if err != nil {
		t.Fatal(err)
	}
	reqs, moved := f.Stats()
	// The walk of 2,000 entries (about 400 KiB) then the big array's
	// header: readahead keeps it to a few requests.
	if reqs > 10 {
		t.Errorf("opening took %d requests (%d bytes)", reqs, moved)
	}
	sameAsLocal(t, r, data)
	reqs, moved = f.Stats()
	if moved > int64(len(data))+int64(len(data))/4 {
		t.Errorf("reading everything moved %d bytes for a file of %d", moved, len(data))
	}
	t.Logf("%d requests, %d bytes moved, file %d bytes", reqs, moved, len(data))
}

// TestHTTPOneArray: fetching one array of a file moves about its bytes.
func TestHTTPOneArray(t *testing.T) {
	t.Parallel()
	data := httpTestFile(t, 3, 8<<20)
	s := serve(t, data)
	f, err := remote.Open(context.Background(), s.url())
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(f, f.Size())
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.Array("big")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(a.Section())
	if err != nil || len(b) != 8<<20 || b[12345] != byte(12345*7%256) {
		t.Fatalf("big: %d bytes, %v", len(b), err)
	}
	reqs, moved := f.Stats()
	if moved > 8<<20+1<<20 {
		t.Errorf("one 8 MiB array moved %d bytes in %d requests", moved, reqs)
	}
}

func TestHTTPFaults(t *testing.T) {
	t.Parallel()
	data := httpTestFile(t, 50, 1<<20)
	for _, c := range []struct {
		name  string
		fault func(n int64) func(w http.ResponseWriter, r *http.Request) bool
		opts  []remote.Option
		want  error  // nil: the read must succeed (retried)
		msg   string // in the error
	}{
		{"404", func(int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool { http.NotFound(w, r); return true }
		}, nil, nil, "404 Not Found"},
		{"no range", func(int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool { w.Write(data); return true }
		}, nil, remote.ErrNoRange, ""},
		{"wrong content-range", func(int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 1-10/%d", len(data)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(data[1:11])
				return true
			}
		}, nil, remote.ErrNoRange, ""},
		{"503 then fine", failFirst(2, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}), []remote.Option{fastRetries()}, nil, ""},
		{"dropped mid-body then fine", failFirst(2, func(w http.ResponseWriter, r *http.Request) {
			var a, b int
			fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b)
			b = min(b, len(data)-1)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, len(data)))
			w.Header().Set("Content-Length", fmt.Sprint(b-a+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[a : a+10]) // then the handler returns: the connection is cut
		}), []remote.Option{fastRetries()}, nil, ""},
		{"truncated then fine", failFirst(1, func(w http.ResponseWriter, r *http.Request) {
			var a, b int
			fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b)
			b = min(b, len(data)-1)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, len(data)))
			w.WriteHeader(http.StatusPartialContent) // no Content-Length: the body just ends
			w.Write(data[a : a+100])
		}), []remote.Option{fastRetries()}, nil, ""},
		{"always 503", func(int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return true
			}
		}, []remote.Option{fastRetries()}, nil, "503 Service Unavailable"},
		{"stall past the timeout", func(int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				select {
				case <-time.After(2 * time.Second):
				case <-r.Context().Done():
				}
				return true
			}
		}, []remote.Option{remote.WithTimeout(100 * time.Millisecond), remote.WithRetries(1, time.Millisecond)}, context.DeadlineExceeded, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := serve(t, data)
			s.setFault(c.fault(0))
			f, err := remote.Open(context.Background(), s.url(), c.opts...)
			if err == nil {
				var r *Reader
				if r, err = NewReader(f, f.Size()); err == nil {
					sameAsLocal(t, r, data)
				}
			}
			switch {
			case c.want == nil && c.msg == "":
				if err != nil {
					t.Fatalf("got %v, want a successful retry", err)
				}
			case err == nil:
				t.Fatalf("no error, want %v %q", c.want, c.msg)
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("got %v, want %v", err, c.want)
			case !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), s.url()):
				t.Fatalf("got %q, want the URL and %q", err, c.msg)
			}
		})
	}
}

// failFirst answers the first n requests with bad, the rest normally.
func failFirst(n int64, bad func(w http.ResponseWriter, r *http.Request)) func(int64) func(http.ResponseWriter, *http.Request) bool {
	return func(int64) func(http.ResponseWriter, *http.Request) bool {
		var count atomic.Int64
		return func(w http.ResponseWriter, r *http.Request) bool {
			if count.Add(1) <= n {
				bad(w, r)
				return true
			}
			return false
		}
	}
}

// TestHTTPReplaced: a file replaced on the server between two reads fails
// the second with remote.ErrRemoteChanged, never mixing the versions.
func TestHTTPReplaced(t *testing.T) {
	t.Parallel()
	data := httpTestFile(t, 20, 2<<20)
	for _, etag := range []bool{true, false} {
		s := serve(t, data)
		if !etag {
			// No ETag: Last-Modified pins the version.
			s.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				s.mu.Lock()
				d, mod := s.data, s.mod
				s.mu.Unlock()
				http.ServeContent(w, r, "f.mmpkl", mod, bytes.NewReader(d))
				return true
			})
		}
		f, err := remote.Open(context.Background(), s.url(), remote.WithCacheSize(0))
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(f, f.Size())
		if err != nil {
			t.Fatal(err)
		}
		other := bytes.Clone(data)
		for i := len(other) - (2 << 20); i < len(other)-100; i++ {
			other[i] ^= 0xff
		}
		s.replace(other, `"v2"`)
		a, err := r.Array("big")
		if err == nil {
			_, err = io.ReadAll(a.Section())
		}
		if !errors.Is(err, remote.ErrRemoteChanged) {
			t.Errorf("etag %v: read after the file was replaced: %v, want remote.ErrRemoteChanged", etag, err)
		}
	}
}

func TestHTTPOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []remote.Option{remote.WithBlockSize(1000), remote.WithBlockSize(1 << 30), remote.WithCacheSize(-1), remote.WithRetries(-1, 0), remote.WithTimeout(0), remote.WithHTTPClient(nil)} {
		if _, err := remote.Open(context.Background(), "http://127.0.0.1:1/x", o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("got %v, want ErrInvalidOption", err)
		}
	}
}

// TestHTTPAsksIdentity: range requests ask for the bytes as stored
// (Accept-Encoding: identity), and a compressed answer is refused.
func TestHTTPAsksIdentity(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../compat/testdata/portable/dtypes.mmpkl")
	if err != nil {
		t.Fatal(err)
	}
	var bad atomic.Int64
	gzipped := atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "identity" {
			bad.Add(1)
		}
		if gzipped.Load() {
			w.Header().Set("Content-Encoding", "gzip")
		}
		http.ServeContent(w, r, "f.mmpkl", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	r, c, err := OpenReader(context.Background(), srv.URL+"/f.mmpkl")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if bad.Load() != 0 || r.Len() == 0 {
		t.Errorf("%d requests without Accept-Encoding: identity", bad.Load())
	}
	gzipped.Store(true)
	if _, _, err := OpenReader(context.Background(), srv.URL+"/g.mmpkl"); !errors.Is(err, remote.ErrNoRange) || !strings.Contains(err.Error(), "Content-Encoding") {
		t.Errorf("a compressed range: %v", err)
	}
}
