package compat_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"mmpbridge/internal/corpus"
	"mmpbridge/pyval"

	"github.com/google/go-cmp/cmp"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
)

var profiles = []string{"mmappickle", "portable"}

type (
	manifest      = corpus.Manifest
	manifestFile  = corpus.File
	manifestArray = corpus.Array
	manifestEntry = corpus.Entry
)

func loadManifest(t *testing.T, profile string) manifest {
	t.Helper()
	m, err := corpus.Load(profile)
	if err != nil {
		t.Fatal(err)
	}
	return *m
}

func path(profile, name string) string { return filepath.Join("testdata", profile, name) }

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// cSHA is the sha256 of the array's bytes in C order.
func cSHA(t *testing.T, a *bridge.Array) string {
	t.Helper()
	h := sha256.New()
	if err := a.WriteC(h); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func checkArray(t *testing.T, key string, a *bridge.Array, want manifestArray) {
	t.Helper()
	if got := a.DType.String(); got != want.DType {
		t.Errorf("%s: dtype %s, manifest %s", key, got, want.DType)
	}
	shape := a.Shape
	if len(shape) == 0 {
		// The manifest records a 0-d array's shape () as [1]; the file
		// stores EMPTY_TUPLE, which is what we read.
		shape = []int{1}
	}
	if !cmp.Equal(shape, want.Shape) {
		t.Errorf("%s: shape %v, manifest %v", key, a.Shape, want.Shape)
	}
	if a.NBytes != want.NBytes || a.Offset != want.DataOffset {
		t.Errorf("%s: %d bytes at %d, manifest %d at %d", key, a.NBytes, a.Offset, want.NBytes, want.DataOffset)
	}
	if got := cSHA(t, a); got != want.SHA256 {
		t.Errorf("%s: sha256 %s, manifest %s", key, got, want.SHA256)
	}
	if want.StoredDType != "" && a.Profile == bridge.Mmappickle && a.DType.Name() != want.StoredDType {
		t.Errorf("%s: dtype name %s, stored %s", key, a.DType.Name(), want.StoredDType)
	}
	if b := a.Bytes(); int64(len(b)) != a.NBytes {
		t.Errorf("%s: mapped view of %d bytes, want %d", key, len(b), a.NBytes)
	}
}

// TestManifest reads every key of every reference file and compares it with
// the manifest.
func TestManifest(t *testing.T) {
	for _, p := range profiles {
		m := loadManifest(t, p)
		if m.Profile != p {
			t.Fatalf("manifest profile %q in folder %q", m.Profile, p)
		}
		for name, mfile := range m.Files {
			t.Run(p+"/"+name, func(t *testing.T) {
				raw, err := os.ReadFile(path(p, name))
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(raw)) != mfile.Size || sha(raw) != mfile.SHA256 {
					t.Fatalf("reference file differs from its manifest (size %d, sha %s)", len(raw), sha(raw))
				}
				f, err := bridge.Open(path(p, name))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cn, _ := f.CommitNumber()
				if cn != mfile.CommitNumber {
					t.Errorf("commit number %d, manifest %d", cn, mfile.CommitNumber)
				}
				keys, err := f.Keys()
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for k := range mfile.Keys {
					want = append(want, k)
				}
				got := append([]string(nil), keys...)
				sort.Strings(got)
				sort.Strings(want)
				if !cmp.Equal(got, want) {
					t.Fatalf("keys %q, manifest %q", got, want)
				}
				entries, _ := f.Entries()
				for _, k := range keys {
					me := mfile.Keys[k]
					checkEntryRecord(t, k, entries, me)
					v, err := f.Get(k)
					if err != nil {
						t.Errorf("%s: %v", k, err)
						continue
					}
					switch me.Kind {
					case "array":
						a, ok := v.(*bridge.Array)
						if !ok {
							t.Errorf("%s: got %T, want an array", k, v)
							continue
						}
						checkArray(t, k, a, me.Array)
						if want := map[string]bridge.Profile{"mmappickle": bridge.Mmappickle, "portable": bridge.Portable}[p]; a.Profile != want {
							t.Errorf("%s: encoding %s, want %s", k, a.Profile, want)
						}
					case "masked":
						ma, ok := v.(*bridge.Masked)
						if !ok {
							t.Errorf("%s: got %T, want a masked array", k, v)
							continue
						}
						checkArray(t, k+".data", ma.Data, *me.Data)
						checkArray(t, k+".mask", ma.Mask, *me.Mask)
					case "value":
						checkValue(t, k, v, me)
					default:
						t.Errorf("%s: unknown kind %q", k, me.Kind)
					}
				}
			})
		}
	}
}

func checkEntryRecord(t *testing.T, k string, entries []bridge.Entry, me manifestEntry) {
	t.Helper()
	for _, e := range entries {
		if e.Live && e.Key == k {
			if e.Offset != me.EntryOffset || e.Size != me.EntrySize {
				t.Errorf("%s: entry at %d size %d, manifest %d size %d", k, e.Offset, e.Size, me.EntryOffset, me.EntrySize)
			}
			return
		}
	}
	t.Errorf("%s: no live entry", k)
}

