package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/nginxtest"
)

// TestNginx: every read command on every corpus file served by nginx says
// and writes what it does for the local file.
func TestNginx(t *testing.T) {
	t.Parallel()
	dir := "../../compat/testdata/mmappickle"
	ng := nginxtest.Start(t, dir)
	names, _ := filepath.Glob(filepath.Join(dir, "*.mmpkl"))
	out := t.TempDir()
	for _, local := range names {
		base := filepath.Base(local)
		url := ng.URL + "/" + base
		for _, args := range [][]string{{"ls"}, {"inspect", "--json", "--hash"}, {"verify", "--json"}} {
			lc, lout, lerr := mmpconv(t, append(args, local)...)
			rc, rout, rerr := mmpconv(t, append(args, url)...)
			rout, rerr = strings.ReplaceAll(rout, url, local), strings.ReplaceAll(rerr, url, local)
			if lc != rc || lout != rout || lerr != rerr {
				t.Errorf("%s %v: local exit %d %q %q, nginx exit %d %q %q", base, args, lc, lout, lerr, rc, rout, rerr)
			}
		}
		lnpz, rnpz := filepath.Join(out, "l-"+base+".npz"), filepath.Join(out, "r-"+base+".npz")
		lc, _, _ := mmpconv(t, "convert", "--quiet", local, lnpz)
		rc, _, _ := mmpconv(t, "convert", "--quiet", url, rnpz)
		lb, _ := os.ReadFile(lnpz)
		rb, _ := os.ReadFile(rnpz)
		if lc != rc || !bytes.Equal(lb, rb) {
			t.Errorf("%s: convert through nginx differs (exit %d/%d, %d/%d bytes)", base, lc, rc, len(lb), len(rb))
		}
	}
	if code, _, errs := mmpconv(t, "ls", ng.URL+"/none.mmpkl"); code != 1 || !strings.Contains(errs, "404 Not Found") {
		t.Errorf("missing file: exit %d %q", code, errs)
	}
}

// TestNginxBytesMoved: one 8 MiB array out of a 64 MiB file moves about
// 8 MiB; listing a bridge-written 10,000-key file takes <= 3 requests.
func TestNginxBytesMoved(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB")
	}
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "big.mmpkl")
	f, err := bridge.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	u8, _ := bridge.ParseDType("|u1")
	for i := range 8 {
		b := bytes.Repeat([]byte{byte(i)}, 8<<20)
		if err := f.PutArray(fmt.Sprintf("a%d", i), bridge.ArrayHeader{DType: u8, Shape: []int{8 << 20}}, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	keys := filepath.Join(dir, "keys.mmpkl")
	k, _ := bridge.Create(keys)
	i8, _ := bridge.ParseDType("<i8")
	for i := range 10000 {
		k.PutArray(fmt.Sprintf("k%d", i), bridge.ArrayHeader{DType: i8, Shape: []int{10}}, bytes.NewReader(make([]byte, 80)))
	}
	k.Close()
	ng := nginxtest.Start(t, dir)
	out := filepath.Join(t.TempDir(), "a3.npy")
	if code, _, errs := mmpconv(t, "get", ng.URL+"/big.mmpkl", "a3", "-o", out, "--quiet"); code != 0 {
		t.Fatal(errs)
	}
	rs := ng.Requests(t)
	if moved := nginxtest.Moved(rs); moved > 8<<20+1<<20 {
		t.Errorf("one 8 MiB array of a 64 MiB file moved %d bytes in %d requests", moved, len(rs))
	}
	got, _ := os.ReadFile(out)
	if len(got) < 8<<20 || got[len(got)-1] != 3 {
		t.Errorf("a3.npy: %d bytes", len(got))
	}
	if code, _, errs := mmpconv(t, "ls", ng.URL+"/keys.mmpkl"); code != 0 {
		t.Fatal(errs)
	}
	rs = ng.Requests(t)
	t.Logf("listing 10,000 keys: %d requests, %d bytes", len(rs), nginxtest.Moved(rs))
	// Written by the bridge, so with an index: the first block, the
	// index, then everything the listing reads in one range.
	if len(rs) > 3 {
		t.Errorf("listing 10,000 keys took %d requests, want <= 3", len(rs))
	}
}
