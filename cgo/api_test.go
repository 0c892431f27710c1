package main

// Tests of the Go side of libmmp (the C ABI itself is tested from Python,
// python-tests/test_libmmp.py: test files cannot use cgo).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/corpus"
	"mmpbridge/internal/render"
)

var corpusDir = corpus.Dir()

func loadManifest(t *testing.T, profile string) map[string]map[string]corpus.Entry {
	t.Helper()
	m, err := corpus.Load(profile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]corpus.Entry{}
	for f, v := range m.Files {
		out[f] = v.Keys
	}
	return out
}

func mustOpen(t *testing.T, path string, writable bool) int64 {
	t.Helper()
	h, err := openFile(path, writable)
	if err != nil {
		t.Fatalf("openFile(%s): %v", path, err)
	}
	if h <= 0 {
		t.Fatalf("openFile(%s) = handle %d", path, h)
	}
	t.Cleanup(func() { closeFile(h) })
	return h
}

// copyFile copies a corpus file to a temporary directory.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestHandles(t *testing.T) {
	before := handles.open()
	path := filepath.Join(corpusDir, "portable", "shapes.mmpkl")
	h1, err := openFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := openFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if h1 <= 0 || h2 <= 0 || h1 == h2 {
		t.Fatalf("handles %d, %d: want distinct and > 0", h1, h2)
	}
	if err := closeFile(h1); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := closeFile(h1); !errors.Is(err, errBadHandle) {
		t.Fatalf("second close: %v, want errBadHandle", err)
	}
	if _, err := keysJSON(h1); !errors.Is(err, errBadHandle) {
		t.Fatalf("keys of a closed handle: %v, want errBadHandle", err)
	}
	if _, err := keysJSON(h2); err != nil {
		t.Fatalf("the other handle stopped working: %v", err)
	}
	h3 := mustOpen(t, path, false)
	if h3 == h1 || h3 == h2 {
		t.Fatalf("handle %d reused", h3)
	}
	for _, h := range []int64{0, -1, 1 << 62} {
		if _, err := arrayData(h, "big"); !errors.Is(err, errBadHandle) {
			t.Errorf("handle %d: %v, want errBadHandle", h, err)
		}
	}
	closeFile(h2)
	closeFile(h3)
	if n := handles.open(); n != before {
		t.Errorf("%d handles open after closing all, want %d", n, before)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notMmp := filepath.Join(dir, "x.mmpkl")
	os.WriteFile(notMmp, []byte("not a pickle at all, just text"), 0o644)
	for _, c := range []struct {
		path     string
		writable bool
		want     string
	}{
		{filepath.Join(dir, "missing.mmpkl"), false, "no such file"},
		{filepath.Join(dir, "missing.mmpkl"), true, "no such file"},
		{notMmp, false, "x.mmpkl"},
		{dir, false, "is a directory"},
	} {
		h, err := openFile(c.path, c.writable)
		if err == nil || h != 0 {
			t.Errorf("openFile(%s, %v) = %d, %v; want an error", c.path, c.writable, h, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("openFile(%s): %v, want it to mention %q", c.path, err, c.want)
		}
	}
}

// TestCorpus checks keys, entries and array bytes of every reference file
// against the corpus manifest and against the bridge itself.
func TestCorpus(t *testing.T) {
	for _, profile := range []string{"portable", "mmappickle"} {
		for file, keys := range loadManifest(t, profile) {
			path := filepath.Join(corpusDir, profile, file)
			h := mustOpen(t, path, false)

			f, err := bridge.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			wantKeys, _ := f.Keys()
			if wantKeys == nil {
				wantKeys = []string{}
			}
			kj, err := keysJSON(h)
			if err != nil {
				t.Fatalf("%s: keys: %v", path, err)
			}
			var gotKeys []string
			if err := json.Unmarshal(kj, &gotKeys); err != nil {
				t.Fatalf("%s: keys JSON %s: %v", path, kj, err)
			}
			if strings.Join(gotKeys, "\x00") != strings.Join(wantKeys, "\x00") || len(gotKeys) != len(keys) {
				t.Errorf("%s: keys %q, want %q (%d in the manifest)", path, gotKeys, wantKeys, len(keys))
			}
			r, _ := f.Reader()
			for key, mk := range keys {
				v, err := r.Get(key)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := render.Describe(context.Background(), v, false)
				got, err := entryJSON(h, key)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: entry %q = %s, %v; want %s", path, key, got, err, want)
				}
				data, err := arrayData(h, key)
				switch mk.Kind {
				case "array":
					if err != nil {
						t.Errorf("%s: arrayData(%q): %v", path, key, err)
					} else if int64(len(data)) != mk.NBytes || (!bytes.Contains(want, []byte(`"order":"F"`)) && sha(data) != mk.SHA256) {
						t.Errorf("%s: arrayData(%q): %d bytes, sha256 %s; want %d, %s", path, key, len(data), sha(data), mk.NBytes, mk.SHA256)
					}
				case "masked":
					if err == nil || !strings.Contains(err.Error(), "mmp_masked_data") {
						t.Errorf("%s: arrayData(%q) of a masked array: %v, want a pointer to mmp_masked_data", path, key, err)
					}
					for which, ma := range []*corpus.Array{mk.Data, mk.Mask} {
						b, err := maskedData(h, key, which)
						if err != nil || int64(len(b)) != ma.NBytes || sha(b) != ma.SHA256 {
							t.Errorf("%s: maskedData(%q, %d): %d bytes, %v; want %d", path, key, which, len(b), err, ma.NBytes)
						}
					}
				default:
					if !errors.Is(err, bridge.ErrNotArray) {
						t.Errorf("%s: arrayData(%q) of a value: %v, want ErrNotArray", path, key, err)
					}
				}
			}
		}
	}
}

