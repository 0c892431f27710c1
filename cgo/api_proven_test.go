package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/pyval"
)

// Pickle opcodes for hand-made values.
func sbu(s string) []byte { return append([]byte{0x8c, byte(len(s))}, s...) }

func binbytes(n int, c byte) []byte {
	b := []byte{'B', byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}
	return append(b, bytes.Repeat([]byte{c}, n)...)
}

// objectScalar is numpy's scalar(numpy.dtype('O') with its pointer flags
// dropped, 8 bytes): allowed names only, and a crash in numpy.
func objectScalar() []byte {
	var b []byte
	b = append(b, sbu("numpy.core.multiarray")...)
	b = append(b, sbu("scalar")...)
	b = append(b, 0x93)
	b = append(b, sbu("numpy")...)
	b = append(b, sbu("dtype")...)
	b = append(b, 0x93)
	b = append(b, sbu("O")...)
	b = append(b, 0x89, 0x88, 0x87, 'R', '(', 'K', 3)
	b = append(b, sbu("|")...)
	b = append(b, 'N', 'N', 'N', 'J', 0xff, 0xff, 0xff, 0xff, 'J', 0xff, 0xff, 0xff, 0xff, 'K', 0, 't', 'b')
	b = append(b, 'C', 8, 'A', 'A', 'A', 'A', 'A', 'A', 'A', 'A', 0x86, 'R')
	return b
}

// twinFiles writes the same file twice, its value "k" (256 KiB: past the
// remote block cache) plain in one and hostile in the other, and returns
// their bytes and where they differ.
func twinFiles(t *testing.T) (plain, hostile []byte, lo, hi int) {
	t.Helper()
	const n = 256 << 10
	pv := append(append([]byte{0x80, 4}, binbytes(n, 'p')...), '.')
	h := objectScalar()
	hv := append(append([]byte{0x80, 4}, h...), binbytes(len(pv)-2-len(h)-5-1-1, 'h')...)
	hv = append(hv, '0', '.')
	if len(hv) != len(pv) {
		t.Fatalf("twin values of %d and %d bytes", len(pv), len(hv))
	}
	dir := t.TempDir()
	var out [2][]byte
	for i, v := range [][]byte{pv, hv} {
		name := filepath.Join(dir, fmt.Sprint(i))
		f, err := bridge.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Put("a", int64(1)); err != nil {
			t.Fatal(err)
		}
		if err := f.Put("k", pyval.Object{Pickle: v}); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if out[i], err = os.ReadFile(name); err != nil {
			t.Fatal(err)
		}
	}
	plain, hostile = out[0], out[1]
	if len(plain) != len(hostile) {
		t.Fatal("twin files differ in size")
	}
	lo, hi = -1, 0
	for i := range plain {
		if plain[i] != hostile[i] {
			if lo < 0 {
				lo = i
			}
			hi = i + 1
		}
	}
	return plain, hostile, lo, hi
}

// flipServer serves /N: the plain file, but the hostile bytes to every
// request touching [lo, hi) after the N-th such request, under one ETag.
type flipServer struct {
	plain, hostile []byte
	lo, hi         int
	mu             sync.Mutex
	touched        map[string]int
}

func (s *flipServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	after, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	start, end := 0, len(s.plain)-1
	if rg := r.Header.Get("Range"); rg != "" {
		fmt.Sscanf(rg, "bytes=%d-%d", &start, &end)
		end = min(end, len(s.plain)-1)
	}
	data := s.plain
	if start < s.hi && end >= s.lo {
		s.mu.Lock()
		s.touched[r.URL.Path]++
		if s.touched[r.URL.Path] > after {
			data = s.hostile
		}
		s.mu.Unlock()
	}
	w.Header().Set("ETag", `"pinned"`)
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)))
	w.Header().Set("Content-Length", strconv.Itoa(end-start+1))
	w.WriteHeader(http.StatusPartialContent)
	w.Write(data[start : end+1])
}

