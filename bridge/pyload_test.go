package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"mmpbridge/internal/pyrun"
	"mmpbridge/pyval"
)

// This file writes files with the bridge and loads them with plain
// pickle.load under numpy 1.24 and numpy 2.4.

// pylCase is one value stored in every test file.
type pylCase struct {
	Key     string `json:"key"`
	DType   string `json:"dtype,omitempty"`
	Shape   []int  `json:"shape"`
	Fortran bool   `json:"fortran"` // Data is in Fortran order
	Masked  bool   `json:"masked"`
	Data    []byte `json:"data"`
	Mask    []byte `json:"mask"`
	Fill    []byte `json:"fill"` // nil: numpy's default fill value
	// Value is a generic value (Go) and Literal its Python literal.
	Value   any    `json:"-"`
	Literal string `json:"literal,omitempty"`

	dt DType
}

func (c *pylCase) header() ArrayHeader {
	return ArrayHeader{DType: c.dt, Shape: c.Shape, Fortran: c.Fortran}
}

func pylCases(t testing.TB, generic bool) []*pylCase {
	rng := rand.New(rand.NewPCG(3, 4))
	var cases []*pylCase
	add := func(c *pylCase) {
		c.Key = fmt.Sprintf("%03d %s", len(cases), c.Key)
		if c.Value == nil {
			d, err := ParseDType(c.DType)
			if err != nil {
				t.Fatal(err)
			}
			c.dt = d
			n, _ := shapeSize(c.Shape)
			c.Data = aencElems(d, int(n), rng)
			if c.Masked {
				c.Mask = aencElems(boolDType, int(n), rng)
			}
		}
		cases = append(cases, c)
	}
	for _, dt := range aencDTypes {
		for _, s := range [][]int{{}, {2, 3}} {
			add(&pylCase{Key: fmt.Sprintf("%s %v", dt, s), DType: dt, Shape: s})
		}
	}
	for _, s := range [][]int{{0}, {3, 0}, {5}, {2, 3, 4}, {1, 1, 1, 1, 2}, {70000}} {
		add(&pylCase{Key: fmt.Sprintf("<f8 %v", s), DType: "<f8", Shape: s})
	}
	for _, dt := range []string{"<f8", ">i4", "<U3", "|b1", "<M8[ms]"} {
		add(&pylCase{Key: fmt.Sprintf("F %s", dt), DType: dt, Shape: []int{2, 3, 4}, Fortran: true})
	}
	for _, dt := range []string{"<f8", "<i4", "<U3", "<M8[s]", ">f4", "|b1", "|S2", "<m8"} {
		for _, s := range [][]int{{5}, {2, 3}, {0}, {}} {
			add(&pylCase{Key: fmt.Sprintf("ma %s %v", dt, s), DType: dt, Shape: s, Masked: true})
			c := &pylCase{Key: fmt.Sprintf("ma fill %s %v", dt, s), DType: dt, Shape: s, Masked: true}
			add(c)
			c.Fill = aencElems(c.dt, 1, rng)
		}
	}
	add(&pylCase{Key: "ma F <f8", DType: "<f8", Shape: []int{3, 4}, Fortran: true, Masked: true})
	if generic {
		for _, g := range []struct {
			v   any
			lit string
		}{
			{int64(42), "42"},
			{int64(-1 << 40), "-1099511627776"},
			{float64(2.5), "2.5"},
			{"héllo", "'héllo'"},
			{[]any{int64(1), "a", 2.5}, "[1, 'a', 2.5]"},
			{pyval.Tuple{int64(1), "x"}, "(1, 'x')"},
			{pyval.Dict{{Key: "k", Value: int64(3)}, {Key: "l", Value: []any{pyval.Tuple{}, "z"}}}, "{'k': 3, 'l': [(), 'z']}"},
		} {
			add(&pylCase{Key: "value " + g.lit, Value: g.v, Literal: g.lit})
		}
	}
	return cases
}

// pylGenericWorks reports whether generic values can be written: not with
// the temporary stub of encodeValue (build tag mmpstub), which writes
// nothing.
func pylGenericWorks() bool {
	var buf bytes.Buffer
	_, err := encodeValue(&buf, int64(1), 1)
	return err == nil && buf.Len() > 0
}

