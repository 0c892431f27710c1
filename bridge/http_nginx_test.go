package bridge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mmpbridge/remote"

	"mmpbridge/internal/nginxtest"
)

// TestHTTPNginxFaults reads through a proxy of our own in front of nginx
// that injects faults: each is a correct retry or a clear error, never
// wrong bytes.
func TestHTTPNginxFaults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := httpTestFile(t, 200, 3<<20)
	name := filepath.Join(dir, "f.mmpkl")
	os.WriteFile(name, data, 0o644)
	ng := nginxtest.Start(t, dir)
	target, _ := url.Parse(ng.URL)
	type fault func(n int64, w http.ResponseWriter, r *http.Request, next http.Handler) bool
	for _, c := range []struct {
		name  string
		fault fault
		opts  []remote.Option
		want  error // nil: must succeed
		msg   string
	}{
		{"none", nil, nil, nil, ""},
		{"dropped mid-body", func(n int64, w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if n%3 != 2 {
				return false
			}
			next.ServeHTTP(&cutWriter{ResponseWriter: w, left: 1000}, r)
			return true
		}, []remote.Option{fastRetries()}, nil, ""},
		{"200 instead of 206", func(n int64, w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if n != 3 {
				return false
			}
			r.Header.Del("Range")
			next.ServeHTTP(w, r)
			return true
		}, nil, remote.ErrNoRange, ""},
		{"stall past the timeout", func(n int64, w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if n < 2 {
				return false
			}
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			return true
		}, []remote.Option{remote.WithTimeout(200 * time.Millisecond), remote.WithRetries(1, time.Millisecond)}, context.DeadlineExceeded, ""},
		{"truncated body", func(n int64, w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if n%4 != 3 {
				return false
			}
			// nginx's answer, sent on without its length and cut short.
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			for k, vs := range rec.Header() {
				if k != "Content-Length" {
					w.Header()[k] = vs
				}
			}
			w.WriteHeader(rec.Code)
			body := rec.Body.Bytes()
			w.Write(body[:len(body)/2])
			return true
		}, []remote.Option{fastRetries()}, nil, ""},
		{"5xx once", func(n int64, w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if n != 2 {
				return false
			}
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return true
		}, []remote.Option{fastRetries()}, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			proxy := httputil.NewSingleHostReverseProxy(target)
			var count atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := count.Add(1)
				if c.fault != nil && c.fault(n, w, r, proxy) {
					return
				}
				proxy.ServeHTTP(w, r)
			}))
			defer srv.Close()
			u := srv.URL + "/f.mmpkl"
			f, err := remote.Open(context.Background(), u, append([]remote.Option{remote.WithBlockSize(4096)}, c.opts...)...)
			if err == nil {
				var r *Reader
				if r, err = NewReader(f, f.Size()); err == nil {
					err = readAllKeys(r, data)
				}
			}
			switch {
			case c.want == nil:
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
			case !errors.Is(err, c.want) || !strings.Contains(err.Error(), u):
				t.Fatalf("got %v, want %v naming %s", err, c.want, u)
			}
		})
	}
}

// TestHTTPNginxReplaced: nginx serving a file replaced between two reads
// (a new ETag): the read fails, it does not mix versions.
func TestHTTPNginxReplaced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := httpTestFile(t, 20, 2<<20)
	name := filepath.Join(dir, "f.mmpkl")
	os.WriteFile(name, data, 0o644)
	ng := nginxtest.Start(t, dir)
	f, err := remote.Open(context.Background(), ng.URL+"/f.mmpkl", remote.WithCacheSize(0))
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
	tmp := name + ".new"
	os.WriteFile(tmp, other, 0o644)
	later := time.Now().Add(time.Hour)
	os.Chtimes(tmp, later, later)
	os.Rename(tmp, name)
	a, err := r.Array("big")
	if err == nil {
		_, err = io.ReadAll(a.Section())
	}
	if !errors.Is(err, remote.ErrRemoteChanged) {
		t.Errorf("read after nginx's file was replaced: %v, want remote.ErrRemoteChanged", err)
	}
}

// readAllKeys reads every key and array through r and compares with data.
func readAllKeys(r *Reader, data []byte) error {
	local, err := newReaderBytes(data)
	if err != nil {
		return err
	}
	for _, k := range local.Keys() {
		lv, _ := local.Get(k)
		rv, err := r.Get(k)
		if err != nil {
			return err
		}
		if la, ok := lv.(*Array); ok {
			lb, _ := io.ReadAll(la.Section())
			rb, err := io.ReadAll(rv.(*Array).Section())
			if err != nil {
				return err
			}
			if !bytes.Equal(lb, rb) {
				return errors.New("WRONG BYTES for " + k)
			}
		}
	}
	return nil
}

// cutWriter passes the first left body bytes, then aborts the connection.
type cutWriter struct {
	http.ResponseWriter
	left int
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if len(b) > c.left {
		c.ResponseWriter.Write(b[:c.left])
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	c.left -= len(b)
	return c.ResponseWriter.Write(b)
}