func checkValue(t *testing.T, k string, v any, me manifestEntry) {
	t.Helper()
	j, ok := render.JSONValue(v)
	if string(me.JSON) == "null" || me.JSON == nil {
		if ok && v != nil {
			t.Errorf("%s: manifest has no JSON form (repr %s) but we made %v", k, me.Repr, j)
		}
		return
	}
	if !ok {
		t.Errorf("%s: no JSON form for %#v (manifest %s)", k, v, me.JSON)
		return
	}
	got, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	dec := func(s []byte, out *any) {
		d := json.NewDecoder(bytes.NewReader(s))
		d.UseNumber()
		if err := d.Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	dec(got, &a)
	dec(me.JSON, &b)
	if !cmp.Equal(a, b) {
		t.Errorf("%s: value %s, manifest %s", k, got, me.JSON)
	}
}

// copyEntry writes src's key into dst the way a converter does: arrays and
// masked arrays re-encoded in dst's profile, values copied verbatim.
func copyEntry(t *testing.T, dst *bridge.File, src *bridge.File, k string) {
	t.Helper()
	v, err := src.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	switch v.(type) {
	case *bridge.Array, *bridge.Masked:
		err = dst.Put(k, v)
	default:
		r, rerr := src.Reader()
		if rerr != nil {
			t.Fatal(rerr)
		}
		p, rerr := r.Pickle(k)
		if rerr != nil {
			t.Fatal(rerr)
		}
		err = dst.Put(k, pyval.Object{Pickle: p})
	}
	if err != nil {
		t.Fatalf("%s: %v", k, err)
	}
}

// liveKeysInFileOrder lists the keys as a replay writes them: by entry offset.
func liveKeysInFileOrder(t *testing.T, f *bridge.File) []string {
	keys, err := f.Keys()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func rewrite(t *testing.T, srcPath string, profile bridge.Profile) []byte {
	t.Helper()
	src, err := bridge.Open(srcPath)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), "out.mmpkl")
	dst, err := bridge.Create(out, bridge.WithProfile(profile), bridge.WithAlign(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range liveKeysInFileOrder(t, src) {
		copyEntry(t, dst, src, k)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplay writes the keys and values of every replayable reference file,
// in order, with alignment 1: the result is byte-identical, in both profiles.
func TestReplay(t *testing.T) {
	for _, p := range profiles {
		enc, _ := bridge.ParseProfile(p)
		for name, mfile := range loadManifest(t, p).Files {
			if !mfile.Replayable {
				continue
			}
			t.Run(p+"/"+name, func(t *testing.T) {
				want, _ := os.ReadFile(path(p, name))
				got := rewrite(t, path(p, name), enc)
				if !bytes.Equal(got, want) {
					t.Errorf("rewrite differs from the reference: %s", firstDiff(got, want))
				}
			})
		}
	}
}

// TestMmappickleToPortable rewrites every replayable mmappickle-profile file in
// the portable profile: it gives the portable reference file byte for byte.
// The one exception is an array numpy held in Fortran order: the mmappickle
// encoding stores it in C order and so forgets the order, and the rewrite
// stores the same values in C order (checked logically).
func TestMmappickleToPortable(t *testing.T) {
	for name, mfile := range loadManifest(t, "mmappickle").Files {
		if !mfile.Replayable {
			continue
		}
		t.Run(name, func(t *testing.T) {
			want, _ := os.ReadFile(path("portable", name))
			got := rewrite(t, path("mmappickle", name), bridge.Portable)
			if name != "shapes.mmpkl" {
				if !bytes.Equal(got, want) {
					t.Errorf("rewrite differs from the portable reference: %s", firstDiff(got, want))
				}
				return
			}
			compareLogically(t, got, want, map[string]bool{"fortran": true})
		})
	}
}

// compareLogically checks two files hold the same keys with the same arrays;
// entries not in differ must also be byte-identical.
func compareLogically(t *testing.T, got, want []byte, differ map[string]bool) {
	gr, err := bridge.NewReader(bytes.NewReader(got), int64(len(got)))
	if err != nil {
		t.Fatal(err)
	}
	wr, err := bridge.NewReader(bytes.NewReader(want), int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(gr.Keys(), wr.Keys()) {
		t.Fatalf("keys %q, want %q", gr.Keys(), wr.Keys())
	}
	for _, k := range wr.Keys() {
		ga, err1 := gr.Array(k)
		wa, err2 := wr.Array(k)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", k, err1, err2)
		}
		if ga.DType != wa.DType || !cmp.Equal(ga.Shape, wa.Shape) || cSHA(t, ga) != cSHA(t, wa) {
			t.Errorf("%s: %s %v differs from %s %v", k, ga.DType, ga.Shape, wa.DType, wa.Shape)
		}
		if !differ[k] {
			ge, _ := gr.Entry(k)
			we, _ := wr.Entry(k)
			if !bytes.Equal(got[ge.Offset:(ge.Offset + ge.Size)][9+2+len(k):], want[we.Offset:(we.Offset + we.Size)][9+2+len(k):]) {
				t.Errorf("%s: entry bytes differ", k)
			}
		}
	}
}

func firstDiff(a, b []byte) string {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			lo := max(0, i-8)
			return fmt.Sprintf("first difference at byte %d: got %x, want %x", i, a[lo:min(len(a), i+8)], b[lo:min(len(b), i+8)])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(a), len(b))
}
