package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"mmpbridge/internal/pyrun"
	"mmpbridge/pyval"

	"github.com/google/go-cmp/cmp"
)

// Tests of what a long-lived handle (libmmp's, the Python package's) does
// with a File: snapshots beside writes, mappings kept only for arrays,
// options, descriptors, commit numbers, pickles in and out.

// TestReaderSnapshot: a Reader from File.Reader does not change when the
// File writes, and reading it beside writes is race-free (go test -race).
func TestReaderSnapshot(t *testing.T) {
	f, _ := newFile(t)
	putI64(t, f, "a", 1, 2)
	if err := f.Put("v", int64(7)); err != nil {
		t.Fatal(err)
	}
	r, err := f.Reader()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 200 {
			if err := f.Put(fmt.Sprint("k", i), int64(i)); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				f.Delete("v")
				f.Put("v", int64(i))
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 200 {
			if keys := r.Keys(); !cmp.Equal(keys, []string{"a", "v"}) {
				t.Errorf("snapshot keys changed: %q", keys)
				return
			}
			if v, err := r.Get("v"); err != nil || v != int64(7) {
				t.Errorf("snapshot v = %v, %v", v, err)
				return
			}
			if _, err := r.Array("a"); err != nil {
				t.Error(err)
				return
			}
			if _, err := f.Get("a"); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	if keys, _ := f.Keys(); len(keys) != 202 {
		t.Errorf("file has %d keys, want 202", len(keys))
	}
}

// TestValuesDoNotPinMappings: values other than arrays are copies, so a
// long run of Put and Get keeps no old mapping alive; arrays do.
func TestValuesDoNotPinMappings(t *testing.T) {
	f, _ := newFile(t)
	for i := range 1000 {
		if err := f.Put("n", int64(i)); err != nil {
			t.Fatal(err)
		}
		if v, err := f.Get("n"); err != nil || v != int64(i) {
			t.Fatalf("%d: %v %v", i, v, err)
		}
	}
	if n := len(f.keep); n > 0 {
		t.Errorf("1,000 Put+Get of an int keep %d old mappings", n)
	}
	for i := range 3 {
		putI64(t, f, "a", int64(i))
		if got := getI64(t, f, "a"); got[0] != int64(i) {
			t.Fatal(got)
		}
	}
	if n := len(f.keep); n < 2 {
		t.Errorf("arrays handed out: %d old mappings kept, want them kept", n)
	}
}

// TestOptionsChecked: options are checked where they are applied, with one
// meaning each.
func TestOptionsChecked(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		opt  Option
		ok   bool
	}{
		{"align 1", WithAlign(1), true},
		{"align 64", WithAlign(64), true},
		{"align maxAlign", WithAlign(maxAlign), true},
		{"align 0", WithAlign(0), false},
		{"align 3", WithAlign(3), false},
		{"align -64", WithAlign(-64), false},
		{"align 2^28", WithAlign(1 << 28), false},
		{"negative limits", WithLimits(Limits{MaxOps: -1}), false},
		{"zero limits", WithLimits(Limits{}), true},
		{"profile 7", WithProfile(Profile(7)), false},
	} {
		name := filepath.Join(dir, c.name+".mmpkl")
		f, err := Create(name, c.opt)
		if c.ok != (err == nil) || !c.ok && !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: %v", c.name, err)
		}
		if err == nil {
			f.Close()
		} else if _, serr := os.Stat(name); serr == nil {
			t.Errorf("%s: a refused Create made the file", c.name)
		}
		if _, err := newReaderBytes(append(header(0), terminator...), c.opt); c.ok != (err == nil) {
			t.Errorf("%s: NewReader: %v", c.name, err)
		}
	}
}

// TestNewFileVacuumsInPlace: a File made from a descriptor (an unnamed
// temporary file) works like any other and vacuums in the same file.
func TestNewFileVacuumsInPlace(t *testing.T) {
	tmp, err := os.CreateTemp(t.TempDir(), "anon")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(tmp.Name()) // unnamed from now on
	dup, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", tmp.Fd()), os.O_RDWR, 0)
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	f, err := NewFile(tmp, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	putI64(t, f, "a", 1, 2, 3)
	if err := f.Put("big", bytes.Repeat([]byte("x"), 100_000)); err != nil {
		t.Fatal(err)
	}
	putI64(t, f, "b", 4)
	if err := f.Delete("big"); err != nil {
		t.Fatal(err)
	}
	before, _ := dup.Stat()
	if err := f.Vacuum(); err != nil {
		t.Fatal(err)
	}
	after, _ := dup.Stat()
	if after.Size() >= before.Size()-100_000 {
		t.Errorf("in-place vacuum: %d -> %d bytes", before.Size(), after.Size())
	}
	if keys, _ := f.Keys(); !cmp.Equal(keys, []string{"a", "b"}) {
		t.Errorf("keys %q", keys)
	}
	if got := getI64(t, f, "b"); !cmp.Equal(got, []int64{4}) {
		t.Errorf("b = %v", got)
	}
	// The same file, seen through another descriptor, is the vacuumed one.
	st, _ := dup.Stat()
	rep, err := Verify(dup, st.Size(), nil)
	if err != nil || !rep.OK() || rep.Deleted != 0 && rep.Entries-rep.Deleted != 2 {
		t.Errorf("after in-place vacuum: %+v %v", rep, err)
	}
	dup.Close()
}

// TestSetCommitNumber: as mmappickle's setter, visible to other handles.
func TestSetCommitNumber(t *testing.T) {
	f, name := newFile(t)
	putI64(t, f, "a", 1)
	for _, n := range []int32{143, 0, -5, 1<<31 - 1} {
		if err := f.SetCommitNumber(n); err != nil {
			t.Fatal(err)
		}
		g, err := Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := g.CommitNumber(); got != n {
			t.Errorf("commit number %d, want %d", got, n)
		}
		g.Close()
	}
	ro, _ := Open(name)
	defer ro.Close()
	if err := ro.SetCommitNumber(1); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only: %v", err)
	}
}

