package bridge

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"mmpbridge/remote"
)

// indexedFile writes n small arrays and big arrays of size big through
// Create (so with an index), and returns its bytes.
func indexedFile(t *testing.T, n, bigs, big int, opts ...Option) []byte {
	t.Helper()
	name := filepath.Join(t.TempDir(), "f.mmpkl")
	f, err := Create(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	i8, _ := ParseDType("<i8")
	u8, _ := ParseDType("|u1")
	for i := range n {
		f.PutArray(fmt.Sprintf("k%d", i), ArrayHeader{DType: i8, Shape: []int{10}}, bytes.NewReader(make([]byte, 80)))
	}
	for i := range bigs {
		f.PutArray(fmt.Sprintf("big%d", i), ArrayHeader{DType: u8, Shape: []int{big}}, bytes.NewReader(bytes.Repeat([]byte{byte(i)}, big)))
	}
	f.Put("meta", "x")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(name)
	return b
}

func TestIndexListsInFewRequests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		n, bigs    int
		maxReqs    int64
		maxMovedMB float64
	}{
		{"10,000 small keys", 10000, 0, 3, 3},
		// One request per array's entry head, made 4 at a time.
		{"16 arrays of 4 MiB", 0, 16, 16 + 3, 1.5},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := indexedFile(t, c.n, c.bigs, 4<<20)
			if p, ok := parsePointer(data); !ok || p.off+p.n > int64(len(data)) {
				t.Fatalf("no valid index pointer (%+v)", p)
			}
			s := serve(t, data)
			r, c2, err := OpenReader(context.Background(), s.url())
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			for _, k := range r.Keys() {
				if _, err := r.KindOf(k); err != nil {
					t.Fatal(err)
				}
			}
			reqs, moved := c2.(*remote.File).Stats()
			if reqs > c.maxReqs || float64(moved) > c.maxMovedMB*(1<<20) {
				t.Errorf("listing took %d requests, %d bytes (file %d bytes); want <= %d, <= %.1f MiB", reqs, moved, len(data), c.maxReqs, c.maxMovedMB)
			}
			sameAsLocal(t, r, data)
		})
	}
}

// TestIndexOnlyAHint: a stale index (the file edited after it was
// written) or a lying one (ranges pointing anywhere) costs requests, never
// changes what is read; alignment 1 (mmappickle's exact bytes) writes none.
func TestIndexOnlyAHint(t *testing.T) {
	t.Parallel()
	data := indexedFile(t, 50, 2, 1<<20)
	// Stale: another File appends a key and deletes one (no new index).
	name := filepath.Join(t.TempDir(), "f.mmpkl")
	os.WriteFile(name, data, 0o644)
	f, err := OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Put("later", int64(7))
	f.Delete("k3")
	f.Close()
	stale, _ := os.ReadFile(name)
	// Lying: the index's ranges rewritten to cover the last bytes only.
	lying := bytes.Clone(data)
	p, _ := parsePointer(lying)
	copy(lying[p.off:p.off+p.n], encodeIndex([]span{{int64(len(lying)) - 20, 20}}))
	// A pointer far from the end of a big file (not an index this package
	// wrote) is skipped before anything is allocated for it.
	far := indexedFile(t, 2, 5, 4<<20)
	copy(far[pointerPayloadOff:], indexPointer{commit: 1, entries: 3, off: headerSize, n: 10}.payload())
	for _, c := range []struct {
		name string
		b    []byte
	}{{"stale", stale}, {"lying", lying}, {"far", far}} {
		s := serve(t, c.b)
		r, cl, err := OpenReader(context.Background(), s.url())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		sameAsLocal(t, r, c.b)
		cl.Close()
	}
	if plain := indexedFile(t, 3, 0, 0, WithAlign(1)); bytes.Contains(plain, []byte(pointerMagic)) || bytes.Contains(plain, []byte(indexMagic)) {
		t.Error("a file written with alignment 1 carries an index")
	}
	if none := indexedFile(t, 3, 0, 0, WithoutIndex()); bytes.Contains(none, []byte(pointerMagic)) {
		t.Error("WithoutIndex wrote an index")
	}
	rep, err := Verify(bytesReaderAt(data), int64(len(data)), nil)
	if err != nil || !rep.OK() || rep.Index != 2 {
		t.Errorf("verify of an indexed file: ok %v, index entries %d, %v", rep.OK(), rep.Index, err)
	}
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex([]span{{24, 100}, {200, 5}}), int64(1000))
	f.Add([]byte(indexMagic+"\xff\xff\xff\xff\x0f"), int64(10))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		if size < 0 {
			return
		}
		spans, err := decodeIndex(b, size)
		if err != nil {
			return
		}
		for _, s := range spans {
			if s.off < 0 || s.n < 0 || s.off+s.n > size {
				t.Fatalf("span %+v outside a file of %d bytes", s, size)
			}
		}
	})
}
