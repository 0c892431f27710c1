//go:build !nohdf5

package convert

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrun"
	"mmpbridge/internal/render"
	"mmpbridge/pyval"
)

// Tests of the HDF5 kinds of issue 12 on files h5py makes (h5tool.py
// genkinds): typed attributes, variable-length strings, enums, h5py.Empty,
// soft and external links, chunk layouts (TestHDF5RoundTrip).

type h5kinds struct {
	Datasets map[string]map[string]any
	Attrs    map[string]map[string]any
}

func genKinds(t *testing.T) string {
	t.Helper()
	needH5py(t)
	dir := t.TempDir()
	h5tool(t, "genkinds", dir)
	return dir
}

func readKinds(t *testing.T, name string) h5kinds {
	t.Helper()
	var k h5kinds
	if err := json.Unmarshal(h5tool(t, "kinds", name), &k); err != nil {
		t.Fatal(err)
	}
	return k
}

func h5convert(t *testing.T, src, dst string, opt Options) {
	t.Helper()
	if err := File(context.Background(), src, dst, "", "", opt); err != nil {
		t.Fatal(err)
	}
}

func attrsOf(t *testing.T, f *bridge.File) map[string]pyval.Dict {
	t.Helper()
	v, err := f.Get(attrsKey)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]pyval.Dict{}
	d, _ := v.(pyval.Dict)
	for _, o := range d {
		out[o.Key.(string)] = o.Value.(pyval.Dict)
	}
	return out
}

func lookup(d pyval.Dict, key string) (any, bool) {
	for _, it := range d {
		if it.Key == key {
			return it.Value, true
		}
	}
	return nil, false
}

