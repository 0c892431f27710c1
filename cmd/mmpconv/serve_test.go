package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mmpbridge/internal/pyrun"
)

// syncBuffer is a log written by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveTree makes DIR with a corpus file, one in a subdirectory, a
// symlink inside and one out of DIR (to a file beside it).
func serveTree(t *testing.T) (dir string, srv *httptest.Server, log *syncBuffer) {
	t.Helper()
	top := t.TempDir()
	dir = filepath.Join(top, "served")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	src, err := os.ReadFile("../../compat/testdata/mmappickle/dtypes.mmpkl")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "d.mmpkl"), src, 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "d2.mmpkl"), src, 0o644)
	os.WriteFile(filepath.Join(top, "secret.mmpkl"), []byte("outside"), 0o644)
	os.Symlink("../secret.mmpkl", filepath.Join(dir, "out.mmpkl"))
	os.Symlink("d.mmpkl", filepath.Join(dir, "in.mmpkl"))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	log = &syncBuffer{}
	srv = httptest.NewServer(newServer(root, log, 8))
	t.Cleanup(srv.Close)
	return dir, srv, log
}

func get(t *testing.T, url string, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func TestServeFiles(t *testing.T) {
	t.Parallel()
	dir, srv, log := serveTree(t)
	local := filepath.Join(dir, "d.mmpkl")
	want, _ := os.ReadFile(local)
	code, body, h := get(t, srv.URL+"/d.mmpkl")
	if code != 200 || !bytes.Equal(body, want) || h.Get("ETag") == "" || h.Get("Last-Modified") == "" || h.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("GET: %d, %d bytes, headers %v", code, len(body), h)
	}
	code, body, _ = get(t, srv.URL+"/d.mmpkl", "Range", "bytes=10-19")
	if code != 206 || !bytes.Equal(body, want[10:20]) {
		t.Errorf("Range: %d %q", code, body)
	}
	if code, body, _ = get(t, srv.URL+"/in.mmpkl"); code != 200 || !bytes.Equal(body, want) {
		t.Errorf("symlink inside DIR: %d", code)
	}
	// Every read command through the server says what it says locally.
	for _, args := range [][]string{{"ls"}, {"inspect", "--json", "--hash"}, {"verify", "-q"}} {
		_, lout, _ := mmpconv(t, append(args, local)...)
		rc, rout, rerr := mmpconv(t, append(args, srv.URL+"/sub/d2.mmpkl")...)
		if rc != 0 || rout != lout {
			t.Errorf("%v through serve: exit %d %q %s, want %q", args, rc, rout, rerr, lout)
		}
	}
	// The index is inspect --json.
	_, idx, _ := mmpconv(t, "inspect", "--json", local)
	code, body, h = get(t, srv.URL+"/d.mmpkl/")
	if code != 200 || string(body) != idx || h.Get("Content-Type") != "application/json" {
		t.Errorf("index: %d %q", code, body)
	}
	var parsed struct{ Keys map[string]json.RawMessage }
	json.Unmarshal(body, &parsed)
	if len(parsed.Keys) == 0 {
		t.Fatal("index has no keys")
	}
	// Each array as .npy: the bytes get -o writes, and ranges of them.
	n := 0
	for k := range parsed.Keys {
		out := filepath.Join(t.TempDir(), "x.npy")
		if c, _, _ := mmpconv(t, "get", local, k, "-o", out, "--quiet"); c != 0 {
			continue // not an array
		}
		n++
		wantNpy, _ := os.ReadFile(out)
		code, body, _ := get(t, srv.URL+"/d.mmpkl/"+k+".npy")
		if code != 200 || !bytes.Equal(body, wantNpy) {
			t.Errorf("%s.npy: %d, %d bytes, want %d", k, code, len(body), len(wantNpy))
		}
		if len(wantNpy) > 130 {
			code, body, _ = get(t, srv.URL+"/d.mmpkl/"+k+".npy", "Range", "bytes=120-129")
			if code != 206 || !bytes.Equal(body, wantNpy[120:130]) {
				t.Errorf("%s.npy range: %d %q, want %q", k, code, body, wantNpy[120:130])
			}
		}
	}
	if n == 0 {
		t.Fatal("no array served as .npy")
	}
	if code, _, _ = get(t, srv.URL+"/d.mmpkl/nokey.npy"); code != 404 {
		t.Errorf("missing key: %d", code)
	}
	resp, err := http.Post(srv.URL+"/d.mmpkl", "text/plain", strings.NewReader("x"))
	if err != nil || resp.StatusCode != 405 {
		t.Errorf("POST: %v %v", resp.StatusCode, err)
	}
	if lines := strings.Count(log.String(), "\n"); lines < 10 {
		t.Errorf("access log has %d lines:\n%s", lines, log.String())
	}
}