// TestPicklesThroughPython: what pickle.dumps writes (protocols 2 to 5,
// frames of large values included) goes in with Put(pyval.Object{Pickle}), plain
// pickle.load of the file gives it back, Reader.Pickle gives a pickle
// pickle.loads reads as the same value, and Plain tells plain data from
// objects.
func TestPicklesThroughPython(t *testing.T) {
	py := pyrun.Numpy2(t)
	dir := t.TempDir()
	exprs := map[string]string{
		"int":      "12345678901234567890",
		"nested":   "{'a': [1, 2.5, None, (True, b'x')], 'b': {'c': 'd' * 10}}",
		"shared":   "(lambda l: [l, l, {'k': l}])([1, 2])",
		"big":      "['x' * 70000, b'y' * 200000, list(range(20000))]",
		"ordered":  "collections.OrderedDict([('z', 1), ('a', 2)])",
		"numpy":    "{'s': np.float32(1.5), 'a': np.arange(6.).reshape(2, 3), 'd': np.dtype('<M8[s]')}",
		"set":      "frozenset({1, 2, 3})",
		"fraction": "fractions.Fraction(1, 3)",
	}
	script := `
import collections, fractions, json, pickle, sys
import numpy as np
exprs = json.loads(sys.argv[1])
for name, e in exprs.items():
    for proto in (2, 3, 4, 5):
        with open(sys.argv[2] + "/%s-%d.pkl" % (name, proto), "wb") as f:
            f.write(pickle.dumps(eval(e), protocol=proto))
`
	b, _ := json.Marshal(exprs)
	py.Run(t, script, string(b), dir)
	name := filepath.Join(dir, "out.mmpkl")
	f, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for k := range exprs {
		for proto := 2; proto <= 5; proto++ {
			p, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s-%d.pkl", k, proto)))
			if err != nil {
				t.Fatal(err)
			}
			err = f.Put(fmt.Sprintf("%s-%d", k, proto), pyval.Object{Pickle: p})
			if proto == 2 && bytes.Contains(p, []byte{opGlobal}) && err != nil {
				// Python 2 names: refused. Stored otherwise, load it anyway.
				p3, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s-3.pkl", k)))
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Put(fmt.Sprintf("%s-%d", k, proto), pyval.Object{Pickle: p3}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s protocol %d: %v", k, proto, err)
			}
		}
	}
	for k := range exprs {
		err := f.Plain(k + "-4")
		if k == "fraction" != errors.Is(err, ErrNotPlain) {
			t.Errorf("%s: Plain: %v", k, err)
		}
		p, err := f.Pickle(k + "-4")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, k+".back"), p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := `
import collections, fractions, json, pickle, sys
import numpy as np
exprs = json.loads(sys.argv[1])
with open(sys.argv[2] + "/out.mmpkl", "rb") as f:
    d = pickle.load(f)
def same(a, b):
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and (a == b).all()
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b
bad = []
for name, e in exprs.items():
    want = eval(e)
    for proto in (2, 3, 4, 5):
        if not same(want, d[name + "-%d" % proto]):
            bad.append("%s-%d from the file" % (name, proto))
    with open(sys.argv[2] + "/" + name + ".back", "rb") as f:
        if not same(want, pickle.load(f)):
            bad.append(name + " from Pickle")
print(json.dumps(bad))
`
	out := py.Run(t, check, string(b), dir)
	var bad []string
	if err := json.Unmarshal([]byte(out), &bad); err != nil || len(bad) > 0 {
		t.Errorf("%s %v", out, err)
	}
	if _, err := os.ReadFile(name); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(name)
	rep, err := Verify(bytes.NewReader(data), int64(len(data)), []pyval.Global{{Module: "fractions", Name: "Fraction"}})
	if err != nil || !rep.OK() {
		t.Errorf("verify (fractions trusted): %+v %v", rep.Findings, err)
	}
	for _, bad := range [][]byte{nil, {opNone, opStop}, {opProto, 4, opNone}, {opProto, 4, opNone, opStop, opNone}, {opProto, 1, opNone, opStop}, {opProto, 5, opNextBuffer, opStop}} {
		if err := f.Put("bad", pyval.Object{Pickle: bad}); err == nil {
			t.Errorf("Put(Object{Pickle: %x}) accepted", bad)
		}
	}
}