// TestHDF5AttrTypes: attributes keep their HDF5 types through mmpkl and
// back (int16 scalar and array, float32, fixed |S11, vlen str, bool,
// complex, 2-d float, big-endian, uint64, float16, Empty of int and str,
// zero-length arrays), as numpy scalars and arrays numpy loads, and
// `mmpconv diff` finds the two HDF5 files equal.
func TestHDF5AttrTypes(t *testing.T) {
	dir := genKinds(t)
	src := filepath.Join(dir, "attrs.h5")
	mid := filepath.Join(dir, "attrs.mmpkl")
	back := filepath.Join(dir, "attrs-back.h5")
	h5convert(t, src, mid, Options{})
	h5convert(t, mid, back, Options{})

	want, got := readKinds(t, src), readKinds(t, back)
	if len(want.Attrs) != 2*18 {
		t.Fatalf("h5py reads %d attributes, want 36", len(want.Attrs))
	}
	for k, w := range want.Attrs {
		if g := got.Attrs[k]; !reflect.DeepEqual(g, w) {
			t.Errorf("attribute %s: back from mmpkl h5py reads %v, want %v", k, g, w)
		}
	}
	if len(got.Attrs) != len(want.Attrs) {
		t.Errorf("%d attributes back, want %d", len(got.Attrs), len(want.Attrs))
	}

	// In the mmpkl: numpy scalars and arrays of the exact dtype.
	f, err := bridge.Open(mid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	attrs := attrsOf(t, f)
	for _, path := range []string{"/", "/ds"} {
		a := attrs[path]
		for name, dt := range map[string]string{"i16": "<i2", "f32": "<f4", "fixed": "|S11", "fixed_pad": "|S11", "flag": "|b1", "z": "<c8", "u64": "<u8", "f16": "<f2"} {
			v, _ := lookup(a, name)
			s, ok := v.(bridge.Scalar)
			if !ok || s.DType.String() != dt {
				t.Errorf("%s %s: %s (%T), want a numpy scalar of %s", path, name, render.Repr(v, 0), v, dt)
			}
		}
		for name, dt := range map[string]string{"i16_arr": "<i2", "m": "<f8", "be": ">i4", "fixed_arr": "|S4", "flags": "|b1", "e0": "<f8"} {
			v, _ := lookup(a, name)
			arr, ok := v.(*bridge.Array)
			if !ok || arr.DType.String() != dt {
				t.Errorf("%s %s: %s (%T), want an array of %s", path, name, render.Repr(v, 0), v, dt)
			}
		}
		if v, _ := lookup(a, "vlen"); v != "héllo" {
			t.Errorf("%s vlen: %s", path, render.Repr(v, 0))
		}
		if v, _ := lookup(a, "vlen_arr"); !reflect.DeepEqual(v, []any{"x", "yz"}) {
			t.Errorf("%s vlen_arr: %s", path, render.Repr(v, 0))
		}
		if v, ok := lookup(a, "empty"); !ok || v != nil {
			t.Errorf("%s empty: %s, want None", path, render.Repr(v, 0))
		}
		e, _ := lookup(a, metaEmptyAttrs)
		if got, want := render.Repr(e, 0), "{'empty': '<i4', 'empty_str': 'str'}"; got != want {
			t.Errorf("%s %s = %s, want %s", path, metaEmptyAttrs, got, want)
		}
	}

	// numpy (1 and 2) loads the value with these types.
	pk, err := f.Reader()
	if err != nil {
		t.Fatal(err)
	}
	pickle, err := pk.Pickle(attrsKey)
	if err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(dir, "attrs.pickle")
	if err := writeFileT(pf, pickle); err != nil {
		t.Fatal(err)
	}
	for _, env := range pyrun.Numpys(t) {
		out := env.Run(t, `import sys, pickle, numpy as np
a = pickle.load(open(sys.argv[1], "rb"))["/"]
assert type(a["i16"]) is np.int16 and a["i16"] == -3, a["i16"]
assert a["i16_arr"].dtype == np.dtype("i2") and a["i16_arr"].tolist() == [1, -2, 3]
assert type(a["f32"]) is np.float32 and a["f32"] == 1.5
assert isinstance(a["fixed"], np.bytes_) and a["fixed"] == b"hello world"
assert type(a["flag"]) is np.bool_ and a["flag"]
assert type(a["z"]) is np.complex64 and a["z"] == 1 - 2j
assert a["m"].shape == (2, 2) and a["m"].dtype == np.float64 and a["m"][1, 1] == 4.25
assert a["be"].dtype.newbyteorder("=") == np.dtype("i4") and a["be"].tolist() == [1, 2]  # numpy unpickles in native order
assert type(a["u64"]) is np.uint64 and a["u64"] == 2**64 - 1
assert a["vlen"] == "héllo" and a["vlen_arr"] == ["x", "yz"] and a["empty"] is None
print("ok")`, pf)
		if strings.TrimSpace(out) != "ok" {
			t.Errorf("%s: %s", env, out)
		}
	}

	var diffs []string
	n, err := Diff(context.Background(), src, back, "", "", DiffOptions{Report: func(d Difference) { diffs = append(diffs, fmt.Sprintf("%+v", d)) }})
	if err != nil || n != 0 {
		t.Errorf("diff attrs.h5 attrs-back.h5: %d differences %q, %v", n, diffs, err)
	}
	noTemp(t, dir)
}

func writeFileT(name string, b []byte) error {
	return os.WriteFile(name, b, 0o644)
}

// pyStrings reads with h5py the datasets' strings, flattened.
func pyStrings(t *testing.T, name string) map[string][]string {
	t.Helper()
	out := pyrun.Numpy1(t).Run(t, `import sys, json, h5py, numpy as np
r = {}
with h5py.File(sys.argv[1], "r") as f:
    for k in f:
        d = f[k]
        if h5py.check_string_dtype(d.dtype):
            r[k] = [x.decode() for x in np.asarray(d[()], dtype=object).ravel().tolist()]
print(json.dumps(r))`, name)
	var m map[string][]string
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// ucs4 decodes a numpy U array's elements, trailing NULs dropped.
func ucs4(t *testing.T, a *bridge.Array) []string {
	t.Helper()
	b := a.Bytes()
	item := a.DType.ItemSize
	var out []string
	for o := 0; o+item <= len(b); o += item {
		var rs []rune
		for i := o; i < o+item; i += 4 {
			rs = append(rs, rune(binary.LittleEndian.Uint32(b[i:])))
		}
		for len(rs) > 0 && rs[len(rs)-1] == 0 {
			rs = rs[:len(rs)-1]
		}
		out = append(out, string(rs))
	}
	return out
}

// TestHDF5Vlen: variable-length string datasets become '<U' arrays of the
// longest string (read in small blocks here), or lists of str with
// VlenAsList; strings that are not UTF-8 refuse their dataset.
func TestHDF5Vlen(t *testing.T) {
	dir := genKinds(t)
	src := filepath.Join(dir, "vlen.h5")
	strs := pyStrings(t, src)
	defer func(n int64) { vlenBlockElems = n }(vlenBlockElems)
	vlenBlockElems = 7

	mid := filepath.Join(dir, "vlen.mmpkl")
	var done, total int64
	h5convert(t, src, mid, Options{Progress: func(d, tot int64) { done, total = d, tot }})
	if done != total {
		t.Errorf("progress ended at %d of %d", done, total)
	}
	f, err := bridge.Open(mid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wantDT := map[string]string{"s": "<U5", "s2d": "<U4", "scalar": "<U3", "none": "<U1", "ascii": "<U2", "allempty": "<U1", "chunked": "<U24"}
	wantShape := map[string][]int{"s": {4}, "s2d": {2, 2}, "scalar": {}, "none": {0}, "ascii": {2}, "allempty": {2}, "chunked": {5000}}
	for k, dt := range wantDT {
		a, err := f.Array(k)
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		if a.DType.String() != dt || !slices.Equal(a.Shape, wantShape[k]) {
			t.Errorf("%s: %s %v, want %s %v", k, a.DType, a.Shape, dt, wantShape[k])
		}
		if got := ucs4(t, a); !slices.Equal(got, strs[k]) && !(len(got) == 0 && len(strs[k]) == 0) {
			t.Errorf("%s: %q, h5py reads %q", k, got, strs[k])
		}
	}

	list := filepath.Join(dir, "vlen-list.mmpkl")
	h5convert(t, src, list, Options{VlenAsList: true})
	lf, err := bridge.Open(list)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	for k, want := range map[string]any{"s": []any{"a", "héllo", "", "日本語"}, "s2d": []any{[]any{"ab", "c"}, []any{"", "défg"}}, "scalar": "one", "none": []any{}} {
		v, err := lf.Get(k)
		if err != nil || !reflect.DeepEqual(v, want) {
			t.Errorf("%s with VlenAsList: %s (%v), want %s", k, render.Repr(v, 0), err, render.Repr(want, 0))
		}
	}
	v, _ := lf.Get("chunked")
	if l, ok := v.([]any); !ok || len(l) != 5000 || l[4999] != strs["chunked"][4999] {
		t.Errorf("chunked with VlenAsList: %s", render.Repr(v, 0))
	}

	bad := filepath.Join(dir, "badutf8.h5")
	err = File(context.Background(), bad, filepath.Join(dir, "bad.mmpkl"), "", "", Options{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Member != `dataset "/bad"` || !strings.Contains(ue.Reason, "UTF-8") || !strings.Contains(err.Error(), bad) {
		t.Errorf("got %v, want an UnsupportedError naming %s and dataset /bad", err, bad)
	}
	var skipped skipLog
	h5convert(t, bad, filepath.Join(dir, "bad.mmpkl"), Options{SkipUnsupported: true, Skipped: skipped.add})
	if !slices.Equal(skipped.names, []string{`dataset "/bad"`}) {
		t.Errorf("skipped %q", skipped.names)
	}
	noTemp(t, dir)
}

// TestHDF5Enum: enums become their base integer type with __enum__
// naming the members (in HDF5's order, by name), and come back as the same enums; h5py's bool stays
// bool.
func TestHDF5Enum(t *testing.T) {
	dir := genKinds(t)
	src := filepath.Join(dir, "enum.h5")
	mid := filepath.Join(dir, "enum.mmpkl")
	back := filepath.Join(dir, "enum-back.h5")
	h5convert(t, src, mid, Options{})
	h5convert(t, mid, back, Options{})
	f, err := bridge.Open(mid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for k, dt := range map[string]string{"color": "|i1", "big": ">u2", "neg": "<i8", "bools": "|b1"} {
		if a, err := f.Array(k); err != nil || a.DType.String() != dt {
			t.Errorf("%s: %v %v, want %s", k, a, err, dt)
		}
	}
	attrs := attrsOf(t, f)
	for path, want := range map[string]string{"/color": "{'BLUE': 2, 'GREEN': 1, 'RED': 0}", "/big": "{'HIGH': 300, 'LOW': 7}", "/neg": "{'MINUS': -5, 'NINE': 9}"} {
		v, _ := lookup(attrs[path], metaEnum)
		if got := render.Repr(v, 0); got != want {
			t.Errorf("%s %s = %s, want %s", path, metaEnum, got, want)
		}
	}
	if _, ok := attrs["/bools"]; ok {
		t.Errorf("/bools has records %s", render.Repr(attrs["/bools"], 0))
	}
	want, got := readKinds(t, src), readKinds(t, back)
	if !reflect.DeepEqual(got.Datasets, want.Datasets) {
		t.Errorf("back from mmpkl h5py reads\n %v\nwant\n %v", got.Datasets, want.Datasets)
	}
	if want.Datasets["/color"]["enum"] == nil {
		t.Error("h5py sees no enum in the source")
	}
	noTemp(t, dir)
}

// TestHDF5Empty: h5py.Empty datasets become None with __empty__ naming
// their dtype, and come back as Empty of that dtype.
func TestHDF5Empty(t *testing.T) {
	dir := genKinds(t)
	src := filepath.Join(dir, "empty.h5")
	mid := filepath.Join(dir, "empty.mmpkl")
	back := filepath.Join(dir, "empty-back.h5")
	h5convert(t, src, mid, Options{})
	h5convert(t, mid, back, Options{})
	f, err := bridge.Open(mid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, _ := f.Keys()
	if !slices.Equal(keys, []string{"e_f4", "e_str", "x", attrsKey}) {
		t.Errorf("keys %q", keys)
	}
	for _, k := range []string{"e_f4", "e_str"} {
		if v, err := f.Get(k); err != nil || v != nil {
			t.Errorf("%s: %s %v, want None", k, render.Repr(v, 0), err)
		}
	}
	attrs := attrsOf(t, f)
	if got, want := render.Repr(attrs["/e_f4"], 0), "{'note': 'x', '__empty__': '<f4'}"; got != want {
		t.Errorf("/e_f4 attributes %s, want %s", got, want)
	}
	if got, want := render.Repr(attrs["/e_str"], 0), "{'__empty__': 'str'}"; got != want {
		t.Errorf("/e_str attributes %s, want %s", got, want)
	}
	want, got := readKinds(t, src), readKinds(t, back)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("back from mmpkl h5py reads\n %v\nwant\n %v", got, want)
	}
	noTemp(t, dir)
}

// TestHDF5Links: soft and external links are reported with their targets
// and not followed; further hard links are reported; the rest converts.
func TestHDF5Links(t *testing.T) {
	dir := genKinds(t)
	src := filepath.Join(dir, "links.h5")
	mid := filepath.Join(dir, "links.mmpkl")
	var skipped skipLog
	h5convert(t, src, mid, Options{Skipped: skipped.add})
	wantNames := []string{`link "/a"`, `link "/dangling"`, `link "/g/x"`, `link "/hard"`}
	wantReasons := []string{`soft link "/a" -> "/g/b"`, `soft link "/dangling" -> "/nowhere"`, `external link "/g/x" -> "other.h5:/y"`, `another hard link to "/g/b"`}
	if !slices.Equal(skipped.names, wantNames) {
		t.Fatalf("skipped %q (%q), want %q", skipped.names, skipped.reasons, wantNames)
	}
	for i, r := range skipped.reasons {
		if !strings.Contains(r, wantReasons[i]) {
			t.Errorf("%s: %q, want it to say %q", wantNames[i], r, wantReasons[i])
		}
	}
	f, err := bridge.Open(mid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, _ := f.Keys()
	if !slices.Equal(keys, []string{"g/b"}) {
		t.Errorf("keys %q", keys)
	}
	if !utf8.ValidString(strings.Join(skipped.reasons, "")) {
		t.Error("reasons not UTF-8")
	}
}

// TestMmpklToHDF5Records: __attrs__ records written by hand: a layout for
// a Fortran-ordered array (streamed in rows of chunks) and for one smaller
// than its chunks, an Empty dataset, and a layout that does not fit,
// refused.
func TestMmpklToHDF5Records(t *testing.T) {
	needH5py(t)
	defer func(b int64) { hdf5BlockBytes = b }(hdf5BlockBytes)
	hdf5BlockBytes = 1000
	dir := t.TempDir()
	src := filepath.Join(dir, "in.mmpkl")
	f, err := bridge.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	fdata := make([]byte, 30*20*4)
	for i := range 30 * 20 {
		binary.LittleEndian.PutUint32(fdata[4*i:], uint32(i))
	}
	if err := f.PutArray("f", bridge.ArrayHeader{DType: mustDType(t, "<i4"), Shape: []int{30, 20}, Fortran: true}, bytes.NewReader(fdata)); err != nil {
		t.Fatal(err)
	}
	if err := f.PutArray("small", bridge.ArrayHeader{DType: mustDType(t, "<f8"), Shape: []int{100, 3}}, bytes.NewReader(make([]byte, 2400))); err != nil {
		t.Fatal(err)
	}
	if err := f.PutArray("bad", bridge.ArrayHeader{DType: mustDType(t, "|u1"), Shape: []int{2, 2}}, bytes.NewReader(make([]byte, 4))); err != nil {
		t.Fatal(err)
	}
	if err := f.Put("e", nil); err != nil {
		t.Fatal(err)
	}
	lay := func(chunks ...any) pyval.Dict {
		return pyval.Dict{{Key: "chunks", Value: chunks}, {Key: "compression", Value: "gzip"}, {Key: "shuffle", Value: true}}
	}
	attrs := pyval.Dict{
		{Key: "/f", Value: pyval.Dict{{Key: "__layout__", Value: lay(int64(7), int64(5))}, {Key: "units", Value: "m"}}},
		{Key: "/small", Value: pyval.Dict{{Key: "__layout__", Value: lay(int64(200), int64(3))}}},
		{Key: "/bad", Value: pyval.Dict{{Key: "__layout__", Value: lay(int64(3))}}},
		{Key: "/e", Value: pyval.Dict{{Key: "__empty__", Value: "<i2"}}},
	}
	if err := f.Put(attrsKey, attrs); err != nil {
		t.Fatal(err)
	}
	f.Close()

	err = File(context.Background(), src, filepath.Join(dir, "x.h5"), "", "", Options{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Member != `key "bad"` || !strings.Contains(ue.Reason, "__layout__") {
		t.Fatalf("got %v, want key bad refused for its __layout__", err)
	}
	dst := filepath.Join(dir, "out.h5")
	h5convert(t, src, dst, Options{SkipUnsupported: true})
	k := readKinds(t, dst)
	fd := k.Datasets["/f"]
	if fmt.Sprintf("%v %v %v %v", fd["chunks"], fd["compression"], fd["compression_opts"], fd["shuffle"]) != "[7 5] gzip 4 true" {
		t.Errorf("/f: %v", fd)
	}
	if got := fmt.Sprint(k.Datasets["/small"]["chunks"]); got != "[200 3]" {
		t.Errorf("/small chunks %s", got)
	}
	if e := k.Datasets["/e"]; e["empty"] != true || e["dtype"] != "<i2" {
		t.Errorf("/e: %v", e)
	}
	if _, ok := k.Attrs["/f:__layout__"]; ok || k.Attrs["/f:units"] == nil {
		t.Errorf("attributes of /f: %v", k.Attrs)
	}
	out := pyrun.Numpy1(t).Run(t, `import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    want = np.arange(600, dtype="i4").reshape(20, 30).T
    print(bool((f["f"][()] == want).all()))`, dst)
	if strings.TrimSpace(out) != "True" {
		t.Errorf("/f data differ: %s", out)
	}
	noTemp(t, dir)
}
