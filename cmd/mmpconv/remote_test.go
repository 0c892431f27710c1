package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRemoteCommands: ls, inspect, get, verify and convert of a URL say
// and write exactly what they do for the local file (every corpus file,
// served by net/http's file server: Range and Last-Modified, no ETag).
func TestRemoteCommands(t *testing.T) {
	t.Parallel()
	dir := "../../compat/testdata/mmappickle"
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	names, _ := filepath.Glob(filepath.Join(dir, "*.mmpkl"))
	if len(names) == 0 {
		t.Fatal("no corpus files")
	}
	out := t.TempDir()
	for _, local := range names {
		base := filepath.Base(local)
		url := srv.URL + "/" + base
		for _, args := range [][]string{{"ls"}, {"inspect", "--json", "--hash"}, {"verify"}, {"verify", "--json"}} {
			lc, lout, lerr := mmpconv(t, append(args, local)...)
			rc, rout, rerr := mmpconv(t, append(args, url)...)
			// verify --json names the file it was given.
			rout = strings.ReplaceAll(rout, url, local)
			rerr = strings.ReplaceAll(rerr, url, local)
			if lc != rc || lout != rout || lerr != rerr {
				t.Errorf("%s %v: local exit %d %q %q, remote exit %d %q %q", base, args, lc, lout, lerr, rc, rout, rerr)
			}
		}
		// Every key's get, and the arrays out through convert.
		_, keys, _ := mmpconv(t, "ls", local)
		for _, line := range strings.Split(strings.TrimSpace(keys), "\n") {
			k := strings.Fields(line)
			if len(k) == 0 {
				continue
			}
			lc, lout, _ := mmpconv(t, "get", local, k[0])
			rc, rout, _ := mmpconv(t, "get", url, k[0])
			if lc != rc || lout != rout {
				t.Errorf("%s: get %s: local %d %q, remote %d %q", base, k[0], lc, lout, rc, rout)
			}
		}
		// diff of the URL with the local file: equal; with another file:
		// the same differences as locally.
		if code, dout, derr := mmpconv(t, "diff", "--quiet", url, local); code != 0 {
			t.Errorf("%s: diff URL local: exit %d %s%s", base, code, dout, derr)
		}
		other := filepath.Join(dir, "values.mmpkl")
		lc, lout, _ := mmpconv(t, "diff", "--quiet", local, other)
		rc, rout, _ := mmpconv(t, "diff", "--quiet", url, other)
		if lc != rc || strings.ReplaceAll(rout, url, local) != lout {
			t.Errorf("%s: diff with values.mmpkl: local %d %q, remote %d %q", base, lc, lout, rc, rout)
		}
		lnpz, rnpz := filepath.Join(out, "l-"+base+".npz"), filepath.Join(out, "r-"+base+".npz")
		lc, _, _ = mmpconv(t, "convert", "--quiet", local, lnpz)
		rc, _, rerr := mmpconv(t, "convert", "--quiet", url, rnpz)
		lb, _ := os.ReadFile(lnpz)
		rb, _ := os.ReadFile(rnpz)
		if lc != rc || !bytes.Equal(lb, rb) {
			t.Errorf("%s: convert to npz: local exit %d (%d bytes), remote exit %d (%d bytes) %s", base, lc, len(lb), rc, len(rb), rerr)
		}
	}
	if requests.Load() == 0 {
		t.Fatal("no request reached the server")
	}
}

// TestRemoteGetArray: get URL KEY -o x.npy writes the array's .npy as the
// local file gives it; errors name the URL and the HTTP status.
func TestRemoteGetArray(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	npy := filepath.Join(dir, "a.npy")
	writeNpy(t, npy, "<i8", []int{4}, false, i64s(1, 2, 3, 4))
	f := filepath.Join(dir, "f.mmpkl")
	if code, _, errs := mmpconv(t, "put", f, "a", npy); code != 0 {
		t.Fatal(errs)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	local, remote := filepath.Join(dir, "l.npy"), filepath.Join(dir, "r.npy")
	if code, _, errs := mmpconv(t, "get", f, "a", "-o", local, "--quiet"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := mmpconv(t, "get", srv.URL+"/f.mmpkl", "a", "-o", remote, "--quiet"); code != 0 {
		t.Fatal(errs)
	}
	lb, _ := os.ReadFile(local)
	rb, _ := os.ReadFile(remote)
	if !bytes.Equal(lb, rb) || len(lb) == 0 {
		t.Errorf("remote get -o wrote %d bytes, local %d", len(rb), len(lb))
	}
	code, _, errs := mmpconv(t, "ls", srv.URL+"/missing.mmpkl")
	if want := "mmpconv: " + srv.URL + "/missing.mmpkl: 404 Not Found\n"; code != 1 || errs != want {
		t.Errorf("ls of a missing URL: exit %d, %q; want 1, %q", code, errs, want)
	}
}