// pylFile is one file written for the test.
type pylFile struct {
	Profile string     `json:"profile"`
	Align   int        `json:"align"`
	Cases   []*pylCase `json:"cases"`
	path    string
}

// pylWrite writes the cases into a new file. In the mmappickle profile
// Fortran-ordered arrays are written in C order (it stores C order only).
func pylWrite(t testing.TB, path string, p Profile, align int, cases []*pylCase) {
	f, err := Create(path, WithProfile(p), WithAlign(align))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range cases {
		switch {
		case c.Value != nil:
			err = f.Put(c.Key, c.Value)
		case c.Masked:
			h, data, mask := pylStored(t, p, c)
			err = f.PutMasked(c.Key, h, bytes.NewReader(data), bytes.NewReader(mask), c.Fill)
		default:
			h, data, _ := pylStored(t, p, c)
			err = f.PutArray(c.Key, h, bytes.NewReader(data))
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Key, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// pylStored returns the header and bytes a case is stored with in profile p.
func pylStored(t testing.TB, p Profile, c *pylCase) (ArrayHeader, []byte, []byte) {
	h := c.header()
	if p != Mmappickle || !h.isFortranFlag() {
		return h, c.Data, c.Mask
	}
	ac := &aencCase{Fortran: true, Shape: c.Shape}
	h.Fortran = false
	return h, aencC(t, ac, c.Data, c.dt.ItemSize), aencC(t, ac, c.Mask, 1)
}

// pylView returns the bytes View[T] sees.
func pylView[T Element](a *Array) ([]byte, error) {
	v, err := View[T](a)
	if err != nil || len(v) == 0 {
		return []byte{}, err
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(v[0]))), nil
}

// pylViewBytes calls View with the Go type of a's dtype; ok is false for
// dtypes no Go type views (float128, complex256, strings, void).
func pylViewBytes(a *Array) (b []byte, ok bool, err error) {
	k, n := a.DType.Kind, a.DType.ItemSize
	if k == 'M' || k == 'm' {
		k = 'i'
	}
	switch {
	case k == 'b':
		b, err = pylView[bool](a)
	case k == 'i' && n == 1:
		b, err = pylView[int8](a)
	case k == 'i' && n == 2:
		b, err = pylView[int16](a)
	case k == 'i' && n == 4:
		b, err = pylView[int32](a)
	case k == 'i' && n == 8:
		b, err = pylView[int64](a)
	case k == 'u' && n == 1:
		b, err = pylView[uint8](a)
	case k == 'u' && n == 2, k == 'f' && n == 2:
		b, err = pylView[uint16](a)
	case k == 'u' && n == 4:
		b, err = pylView[uint32](a)
	case k == 'u' && n == 8:
		b, err = pylView[uint64](a)
	case k == 'f' && n == 4:
		b, err = pylView[float32](a)
	case k == 'f' && n == 8:
		b, err = pylView[float64](a)
	case k == 'c' && n == 8:
		b, err = pylView[complex64](a)
	case k == 'c' && n == 16:
		b, err = pylView[complex128](a)
	default:
		return nil, false, nil
	}
	return b, true, err
}

// pylCheckGo reads a file back with the bridge: kinds, bytes, alignment of
// the data, and View on native-endian arrays.
func pylCheckGo(t *testing.T, pf *pylFile) {
	p, _ := ParseProfile(pf.Profile)
	f, err := Open(pf.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	views := 0
	for _, c := range pf.Cases {
		if c.Value != nil {
			continue
		}
		v, err := f.Get(c.Key)
		if err != nil {
			t.Errorf("%s: %v", c.Key, err)
			continue
		}
		_, data, mask := pylStored(t, p, c)
		var a *Array
		switch v := v.(type) {
		case *Array:
			a = v
		case *Masked:
			a = v.Data
			if !c.Masked || !bytes.Equal(v.Mask.Bytes(), mask) {
				t.Errorf("%s: masked array read back wrong", c.Key)
			}
			fa, _ := v.Fill.(*Array)
			switch {
			case p == Portable && c.Fill != nil && (fa == nil || !bytes.Equal(fa.Bytes(), c.Fill)):
				t.Errorf("%s: fill value %v, want %x", c.Key, v.Fill, c.Fill)
			case (p == Mmappickle || c.Fill == nil) && v.Fill != nil:
				t.Errorf("%s: fill value %v, want none", c.Key, v.Fill)
			}
		default:
			t.Errorf("%s: got %T", c.Key, v)
			continue
		}
		if c.Masked != (a != v) || a.DType != c.dt || !slices.Equal(a.Shape, c.Shape) || a.Profile != p {
			t.Errorf("%s: read back as %#v", c.Key, v)
			continue
		}
		if !bytes.Equal(a.Bytes(), data) {
			t.Errorf("%s: data bytes differ", c.Key)
		}
		if pf.Align == 64 && a.Offset%64 != 0 {
			t.Errorf("%s: data at offset %d, not a multiple of 64", c.Key, a.Offset)
		}
		b, ok, err := pylViewBytes(a)
		switch {
		case !ok:
		case !c.dt.NativeEndian():
			if err == nil {
				t.Errorf("%s: View of big-endian data did not fail", c.Key)
			}
		case err != nil:
			if pf.Align == 64 {
				t.Errorf("%s: View: %v", c.Key, err)
			}
		case !bytes.Equal(b, data):
			t.Errorf("%s: View sees other bytes", c.Key)
		default:
			views++
		}
	}
	if pf.Align == 64 && views < 40 {
		t.Errorf("only %d arrays viewed", views)
	}
}

// pylScript loads every file with plain pickle.load and compares it with the
// spec. Portable files load with warnings turned into errors; mmappickle
// files without (numpy 1.x warns that fromstring is deprecated; numpy >= 2.3
// fails on it).
const pylScript = `
import ast, base64, json, pickle, sys, warnings
import numpy as np

def b64(s):
    return base64.b64decode(s) if s else b""

def native(a):
    # astype() cannot be used: a cast to generic datetime64 keeps ">".
    a = np.asarray(a)
    if a.dtype.byteorder == ">":
        a = a.byteswap().view(a.dtype.newbyteorder("<"))
    return a

def same_type(got, want):
    if type(got) is not type(want):
        return False
    if isinstance(want, (list, tuple)):
        return len(got) == len(want) and all(same_type(g, w) for g, w in zip(got, want))
    if isinstance(want, dict):
        return list(got) == list(want) and all(same_type(got[k], want[k]) for k in want)
    return True

def check_array(got, want, writable_too=True):
    if type(got) is not np.ndarray:
        return "type %s, want numpy.ndarray" % type(got).__name__
    if got.shape != want.shape:
        return "shape %s, want %s" % (got.shape, want.shape)
    if native(got).dtype != native(want).dtype:
        return "dtype %s, want %s" % (got.dtype, want.dtype)
    if native(got).tobytes() != native(want).tobytes():
        return "values differ"
    if writable_too and not got.flags.writeable:
        return "not writeable"
    return ""

def check(got, c, profile):
    if c.get("literal"):
        want = ast.literal_eval(c["literal"])
        if got != want or not same_type(got, want):
            return "%r, want %r" % (got, want)
        return ""
    dt = np.dtype(c["dtype"])
    shape = tuple(c["shape"])
    order = "F" if c["fortran"] else "C"
    want = np.frombuffer(b64(c["data"]), dtype=dt).reshape(shape, order=order)
    if not c["masked"]:
        e = check_array(got, want)
        if not e and profile == "portable" and got.flags.f_contiguous != want.flags.f_contiguous:
            e = "f_contiguous %s, want %s" % (got.flags.f_contiguous, want.flags.f_contiguous)
        return e
    if type(got) is not np.ma.MaskedArray:
        return "type %s, want numpy.ma.MaskedArray" % type(got).__name__
    wmask = np.frombuffer(b64(c["mask"]), dtype=np.bool_).reshape(shape, order=order)
    e = check_array(got.data, want) or check_array(np.ma.getmaskarray(got), wmask, False)
    if e:
        return e
    if not got.flags.writeable:
        return "not writeable"
    if c.get("fill") and profile == "portable":
        wf = np.frombuffer(b64(c["fill"]), dtype=dt).reshape(())
        gf = got._fill_value
        if gf is None or native(gf).dtype != native(wf).dtype:
            return "fill value %r, want %r" % (gf, wf)
        if wf.dtype.kind in "fc":
            ok = bool(native(gf) == native(wf))  # long double padding is undefined
        else:
            ok = native(gf).tobytes() == native(wf).tobytes()
        if not ok:
            return "fill value %r, want %r" % (gf, wf)
    return ""

spec = json.load(open(sys.argv[1]))
results = []
for f, path in zip(spec, sys.argv[2:]):
    r = {"load_error": "", "warnings": [], "errors": [], "checked": 0}
    with warnings.catch_warnings(record=True) as w:
        if f["profile"] == "portable":
            warnings.simplefilter("error")
        else:
            warnings.simplefilter("always")
        try:
            with open(path, "rb") as fh:
                d = pickle.load(fh)
        except Exception as e:
            r["load_error"] = "%s: %s" % (type(e).__name__, e)
            d = None
    r["warnings"] = sorted(set("%s: %s" % (x.category.__name__, x.message) for x in w))
    if d is not None:
        if type(d) is not dict or list(d) != [c["key"] for c in f["cases"]]:
            r["errors"].append("keys %r" % (list(d)[:5],))
        else:
            for c in f["cases"]:
                e = check(d[c["key"]], c, f["profile"])
                r["checked"] += 1
                if e:
                    r["errors"].append("%s: %s" % (c["key"], e))
    results.append(r)
print(json.dumps(results))
`

type pylResult struct {
	LoadError string   `json:"load_error"`
	Warnings  []string `json:"warnings"`
	Errors    []string `json:"errors"`
	Checked   int      `json:"checked"`
}

func TestPyLoad(t *testing.T) {
	generic := pylGenericWorks()
	if !generic {
		t.Log("encodeValue is the mmpstub stub: generic values left out")
	}
	cases := pylCases(t, generic)
	dir := t.TempDir()
	var files []*pylFile
	for _, p := range []Profile{Portable, Mmappickle} {
		for _, align := range []int{64, 1} {
			pf := &pylFile{Profile: p.String(), Align: align, Cases: cases,
				path: filepath.Join(dir, fmt.Sprintf("%s-align%d.mmpkl", p, align))}
			pylWrite(t, pf.path, p, align, cases)
			files = append(files, pf)
		}
	}
	for _, pf := range files {
		t.Run(fmt.Sprintf("go/%s-align%d", pf.Profile, pf.Align), func(t *testing.T) { pylCheckGo(t, pf) })
	}
	spec := filepath.Join(dir, "spec.json")
	b, err := json.Marshal(files)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, b, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{spec}
	for _, pf := range files {
		args = append(args, pf.path)
	}
	for _, env := range []struct {
		name string
		get  func(testing.TB) *pyrun.Env
	}{{"numpy1", pyrun.Numpy1}, {"numpy2", pyrun.Numpy2}} {
		t.Run(env.name, func(t *testing.T) {
			e := env.get(t)
			out := e.Run(t, pylScript, args...)
			var results []pylResult
			if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != len(files) {
				t.Fatalf("bad output (%v): %.500s", err, out)
			}
			for i, pf := range files {
				r := results[i]
				what := fmt.Sprintf("%s, %s profile, align %d", e, pf.Profile, pf.Align)
				for j, msg := range r.Errors {
					if j == 20 {
						t.Errorf("%s: %d errors in all", what, len(r.Errors))
						break
					}
					t.Errorf("%s: %s", what, msg)
				}
				fromstringRemoved := env.name == "numpy2" && pf.Profile == "mmappickle"
				switch {
				case fromstringRemoved:
					// Documented: numpy >= 2.3 removed fromstring's binary mode.
					if !strings.Contains(r.LoadError, "fromstring") {
						t.Errorf("%s: load error %q, want the fromstring failure", what, r.LoadError)
					}
				case r.LoadError != "":
					t.Errorf("%s: pickle.load: %s", what, r.LoadError)
				case r.Checked != len(pf.Cases):
					t.Errorf("%s: %d of %d values checked", what, r.Checked, len(pf.Cases))
				}
				if pf.Profile == "mmappickle" && env.name == "numpy1" {
					// numpy 1.x loads it with a DeprecationWarning for fromstring.
					if !slices.ContainsFunc(r.Warnings, func(w string) bool {
						return strings.HasPrefix(w, "DeprecationWarning") && strings.Contains(w, "fromstring")
					}) {
						t.Errorf("%s: warnings %q, want fromstring's DeprecationWarning", what, r.Warnings)
					}
				} else if !fromstringRemoved && len(r.Warnings) > 0 {
					t.Errorf("%s: warnings %q", what, r.Warnings)
				}
			}
		})
	}
}
