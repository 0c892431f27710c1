package bridge

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
	"mmpbridge/pyval"
)

func mustDType(t testing.TB, s string) DType {
	t.Helper()
	d, err := ParseDType(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testStructs are structured dtypes as StructDType builds them, with the
// text numpy's str(dtype.descr) gives.
func testStructs(t testing.TB) map[string]DType {
	f := func(fields []Field, size int, aligned bool) DType {
		t.Helper()
		d, err := StructDType(fields, size, aligned)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	sub := func(base DType, shape ...int) DType {
		t.Helper()
		d, err := SubArrayDType(base, shape)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	inner := f([]Field{{"a", mustDType(t, "u1"), 0}, {"b", mustDType(t, ">i2"), 1}}, 3, false)
	innerAligned := f([]Field{{"a", mustDType(t, "u1"), 0}, {"b", mustDType(t, "<f8"), 8}}, 16, true)
	return map[string]DType{
		"[('x', '<f8'), ('y', '<i4', (2,)), ('n', [('a', '|u1'), ('b', '>i2')])]": f([]Field{
			{"x", mustDType(t, "<f8"), 0}, {"y", sub(mustDType(t, "<i4"), 2), 8}, {"n", inner, 16}}, 19, false),
		"[('s', '<U3'), ('t', '<M8[ms]'), ('c', '<c16')]": f([]Field{
			{"s", mustDType(t, "<U3"), 0}, {"t", mustDType(t, "<M8[ms]"), 12}, {"c", mustDType(t, "<c16"), 20}}, 36, false),
		"[('x', '|u1'), ('', '|V7'), ('n', [('a', '|u1'), ('', '|V7'), ('b', '<f8')])]": f([]Field{
			{"x", mustDType(t, "u1"), 0}, {"n", innerAligned, 8}}, 24, true),
		"[('p', [('a', '|u1'), ('b', '>i2')], (2, 2)), ('', '|V3')]": f([]Field{{"p", sub(inner, 2, 2), 0}}, 15, false),
		"[('température', '<f4'), ('n\\'x\"', '|b1')]":               f([]Field{{"température", mustDType(t, "<f4"), 0}, {`n'x"`, mustDType(t, "?"), 4}}, 5, false),
	}
}

// TestStructuredWritten: structured arrays the bridge writes load with
// plain pickle.load on numpy 1.x and 2.x, as the bridge reads them back,
// and verify.
func TestStructuredWritten(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "s.mmpkl")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	i := 0
	for text, d := range testStructs(t) {
		if got := d.String(); got != text {
			t.Errorf("String() = %s, want %s", got, text)
		}
		for _, h := range []ArrayHeader{{DType: d, Shape: []int{2, 3}}, {DType: d, Shape: []int{3, 2}, Fortran: true}, {DType: d, Shape: []int{}}, {DType: d, Shape: []int{0}}} {
			n, _ := h.NBytes()
			data := make([]byte, n)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			key := strings.Repeat("k", 1) + string(rune('a'+i))
			i++
			if err := f.PutArray(key, h, bytes.NewReader(data)); err != nil {
				t.Fatalf("%s: %v", text, err)
			}
			a, err := f.Array(key)
			if err != nil || a.DType != d || !bytes.Equal(a.Bytes(), data) {
				t.Fatalf("%s: read back %v, %v", text, a, err)
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyFile(path, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	for _, env := range pyrun.Numpys(t) {
		for p, r := range pmCheck(t, env, []pmCase{pmRead(t, path)}) {
			if r.Status != "loaded" || len(r.Mismatches) > 0 {
				t.Errorf("%s: %s: %s %s %v", env, p, r.Status, r.Error, r.Mismatches)
			}
		}
	}
	// The mmappickle profile cannot say a structured dtype.
	g, err := Create(filepath.Join(dir, "m.mmpkl"), WithProfile(Mmappickle))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, d := range testStructs(t) {
		if err := g.PutArray("x", ArrayHeader{DType: d, Shape: []int{1}}, bytes.NewReader(make([]byte, d.ItemSize))); err == nil || !strings.Contains(err.Error(), "portable profile") {
			t.Errorf("mmappickle profile: %v", err)
		}
		break
	}
}

func TestStructDTypeRefused(t *testing.T) {
	t.Parallel()
	f8 := mustDType(t, "<f8")
	for name, c := range map[string]struct {
		fields  []Field
		size    int
		aligned bool
	}{
		"no fields":       {nil, 8, false},
		"empty name":      {[]Field{{"", f8, 0}}, 8, false},
		"duplicate":       {[]Field{{"a", f8, 0}, {"a", f8, 8}}, 16, false},
		"past the item":   {[]Field{{"a", f8, 4}}, 8, false},
		"negative offset": {[]Field{{"a", f8, -1}}, 8, false},
		"misaligned":      {[]Field{{"a", mustDType(t, "u1"), 0}, {"b", f8, 1}}, 9, true},
	} {
		if _, err := StructDType(c.fields, c.size, c.aligned); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := SubArrayDType(f8, []int{0}); err == nil {
		t.Error("empty subarray accepted")
	}
	d, _ := SubArrayDType(f8, []int{2})
	if _, err := (ArrayHeader{DType: d, Shape: []int{3}}).NBytes(); err == nil {
		t.Error("an array of a subarray dtype accepted")
	}
}

// TestReaderConcurrent: one Reader serves many goroutines at once (run
// with -race).
func TestReaderConcurrent(t *testing.T) {
	t.Parallel()
	names, _ := filepath.Glob("../compat/testdata/*/*.mmpkl")
	for _, name := range names {
		f, err := Open(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := f.Reader()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 8)
		for range 8 {
			go func() {
				for _, k := range r.Keys() {
					if _, err := r.Get(k); err != nil {
						done <- err
						return
					}
					r.KindOf(k)
					r.Pickle(k)
				}
				done <- nil
			}()
		}
		for range 8 {
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		f.Close()
	}
}

// TestPutNumpyValues: numpy scalars and in-memory arrays inside a value are
// written as numpy pickles them: read back with their dtype, verified,
// and loaded by plain pickle.load.
func TestPutNumpyValues(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v.mmpkl")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	i16 := mustDType(t, "<i2")
	s11 := mustDType(t, "|S11")
	v := pyval.Dict{
		{Key: "i16", Value: &Scalar{DType: i16, Raw: []byte{0xfd, 0xff}}},
		{Key: "fixed", Value: Scalar{DType: s11, Raw: []byte("hello world")}},
		{Key: "arr", Value: NDArray{DType: mustDType(t, ">i4"), Shape: []int{3}, Data: []byte{0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}}},
		{Key: "f2d", Value: &NDArray{DType: mustDType(t, "<f4"), Shape: []int{2, 2}, Fortran: true, Data: make([]byte, 16)}},
		{Key: "empty", Value: NDArray{DType: i16, Shape: []int{0}}},
	}
	if err := f.Put("attrs", v); err != nil {
		t.Fatal(err)
	}
	if err := f.Put("bad", NDArray{DType: i16, Shape: []int{3}, Data: []byte{1}}); err == nil {
		t.Error("an array with too few bytes was written")
	}
	got, err := f.Get("attrs")
	if err != nil {
		t.Fatal(err)
	}
	d := got.(pyval.Dict)
	if s, ok := d[0].Value.(Scalar); !ok || s.DType != i16 || s.Value() != int64(-3) {
		t.Errorf("i16: %#v", d[0].Value)
	}
	if a, ok := d[2].Value.(*Array); !ok || a.DType.String() != ">i4" || a.Size() != 3 {
		t.Errorf("arr: %#v", d[2].Value)
	}
	f.Close()
	if rep, err := VerifyFile(path, nil); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	for _, env := range pyrun.Numpys(t) {
		for p, r := range pmCheck(t, env, []pmCase{pmRead(t, path)}) {
			if r.Status != "loaded" || len(r.Mismatches) > 0 {
				t.Errorf("%s: %s: %s %s %v", env, p, r.Status, r.Error, r.Mismatches)
			}
		}
	}
}

// TestStructTextOverlapping: the text of a structured dtype whose fields
// overlap or come out of order is numpy's own str(dtype) (its descr cannot
// say them), which numpy reads back as the same dtype, on numpy 1.x and
// 2.x. An offset written as a third item of a descr field (what was printed
// before) is read by numpy as a subarray shape.
func TestStructTextOverlapping(t *testing.T) {
	t.Parallel()
	f := func(fields []Field, size int, aligned bool) DType {
		t.Helper()
		d, err := StructDType(fields, size, aligned)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	i4, f8 := mustDType(t, "<i4"), mustDType(t, "<f8")
	sub, err := SubArrayDType(f8, []int{2})
	if err != nil {
		t.Fatal(err)
	}
	inner := f([]Field{{"x", i4, 0}, {"y", mustDType(t, "u1"), 4}}, 5, false)
	cases := []DType{
		f([]Field{{"a", i4, 0}, {"b", i4, 2}}, 6, false),
		f([]Field{{"a", i4, 0}, {"b", i4, 0}}, 4, false),
		f([]Field{{"b", i4, 16}, {"a", sub, 0}}, 24, false),
		f([]Field{{"a", mustDType(t, "<i2"), 8}, {"n", inner, 0}}, 12, false),
		f([]Field{{"b", i4, 4}, {"a", i4, 0}}, 8, true),
		f([]Field{{"wide", mustDType(t, "|S200000"), 0}, {"head", i4, 0}}, 200000, false),
		f([]Field{{`q'"é`, i4, 4}, {"p", f8, 0}}, 8, false),
	}
	var texts []string
	for _, d := range cases {
		texts = append(texts, d.String())
	}
	arg, _ := json.Marshal(texts)
	script := `
import ast, json, sys
import numpy as np
out = []
for s in json.loads(sys.argv[1]):
    d = np.dtype(ast.literal_eval(s))
    out.append([str(d), d.itemsize, d.isalignedstruct])
print(json.dumps(out))
`
	for _, py := range pyrun.Numpys(t) {
		var got [][3]any
		if err := json.Unmarshal([]byte(py.Run(t, script, string(arg))), &got); err != nil {
			t.Fatalf("%s: %v", py, err)
		}
		for i, d := range cases {
			if got[i][0] != texts[i] || got[i][1] != float64(d.ItemSize) || got[i][2] != d.Aligned() {
				t.Errorf("%s: %s read back as %v (item size %d, aligned %v)", py, texts[i], got[i], d.ItemSize, d.Aligned())
			}
		}
	}
}
