package convert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrun"
	"mmpbridge/internal/render"
	"mmpbridge/pyval"
)

// The HDF5 tests make their files with h5py (testdata/hdf5/h5tool.py, run
// in the numpy1 environment of internal/pyrun) and check the results with
// it. Without it they are skipped, except under CI=true, where they fail.

var h5toolPath = filepath.Join("testdata", "hdf5", "h5tool.py")

func needH5py(t *testing.T) {
	t.Helper()
	if !hdf5Available {
		t.Skip("built with -tags nohdf5")
	}
	pyrun.Numpy1(t).Run(t, "import h5py, numpy")
}

func h5tool(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := pyrun.Numpy1(t).Command(append([]string{h5toolPath}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("h5tool.py %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

type h5dsDesc struct {
	Path   string
	Dtype  string
	Shape  []int
	Sha256 string
	Chunks []int
	Layout []any // compression, compression_opts, shuffle, fletcher32
}

type h5attrDesc struct {
	Kind  string
	Dtype *string
	Shape []int // nil: a Python str; empty: a numpy scalar
	Value []json.Number
	Strs  []string
}

func (a *h5attrDesc) UnmarshalJSON(b []byte) error {
	var raw struct {
		Kind  string
		Dtype *string
		Shape []int
		Value []json.RawMessage
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	a.Kind, a.Dtype, a.Shape = raw.Kind, raw.Dtype, raw.Shape
	for _, v := range raw.Value {
		switch a.Kind {
		case "str", "bytes":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			a.Strs = append(a.Strs, s)
		case "complex":
			var z []json.Number
			if err := json.Unmarshal(v, &z); err != nil {
				return err
			}
			a.Value = append(a.Value, z...)
		case "bool":
			var x bool
			if err := json.Unmarshal(v, &x); err != nil {
				return err
			}
			a.Value = append(a.Value, json.Number(strconv.FormatBool(x)))
		default:
			d := json.NewDecoder(bytes.NewReader(v))
			d.UseNumber()
			var n json.Number
			if err := d.Decode(&n); err != nil {
				return err
			}
			a.Value = append(a.Value, n)
		}
	}
	return nil
}

type h5desc struct {
	Datasets []h5dsDesc
	Attrs    map[string]map[string]h5attrDesc
}

// genH5 writes good.h5 and bad.h5 into a new directory.
func genH5(t *testing.T) (string, h5desc) {
	t.Helper()
	needH5py(t)
	dir := t.TempDir()
	var d h5desc
	if err := json.Unmarshal(h5tool(t, "gen", dir), &d); err != nil {
		t.Fatal(err)
	}
	return dir, d
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// flatten checks the nesting of a generic list against shape and returns
// its leaves.
func flatten(v any, shape []int) ([]any, error) {
	if len(shape) == 0 {
		return []any{v}, nil
	}
	l, ok := v.([]any)
	if !ok || len(l) != shape[0] {
		return nil, fmt.Errorf("%s is not a list of %d", render.Repr(v, 0), shape[0])
	}
	var out []any
	for _, e := range l {
		f, err := flatten(e, shape[1:])
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
	}
	return out, nil
}

// checkAttr compares a value of __attrs__ with what h5py read: numpy
// scalars and arrays of h5py's dtype, str and lists of str.
func checkAttr(t *testing.T, where string, got any, want h5attrDesc) {
	t.Helper()
	shape := want.Shape
	if shape == nil {
		shape = []int{}
	}
	var leaves []any
	var err error
	switch x := got.(type) {
	case bridge.Scalar:
		if want.Dtype == nil || x.DType.String() != *want.Dtype || len(shape) != 0 {
			t.Errorf("%s: a numpy scalar of %s, h5py reads %+v", where, x.DType, want)
			return
		}
		leaves = []any{x.Value()}
	case *bridge.Array:
		if want.Dtype == nil || x.DType.String() != *want.Dtype || !slices.Equal(x.Shape, shape) {
			t.Errorf("%s: an array of %s %v, h5py reads %+v", where, x.DType, x.Shape, want)
			return
		}
		b := make([]byte, x.NBytes)
		if _, err := x.Section().ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		for o := 0; o < len(b); o += x.DType.ItemSize {
			s := bridge.Scalar{DType: x.DType, Raw: b[o : o+x.DType.ItemSize]}
			leaves = append(leaves, s.Value())
		}
	default:
		if leaves, err = flatten(got, shape); err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
	}
	for i, g := range leaves {
		ok := false
		switch want.Kind {
		case "str":
			s, isStr := g.(string)
			ok = isStr && s == want.Strs[i]
		case "int":
			n, err := strconv.ParseInt(want.Value[i].String(), 10, 64)
			ok = err == nil && g == any(n)
		case "float":
			f, err := strconv.ParseFloat(want.Value[i].String(), 64)
			ok = err == nil && g == any(f)
		case "bool":
			ok = g == any(want.Value[i].String() == "true")
		case "complex":
			re, _ := strconv.ParseFloat(want.Value[2*i].String(), 64)
			im, _ := strconv.ParseFloat(want.Value[2*i+1].String(), 64)
			ok = g == any(complex(re, im))
		}
		if !ok {
			t.Errorf("%s: element %d is %s (%T), h5py reads %+v", where, i, render.Repr(g, 0), g, want)
		}
	}
}

type skipLog struct{ names, reasons []string }

func (s *skipLog) add(name, reason string) {
	s.names = append(s.names, name)
	s.reasons = append(s.reasons, reason)
}

func TestHDF5RoundTrip(t *testing.T) {
	dir, want := genH5(t)
	src := filepath.Join(dir, "good.h5")
	var total int64
	var keys []string
	for _, d := range want.Datasets {
		keys = append(keys, d.Path[1:])
		n, _ := (bridge.ArrayHeader{DType: mustDType(t, d.Dtype), Shape: d.Shape}).NBytes()
		total += n
	}
	keys = append(keys, "__attrs__")
	for _, p := range []bridge.Profile{bridge.Portable, bridge.Mmappickle} {
		t.Run(p.String(), func(t *testing.T) {
			if p == bridge.Mmappickle {
				// Tiny blocks: hyperslabs within rows, across chunks.
				defer func(b int64) { hdf5BlockBytes = b }(hdf5BlockBytes)
				hdf5BlockBytes = 1000
			}
			mid := filepath.Join(dir, p.String()+".mmpkl")
			var last, lastTotal int64
			var mu sync.Mutex // Progress is called from several goroutines
			var skipped skipLog
			opt := Options{Profile: p, Skipped: skipped.add, Progress: func(d, tot int64) {
				mu.Lock()
				last, lastTotal = max(last, d), tot
				mu.Unlock()
			}}
			if err := File(context.Background(), src, mid, "", "", opt); err != nil {
				t.Fatal(err)
			}
			if last != total || lastTotal != total {
				t.Errorf("progress ended at %d of %d, want %d", last, lastTotal, total)
			}
			if !slices.Equal(skipped.names, []string{`link "/soft"`}) {
				t.Errorf("skipped %q (%q)", skipped.names, skipped.reasons)
			}
			f, err := bridge.Open(mid)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, _ := f.Keys()
			if !slices.Equal(got, keys) {
				t.Errorf("keys %q, want %q", got, keys)
			}
			for _, d := range want.Datasets {
				a, err := f.Array(d.Path[1:])
				if err != nil {
					t.Errorf("%s: %v", d.Path, err)
					continue
				}
				if a.DType.String() != d.Dtype || !slices.Equal(a.Shape, d.Shape) || a.Profile != p || a.Fortran {
					t.Errorf("%s: %s %v %s, h5py reads %s %v", d.Path, a.DType, a.Shape, a.Profile, d.Dtype, d.Shape)
				}
				if sha(a.Bytes()) != d.Sha256 {
					t.Errorf("%s: data differ from what h5py reads", d.Path)
				}
			}
			v, err := f.Get("__attrs__")
			if err != nil {
				t.Fatal(err)
			}
			attrs, ok := v.(pyval.Dict)
			if !ok {
				t.Fatalf("__attrs__ is %s", render.Repr(v, 0))
			}
			// The layouts of the chunked datasets, as h5py names them.
			layouts := map[string]string{}
			for _, d := range want.Datasets {
				if d.Chunks == nil {
					continue
				}
				chunks := make([]any, len(d.Chunks))
				for i, c := range d.Chunks {
					chunks[i] = int64(c)
				}
				opts := d.Layout[1]
				if f, ok := opts.(float64); ok {
					opts = int64(f)
				}
				layouts[d.Path] = render.Repr(pyval.Dict{{Key: "chunks", Value: chunks}, {Key: "compression", Value: d.Layout[0]},
					{Key: "compression_opts", Value: opts}, {Key: "shuffle", Value: d.Layout[2]}, {Key: "fletcher32", Value: d.Layout[3]}}, 0)
			}
			if len(layouts) != 11 {
				t.Errorf("%d chunked datasets in good.h5, want 11", len(layouts))
			}
			nobj := 0
			for _, o := range attrs {
				path, _ := o.Key.(string)
				all, _ := o.Value.(pyval.Dict)
				var items pyval.Dict
				for _, it := range all {
					if it.Key == "__layout__" {
						if got := render.Repr(it.Value, 0); got != layouts[path] {
							t.Errorf("%s __layout__ = %s, h5py reads %s", path, got, layouts[path])
						}
						delete(layouts, path)
						continue
					}
					items = append(items, it)
				}
				if len(items) == 0 {
					continue
				}
				nobj++
				wo, ok := want.Attrs[path]
				ok2 := true
				if !ok || !ok2 || len(items) != len(wo) {
					t.Errorf("__attrs__[%s] = %s, want %d attributes", render.Repr(o.Key, 0), render.Repr(o.Value, 0), len(wo))
					continue
				}
				for _, it := range items {
					name, _ := it.Key.(string)
					wa, ok := wo[name]
					if !ok {
						t.Errorf("__attrs__[%q] has an unexpected %s", path, render.Repr(it.Key, 0))
						continue
					}
					checkAttr(t, fmt.Sprintf("attribute %q of %q", name, path), it.Value, wa)
				}
			}
			if nobj != len(want.Attrs) {
				t.Errorf("__attrs__ has the attributes of %d objects, h5py reads %d", nobj, len(want.Attrs))
			}
			if len(layouts) != 0 {
				t.Errorf("no __layout__ for %v", layouts)
			}

			// Back to HDF5: h5py must read the same datasets and attributes.
			back := filepath.Join(dir, p.String()+"-back.h5")
			skipped = skipLog{}
			last = 0
			opt = Options{Skipped: skipped.add, Progress: func(d, tot int64) { last, lastTotal = d, tot }}
			if err := File(context.Background(), mid, back, "", "", opt); err != nil {
				t.Fatal(err)
			}
			if last != total || lastTotal != total {
				t.Errorf("mmpkl -> HDF5: progress ended at %d of %d, want %d", last, lastTotal, total)
			}
			if len(skipped.names) != 0 {
				t.Errorf("mmpkl -> HDF5 skipped %q", skipped.names)
			}
			// Chunks and filters as in the source (LayoutKeep).
			var cmp struct {
				Diffs   []string
				Chunked []string
			}
			if err := json.Unmarshal(h5tool(t, "compare", src, back, "keep"), &cmp); err != nil {
				t.Fatal(err)
			}
			for _, d := range cmp.Diffs {
				t.Error(d)
			}
			if len(cmp.Chunked) != 11 {
				t.Errorf("%d datasets written chunked, want the 11 of the source", len(cmp.Chunked))
			}
			// LayoutContiguous: everything contiguous.
			flat := filepath.Join(dir, p.String()+"-contiguous.h5")
			if err := File(context.Background(), mid, flat, "", "", Options{Layout: LayoutContiguous}); err != nil {
				t.Fatal(err)
			}
			cmp.Diffs, cmp.Chunked = nil, nil
			if err := json.Unmarshal(h5tool(t, "compare", src, flat), &cmp); err != nil {
				t.Fatal(err)
			}
			for _, d := range cmp.Diffs {
				t.Error(d)
			}
			if len(cmp.Chunked) > 0 {
				t.Errorf("datasets written chunked with LayoutContiguous: %q", cmp.Chunked)
			}
			noTemp(t, dir)
		})
	}
}

func mustDType(t *testing.T, s string) bridge.DType {
	t.Helper()
	d, err := bridge.ParseDType(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestHDF5Unsupported(t *testing.T) {
	dir, _ := genH5(t)
	src := filepath.Join(dir, "bad.h5")
	out := t.TempDir()
	dst := filepath.Join(out, "bad.mmpkl")
	err := File(context.Background(), src, dst, "", "", Options{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.File != src || ue.Member != `dataset "/compound"` || !strings.Contains(ue.Reason, "compound") {
		t.Fatalf("got %v, want an UnsupportedError for dataset /compound", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Error("a refused conversion left its destination")
	}
	noTemp(t, out)

	long := "/" + strings.Repeat("g", 100) + "/" + strings.Repeat("h", 100) + "/" + strings.Repeat("x", 60)
	var skipped skipLog
	var done, total int64
	progress := func(d, tot int64) { done, total = max(done, d), tot }
	if err := File(context.Background(), src, dst, "", "", Options{SkipUnsupported: true, Skipped: skipped.add, Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if done != total || total == 0 {
		t.Errorf("progress ended at %d of %d with items skipped", done, total)
	}
	wantSkipped := []string{`dataset "/compound"`, fmt.Sprintf("dataset %q", long), `attribute "cattr" of "/ok"`, `dataset "/ref"`}
	wantReasons := []string{"compound member", "255 bytes", "compound", "reference"}
	if !slices.Equal(skipped.names, wantSkipped) {
		t.Errorf("skipped %q, want %q", skipped.names, wantSkipped)
	}
	for i, r := range skipped.reasons {
		if i < len(wantReasons) && !strings.Contains(r, wantReasons[i]) {
			t.Errorf("%s skipped because %q, want a reason mentioning %q", skipped.names[i], r, wantReasons[i])
		}
	}
	f, err := bridge.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, _ := f.Keys()
	if !slices.Equal(keys, []string{"ok", "vlen_str", "__attrs__"}) {
		t.Errorf("keys %q", keys)
	}
	v, _ := f.Get("__attrs__")
	if got, want := render.Repr(v, 0), render.Repr(pyval.Dict{{Key: "/", Value: pyval.Dict{{Key: "good", Value: bridge.Scalar{DType: mustDType(t, "<i8"), Raw: []byte{1, 0, 0, 0, 0, 0, 0, 0}}}}}, {Key: "/ok", Value: pyval.Dict{{Key: "fine", Value: "yes"}}}}, 0); got != want {
		t.Errorf("__attrs__ = %s, want %s", got, want)
	}
	a, err := f.Array("ok")
	if err != nil || a.DType.String() != "<i4" || !slices.Equal(a.Shape, []int{5}) {
		t.Errorf("ok: %v %v", a, err)
	}
}

func TestHDF5Cancel(t *testing.T) {
	dir, _ := genH5(t)
	dst := filepath.Join(dir, "out.mmpkl")
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	opt := Options{Progress: func(d, tot int64) { calls++; cancel() }}
	err := File(ctx, filepath.Join(dir, "good.h5"), dst, "", "", opt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Errorf("%d blocks copied after cancelling, want 1", calls)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Error("a cancelled conversion left its destination")
	}
	noTemp(t, dir)
}

// TestMmpklToHDF5 writes what the bridge can hold and h5py cannot see
// directly: Fortran order, masked arrays, refused dtypes, generic values.
func TestMmpklToHDF5(t *testing.T) {
	needH5py(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "in.mmpkl")
	f, err := bridge.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{} // path -> dtype, sha256 of C-order bytes
	put := func(key string, h bridge.ArrayHeader, data, cdata []byte) {
		t.Helper()
		if err := f.PutArray(key, h, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		want["/"+key] = [2]string{h.DType.String(), sha(cdata)}
	}
	// A Fortran-ordered int32 array, value = 100i+10j+k.
	shape := []int{3, 4, 5}
	var fbytes, cbytes []byte
	for k := range 5 {
		for j := range 4 {
			for i := range 3 {
				fbytes = binary.LittleEndian.AppendUint32(fbytes, uint32(100*i+10*j+k))
			}
		}
	}
	for i := range 3 {
		for j := range 4 {
			for k := range 5 {
				cbytes = binary.LittleEndian.AppendUint32(cbytes, uint32(100*i+10*j+k))
			}
		}
	}
	put("c/f_order", bridge.ArrayHeader{DType: mustDType(t, "<i4"), Shape: shape, Fortran: true}, fbytes, cbytes)
	// A large Fortran-ordered float64 array (several blocks).
	const rows, cols = 700, 500
	fb, cb := make([]byte, rows*cols*8), make([]byte, rows*cols*8)
	for i := range rows {
		for j := range cols {
			v := math.Float64bits(float64(i) + float64(j)/1000)
			binary.LittleEndian.PutUint64(fb[8*(j*rows+i):], v)
			binary.LittleEndian.PutUint64(cb[8*(i*cols+j):], v)
		}
	}
	put("fbig", bridge.ArrayHeader{DType: mustDType(t, "<f8"), Shape: []int{rows, cols}, Fortran: true}, fb, cb)
	be := make([]byte, 32)
	for i := range 4 {
		binary.BigEndian.PutUint64(be[8*i:], math.Float64bits(float64(i)*1.5))
	}
	put("be", bridge.ArrayHeader{DType: mustDType(t, ">f8"), Shape: []int{4}}, be, be)
	put("zero_d", bridge.ArrayHeader{DType: mustDType(t, "<i2"), Shape: []int{}}, []byte{7, 1}, []byte{7, 1})
	if err := f.Put("gen", pyval.Dict{{Key: "a", Value: int64(1)}}); err != nil {
		t.Fatal(err)
	}
	// Keys HDF5 cannot use as paths: an empty component, a group where a
	// dataset is.
	for _, k := range []string{"bad//key", "c/f_order/x"} {
		if err := f.PutArray(k, bridge.ArrayHeader{DType: mustDType(t, "|u1"), Shape: []int{1}}, bytes.NewReader([]byte{1})); err != nil {
			t.Fatal(err)
		}
	}
	mdata := make([]byte, 6*8)
	for i := range 6 {
		binary.LittleEndian.PutUint64(mdata[8*i:], math.Float64bits(float64(i)))
	}
	mask := []byte{0, 1, 0, 0, 0, 1}
	if err := f.PutMasked("masked", bridge.ArrayHeader{DType: mustDType(t, "<f8"), Shape: []int{2, 3}}, bytes.NewReader(mdata), bytes.NewReader(mask), nil); err != nil {
		t.Fatal(err)
	}
	want["/masked"] = [2]string{"<f8", sha(mdata)}
	want["/masked.mask"] = [2]string{"|b1", sha(mask)}
	attrs := pyval.Dict{
		{Key: "/", Value: pyval.Dict{{Key: "a", Value: int64(1)}, {Key: "l", Value: []any{int64(1), 2.5}}, {Key: "t", Value: pyval.Tuple{"x", "yz"}}}},
		{Key: "/c", Value: pyval.Dict{{Key: "none", Value: nil}}},
		{Key: "/c/f_order", Value: pyval.Dict{{Key: "s", Value: "ü"}, {Key: "m", Value: []any{[]any{true, false}, []any{false, true}}}}},
		{Key: "/new/grp", Value: pyval.Dict{{Key: "z", Value: complex(1, -2)}}},
	}
	if err := f.Put("__attrs__", attrs); err != nil {
		t.Fatal(err)
	}
	f.Close()

	dst := filepath.Join(dir, "out.h5")
	err = File(context.Background(), src, dst, "", "", Options{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Member != `key "bad//key"` || !strings.Contains(ue.Reason, "empty component") {
		t.Fatalf("got %v, want an UnsupportedError for key bad//key", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Error("a refused conversion left its destination")
	}
	noTemp(t, dir)

	for _, block := range []int64{hdf5BlockBytes, 1000} {
		t.Run(fmt.Sprintf("block%d", block), func(t *testing.T) {
			defer func(b int64) { hdf5BlockBytes = b }(hdf5BlockBytes)
			hdf5BlockBytes = block
			dst := filepath.Join(dir, fmt.Sprintf("out%d.h5", block))
			var skipped skipLog
			if err := File(context.Background(), src, dst, "", "", Options{SkipUnsupported: true, Skipped: skipped.add}); err != nil {
				t.Fatal(err)
			}
			wantSkipped := []string{`key "gen"`, `key "bad//key"`, `key "c/f_order/x"`, `attribute "none" of "/c"`}
			wantReasons := []string{"generic values", "empty component", "dataset \"/c/f_order\"", "None"}
			if !slices.Equal(skipped.names, wantSkipped) {
				t.Errorf("skipped %q (%q), want %q", skipped.names, skipped.reasons, wantSkipped)
			}
			for i, r := range skipped.reasons {
				if i < len(wantReasons) && !strings.Contains(r, wantReasons[i]) {
					t.Errorf("%s skipped because %q, want a reason mentioning %q", skipped.names[i], r, wantReasons[i])
				}
			}
			var got h5desc
			if err := json.Unmarshal(h5tool(t, "describe", dst), &got); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, d := range got.Datasets {
				w, ok := want[d.Path]
				seen[d.Path] = true
				switch {
				case !ok:
					t.Errorf("unexpected dataset %s", d.Path)
				case d.Dtype != w[0] || d.Sha256 != w[1]:
					t.Errorf("%s: h5py reads %s %s, want %s %s", d.Path, d.Dtype, d.Sha256, w[0], w[1])
				case d.Chunks != nil:
					t.Errorf("%s: chunked %v, want contiguous", d.Path, d.Chunks)
				}
			}
			for p := range want {
				if !seen[p] {
					t.Errorf("dataset %s missing", p)
				}
			}
			// As h5tool.py describes them.
			var wantAttrs map[string]map[string]h5attrDesc
			err := json.Unmarshal([]byte(`{
				"/": {"a": {"kind": "int", "dtype": "<i8", "shape": [], "value": [1]},
				      "l": {"kind": "float", "dtype": "<f8", "shape": [2], "value": [1.0, 2.5]},
				      "t": {"kind": "str", "dtype": null, "shape": [2], "value": ["x", "yz"]}},
				"/c/f_order": {"m": {"kind": "bool", "dtype": "|b1", "shape": [2, 2], "value": [true, false, false, true]},
				               "s": {"kind": "str", "dtype": null, "shape": null, "value": ["ü"]}},
				"/new/grp": {"z": {"kind": "complex", "dtype": "<c16", "shape": [], "value": [[1.0, -2.0]]}}}`), &wantAttrs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Attrs, wantAttrs) {
				t.Errorf("attributes as h5py reads them:\n got %+v\nwant %+v", got.Attrs, wantAttrs)
			}
		})
	}
}

// TestHDF5Disabled checks a -tags nohdf5 build (go test -tags nohdf5).
func TestHDF5Disabled(t *testing.T) {
	if hdf5Available {
		t.Skip("built with HDF5 support")
	}
	dir := t.TempDir()
	err := File(context.Background(), filepath.Join(dir, "x.h5"), filepath.Join(dir, "x.mmpkl"), "", "", Options{})
	if !errors.Is(err, ErrNoHDF5) {
		t.Errorf("HDF5 -> mmpkl: %v, want ErrNoHDF5", err)
	}
	err = File(context.Background(), filepath.Join(corpus, "portable", "dtypes.mmpkl"), filepath.Join(dir, "x.h5"), "", "", Options{})
	if !errors.Is(err, ErrNoHDF5) {
		t.Errorf("mmpkl -> HDF5: %v, want ErrNoHDF5", err)
	}
	noTemp(t, dir)
}

// TestHDF5CorruptChunk: a deflated chunk whose bytes are damaged is an
// error naming the dataset and the chunk (decoded in Go, zlib's checksum
// catches it), never wrong data; a chunk whose stored size is too big for
// its dataset is refused before it is read.
func TestHDF5CorruptChunk(t *testing.T) {
	needH5py(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "c.h5")
	out := pyrun.Numpy1(t).Run(t, `import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    d = f.create_dataset("x", data=np.arange(4000, dtype="f8"), chunks=(500,), compression="gzip", shuffle=True)
    info = d.id.get_chunk_info(3)
    print(info.byte_offset, info.size)`, src)
	var off, size int64
	if _, err := fmt.Sscan(string(out), &off, &size); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	b, _ := os.ReadFile(src)
	b[off+size/2] ^= 0x55
	os.WriteFile(src, b, 0o644)
	err := File(context.Background(), src, filepath.Join(dir, "c.mmpkl"), "", "", Options{})
	if err == nil || !strings.Contains(err.Error(), `dataset "/x": chunk at [1500]`) {
		t.Errorf("got %v, want an error naming dataset /x and its chunk at [1500]", err)
	}
	noTemp(t, dir)
}