// TestServeNumpyOnly: a user with nothing but numpy loads one array.
func TestServeNumpyOnly(t *testing.T) {
	t.Parallel()
	dir, srv, _ := serveTree(t)
	local := filepath.Join(dir, "d.mmpkl")
	_, ls, _ := mmpconv(t, "ls", local)
	key := strings.Fields(ls)[0]
	want := filepath.Join(t.TempDir(), "w.npy")
	if c, _, errs := mmpconv(t, "get", local, key, "-o", want, "--quiet"); c != 0 {
		t.Fatal(errs)
	}
	out := pyrun.Numpy2(t).Run(t, `import io, sys, urllib.request, numpy as np
a = np.load(io.BytesIO(urllib.request.urlopen(sys.argv[1]).read()))
b = np.load(sys.argv[2])
print(a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())`, srv.URL+"/d.mmpkl/"+key+".npy", want)
	if strings.TrimSpace(out) != "True" {
		t.Errorf("numpy read %q", out)
	}
}

// TestServeRefusesEscapes: nothing outside DIR is served, however the path
// is spelled (raw requests, so that no client cleans them first).
func TestServeRefusesEscapes(t *testing.T) {
	t.Parallel()
	_, srv, _ := serveTree(t)
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, p := range []string{
		"/../secret.mmpkl", "/sub/../../secret.mmpkl", "/%2e%2e/secret.mmpkl", "/sub/%2E%2E/%2e%2e/secret.mmpkl",
		"/..%2fsecret.mmpkl", "//etc/passwd.mmpkl", "/out.mmpkl", "/out.mmpkl/", "/./d.mmpkl", "/sub\\..\\..\\secret.mmpkl",
		"/d.mmpkl%00", "/etc/passwd",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode < 400 || bytes.Contains(body, []byte("outside")) {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
}

// TestServeCommand: mmpconv serve listens, answers and stops on Ctrl-C.
func TestServeCommand(t *testing.T) {
	t.Parallel()
	dir, _, _ := serveTree(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"serve", dir, "--addr", "127.0.0.1:0"}, io.Discard, pw); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.Contains(line, "serving") {
		t.Fatalf("%q %v", line, err)
	}
	go io.Copy(io.Discard, pr)
	url := strings.TrimSpace(line[strings.Index(line, "http://"):])
	if code, _, _ := get(t, url+"d.mmpkl"); code != 200 {
		t.Errorf("GET: %d", code)
	}
	cancel(interrupted{2})
	select {
	case code := <-done:
		if code != 130 {
			t.Errorf("exit %d after Ctrl-C, want 130", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestServeOnlyRegularFiles: a FIFO, a socket, a directory or a link to a
// FIFO inside DIR is never opened for reading: each GET answers 404 at
// once. Before, each GET of a FIFO blocked in open(2) holding a request
// slot, and after 64 of them every request got 503.
func TestServeOnlyRegularFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, err := os.ReadFile("../../compat/testdata/mmappickle/dtypes.mmpkl")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "d.mmpkl"), src, 0o644)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.mmpkl"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink("fifo.mmpkl", filepath.Join(dir, "tofifo.mmpkl"))
	os.Mkdir(filepath.Join(dir, "dir.mmpkl"), 0o755)
	ln, err := net.Listen("unix", filepath.Join(dir, "sock.mmpkl"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	srv := httptest.NewServer(newServer(root, io.Discard, 64)) // serve's default slots
	defer srv.Close()
	// A hang guard, not a measure: a blocked open never answers.
	client := &http.Client{Timeout: 20 * time.Second}
	paths := []string{"/fifo.mmpkl", "/fifo.mmpkl/", "/fifo.mmpkl/a.npy", "/tofifo.mmpkl", "/dir.mmpkl", "/dir.mmpkl/", "/sock.mmpkl"}
	for i := range 70 {
		p := paths[i%len(paths)]
		resp, err := client.Get(srv.URL + p)
		if err != nil {
			t.Fatalf("GET %s (#%d): %v", p, i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	resp, err := client.Get(srv.URL + "/d.mmpkl")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, src) {
		t.Errorf("GET /d.mmpkl after: %d, %d bytes, want 200 and the file", resp.StatusCode, len(b))
	}
}

// TestServeIndexStopsWithClient: the index of a file is rendered under the
// request's context: a request whose client has gone renders nothing and
// answers nothing, and a value too big to render is refused (422) with the
// limit named, not built.
func TestServeIndexStopsWithClient(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, err := os.ReadFile("../../compat/testdata/mmappickle/dtypes.mmpkl")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "d.mmpkl"), src, 0o644)
	v := hostileFiles()["10,000 control characters 26,000 times"]
	os.WriteFile(filepath.Join(dir, "big.mmpkl"), cheapFileMemo(v.value, v.memo), 0o644)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	s := newServer(root, io.Discard, 4)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/d.mmpkl/", nil).WithContext(ctx))
	if rec.Body.Len() != 0 || rec.Code != http.StatusOK { // nothing written: the recorder's default
		t.Errorf("client gone: %d, %d bytes: %.100s", rec.Code, rec.Body.Len(), rec.Body.String())
	}

	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/d.mmpkl/", nil))
	if rec.Code != http.StatusOK || !json.Valid(rec.Body.Bytes()) {
		t.Errorf("index: %d, %.100s", rec.Code, rec.Body.String())
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/big.mmpkl/", nil))
	runtime.ReadMemStats(&after)
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "more than 268435456 bytes") {
		t.Errorf("index of a value too big to render: %d, %.200s", rec.Code, rec.Body.String())
	}
	t.Logf("refused in %d bytes allocated (process-wide)", after.TotalAlloc-before.TotalAlloc)
}