func TestArrayDataErrors(t *testing.T) {
	h := mustOpen(t, filepath.Join(corpusDir, "portable", "masked.mmpkl"), false)
	if _, err := arrayData(h, "nope"); !errors.Is(err, bridge.ErrKeyNotFound) {
		t.Errorf("missing key: %v", err)
	}
	if _, err := maskedData(h, "plain", 0); !errors.Is(err, bridge.ErrNotArray) {
		t.Errorf("maskedData of a plain array: %v", err)
	}
	if _, err := maskedData(h, "m1", 2); err == nil {
		t.Errorf("maskedData which=2: no error")
	}
	if _, err := entryJSON(h, "nope"); !errors.Is(err, bridge.ErrKeyNotFound) {
		t.Errorf("entry of a missing key: %v", err)
	}
	empty := mustOpen(t, filepath.Join(corpusDir, "portable", "empty_dict.mmpkl"), false)
	if kj, err := keysJSON(empty); err != nil || string(kj) != "[]" {
		t.Errorf("keys of an empty file: %s, %v; want []", kj, err)
	}
	shapes := mustOpen(t, filepath.Join(corpusDir, "portable", "shapes.mmpkl"), false)
	if b, err := arrayData(shapes, "empty2d"); err != nil || len(b) != 0 {
		t.Errorf("empty array: %d bytes, %v", len(b), err)
	}
}

// TestWritableMapping writes through the bytes of a writable handle and
// reads the change back through a separate open of the file.
func TestWritableMapping(t *testing.T) {
	path := copyFile(t, filepath.Join(corpusDir, "portable", "dtypes.mmpkl"))
	h := mustOpen(t, path, true)
	data, err := arrayData(h, "uint8")
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = byte(200 + i)
	}
	f, err := bridge.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := f.Array("uint8")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), data) {
		t.Fatalf("after writing through the handle the file holds %v, want %v", a.Bytes(), data)
	}

	ro := mustOpen(t, path, false)
	rdata, err := arrayData(ro, "uint8")
	if err != nil {
		t.Fatal(err)
	}
	// A read-only handle's mapping is read-only: writing faults, and guard
	// turns the fault into an error instead of crashing.
	err = guard(func() error { rdata[0] = 1; return nil })
	if !errors.Is(err, errFault) {
		t.Fatalf("write through a read-only mapping: %v, want a recovered fault", err)
	}
}

var sink byte