// TestRemoteValueProvenOnce: a server that answers a value's Range
// requests with other bytes from its N-th on never gets them handed out
// unproven by libmmp's value_pickle: the result is the plain value or a
// refusal, for every N. Plain then Pickle (the previous value_pickle)
// hands the hostile bytes out for some N.
func TestRemoteValueProvenOnce(t *testing.T) {
	plain, hostile, lo, hi := twinFiles(t)
	fs := &flipServer{plain: plain, hostile: hostile, lo: lo, hi: hi, touched: map[string]int{}}
	srv := httptest.NewServer(fs)
	defer srv.Close()

	pf := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(pf, plain, 0o644)
	lh, err := openFile(pf, false)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFile(lh)
	want, err := valuePickle(lh, "k", false)
	if err != nil {
		t.Fatal(err)
	}
	var gotPlain, refused, pairLeaked int
	for n := range 10 {
		h, err := openRemote(fmt.Sprintf("%s/%d", srv.URL, n))
		if err != nil {
			t.Fatal(err)
		}
		p, err := remoteValuePickle(h, "k", false)
		switch {
		case err == nil && bytes.Equal(p, want):
			gotPlain++
		case err != nil:
			refused++
		default:
			t.Errorf("after %d requests: value_pickle handed out %d bytes other than the plain value", n, len(p))
		}
		closeRemote(h)

		// The pair, on a fresh handle with the same flip point.
		fs.mu.Lock()
		delete(fs.touched, fmt.Sprintf("/%d", n))
		fs.mu.Unlock()
		rm, c, err := bridge.OpenReader(t.Context(), fmt.Sprintf("%s/%d", srv.URL, n))
		if err != nil {
			t.Fatal(err)
		}
		if rm.Plain("k") == nil {
			if q, err := rm.Pickle("k"); err == nil && !bytes.Equal(q, want) {
				pairLeaked++
			}
		}
		c.Close()
	}
	t.Logf("plain %d, refused %d; Plain then Pickle leaked hostile bytes %d times", gotPlain, refused, pairLeaked)
	if gotPlain == 0 || refused == 0 {
		t.Errorf("the flip did not reach both outcomes (plain %d, refused %d)", gotPlain, refused)
	}
	if pairLeaked == 0 {
		t.Error("Plain then Pickle never leaked: the server's flips prove nothing")
	}
}

// TestConvertPlain: mmp_convert_plain refuses a hostile plain pickle,
// leaving the file as it was, and converts a benign one in place.
func TestConvertPlain(t *testing.T) {
	dir := t.TempDir()
	hostile := append(append([]byte{0x80, 4, '}'}, sbu("k")...), objectScalar()...)
	hostile = append(hostile, 's', '.')
	name := filepath.Join(dir, "h.pkl")
	os.WriteFile(name, hostile, 0o640)
	err := convertPlain(name, -1, name, "")
	if !errors.Is(err, bridge.ErrNotPlain) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("hostile: %v; want ErrNotPlain naming the file and an offset", err)
	}
	if got, _ := os.ReadFile(name); !bytes.Equal(got, hostile) {
		t.Fatal("the refused file was changed")
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("%d files left in the directory, want 1", len(es))
	}

	benign := append(append([]byte{0x80, 4, '}'}, sbu("k")...), 'K', 7, 's', '.')
	bn := filepath.Join(dir, "b.pkl")
	os.WriteFile(bn, benign, 0o640)
	if err := convertPlain(bn, -1, bn, `{"profile": "portable"}`); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Lstat(bn)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", st.Mode().Perm())
	}
	f, err := bridge.Open(bn)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if v, err := f.Get("k"); err != nil || v != int64(7) {
		t.Errorf("k = %v, %v", v, err)
	}

	// Through a symbolic link: the link stays, its target is converted.
	tn := filepath.Join(dir, "target.pkl")
	os.WriteFile(tn, benign, 0o600)
	ln := filepath.Join(dir, "link.pkl")
	if err := os.Symlink("target.pkl", ln); err != nil {
		t.Fatal(err)
	}
	if err := convertPlain(ln, -1, ln, ""); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(ln); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", st.Mode(), err)
	}
	g, err := bridge.Open(tn)
	if err != nil {
		t.Fatalf("the target was not converted: %v", err)
	}
	g.Close()
}