func TestGuard(t *testing.T) {
	if err := guard(func() error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panic: %v", err)
	}
	if err := guard(func() error {
		var m map[string]int
		m["x"] = 1
		return nil
	}); err == nil {
		t.Errorf("nil map write: no error")
	}
	want := errors.New("plain")
	if err := guard(func() error { return want }); err != want {
		t.Errorf("plain error: %v", err)
	}

	// A file truncated under a live mapping: reading the lost pages raises
	// SIGBUS, which becomes an error.
	path := filepath.Join(t.TempDir(), "t.mmpkl")
	w, err := bridge.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	dt, _ := bridge.ParseDType("<f8")
	n := 1 << 16
	if err := w.PutArray("x", bridge.ArrayHeader{DType: dt, Shape: []int{n}}, bytes.NewReader(make([]byte, 8*n))); err != nil {
		t.Fatal(err)
	}
	w.Close()
	h := mustOpen(t, path, false)
	data, err := arrayData(h, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
	err = guard(func() error {
		for _, b := range data {
			sink += b
		}
		return nil
	})
	if !errors.Is(err, errFault) {
		t.Errorf("reading a truncated mapping: %v, want a recovered fault", err)
	}
}

func TestConvertOptions(t *testing.T) {
	for _, c := range []struct {
		json string
		ok   bool
	}{
		{"", true},
		{"null", true},
		{"{}", true},
		{`{"profile": "portable", "force": true}`, true},
		{`{"profile": "mmappickle", "align": 1, "key": "k", "compress": true, "skip_unsupported": true, "from": "npz", "to": "mmpkl"}`, true},
		{`{"profile": "fast"}`, false},
		{`{"align": 3}`, false},
		{`{"align": 0}`, false},
		{`{"forse": true}`, false},
		{`{"force": "yes"}`, false},
		{`{"from": "csv"}`, false},
		{`{} {}`, false},
		{`[1]`, false},
		{`{`, false},
	} {
		opt, _, _, err := parseConvertOptions(c.json)
		if (err == nil) != c.ok {
			t.Errorf("options %s: err %v, want ok=%v", c.json, err, c.ok)
		}
		if err == nil && c.json == "" && (opt.Align != 64 || opt.Profile != bridge.Portable || opt.Force) {
			t.Errorf("default options: %+v", opt)
		}
	}
	opt, from, to, _ := parseConvertOptions(`{"profile": "mmappickle", "align": 1, "force": true, "from": "pkl", "to": "h5"}`)
	if opt.Profile != bridge.Mmappickle || opt.Align != 1 || !opt.Force || from != "mmpkl" || to != "hdf5" {
		t.Errorf("parsed %+v %s %s", opt, from, to)
	}
}

func TestConvert(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(corpusDir, "mmappickle", "dtypes.mmpkl")
	dst := filepath.Join(dir, "out.mmpkl")
	if st, err := convertFile(src, dst, `{"profile": "portable"}`); st != convertOK || err != nil {
		t.Fatalf("convert: %d, %v", st, err)
	}
	if st, err := convertFile(src, dst, ""); st != convertInput || err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("convert onto an existing file without force: %d, %v", st, err)
	}
	if st, err := convertFile(src, dst, `{"force": true, "align": 1}`); st != convertOK || err != nil {
		t.Errorf("convert with force: %d, %v", st, err)
	}
	f, err := bridge.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := f.Array("float64")
	if err != nil || a.Profile != bridge.Portable {
		t.Errorf("converted array: %+v, %v", a, err)
	}
	if st, err := convertFile(src, filepath.Join(dir, "wide.mmpkl"), `{"align": 2097152}`); st != convertUsage || !errors.Is(err, bridge.ErrInvalidOption) {
		t.Errorf("align past the bridge's largest: %d, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "wide.mmpkl")); !os.IsNotExist(err) {
		t.Errorf("a refused conversion left its destination: %v", err)
	}
	if st, err := convertFile(src, filepath.Join(dir, "out.txt"), ""); st != convertUsage || err == nil {
		t.Errorf("unknown extension: %d, %v", st, err)
	}
	if st, err := convertFile(src, dst, `{"bogus": 1}`); st != convertUsage || err == nil {
		t.Errorf("unknown option: %d, %v", st, err)
	}
	if st, err := convertFile(filepath.Join(dir, "missing.mmpkl"), filepath.Join(dir, "o.mmpkl"), ""); st != convertInput || err == nil {
		t.Errorf("missing input: %d, %v", st, err)
	}
}

// TestConcurrent uses the handle table from many goroutines at once (run
// with -race to check it).
func TestConcurrent(t *testing.T) {
	path := filepath.Join(corpusDir, "portable", "shapes.mmpkl")
	shared := mustOpen(t, path, false)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				h, err := openFile(path, false)
				if err != nil {
					errs <- err
					return
				}
				for _, hh := range []int64{h, shared} {
					if b, err := arrayData(hh, "big"); err != nil || len(b) != 280000 {
						errs <- err
					}
					if _, err := entryJSON(hh, "cube"); err != nil {
						errs <- err
					}
				}
				if err := closeFile(h); err != nil {
					errs <- err
				}
			}
		}()
	}
	// Several goroutines close the same handle: exactly one succeeds.
	h, _ := openFile(path, false)
	var okCount sync.WaitGroup
	results := make(chan error, 8)
	for i := 0; i < 8; i++ {
		okCount.Add(1)
		go func() { defer okCount.Done(); results <- closeFile(h) }()
	}
	okCount.Wait()
	close(results)
	ok := 0
	for err := range results {
		if err == nil {
			ok++
		} else if !errors.Is(err, errBadHandle) {
			t.Errorf("concurrent close: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent closes of one handle succeeded, want 1", ok)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
