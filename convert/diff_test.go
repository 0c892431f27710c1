package convert

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/pyval"
)

// dkey is one key of a file made for the diff tests.
type dkey struct {
	name  string
	arr   *darr // an array, or the data of a masked array with mask
	mask  []byte
	fill  []byte
	value any
}

// darr is an array to write: dtype, shape, order and the bytes in that
// order.
type darr struct {
	dt      string
	shape   []int
	fortran bool
	data    []byte
}

func writeDiffFile(t testing.TB, path string, keys []dkey) string {
	t.Helper()
	f, err := bridge.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		switch {
		case k.arr != nil:
			dt, err := bridge.ParseDType(k.arr.dt)
			if err != nil {
				t.Fatal(err)
			}
			h := bridge.ArrayHeader{DType: dt, Shape: k.arr.shape, Fortran: k.arr.fortran}
			if k.mask != nil {
				err = f.PutMasked(k.name, h, bytes.NewReader(k.arr.data), bytes.NewReader(k.mask), k.fill)
			} else {
				err = f.PutArray(k.name, h, bytes.NewReader(k.arr.data))
			}
			if err != nil {
				t.Fatalf("%s: %v", k.name, err)
			}
		default:
			if err := f.Put(k.name, k.value); err != nil {
				t.Fatalf("%s: %v", k.name, err)
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// f32s is n float32 values i*0.5 in byte order bo.
func f32s(n int, bo binary.ByteOrder) []byte {
	b := make([]byte, 4*n)
	for i := range n {
		bo.PutUint32(b[4*i:], math.Float32bits(float32(i)*0.5))
	}
	return b
}

// cToF returns C-order data of shape as Fortran order.
func cToF(data []byte, shape []int, size int) []byte {
	var buf bytes.Buffer
	n := len(data) / size
	out := make([]byte, len(data))
	for i := range n {
		idx := unravel(int64(i), shape, false)
		// Fortran linear index of idx.
		f, m := 0, 1
		for ax := range shape {
			f += idx[ax] * m
			m *= shape[ax]
		}
		copy(out[f*size:(f+1)*size], data[i*size:(i+1)*size])
	}
	buf.Write(out)
	return buf.Bytes()
}

// diffBase is the file every planted difference is made from.
func diffBase() []dkey {
	big := make([]byte, 2*3<<20) // int16, 3 Mi elements: several blocks
	for i := 0; i < len(big); i += 2 {
		binary.LittleEndian.PutUint16(big[i:], uint16(i*7))
	}
	fort := f32s(12, binary.LittleEndian)
	return []dkey{
		{name: "cube", arr: &darr{"<f4", []int{4, 5, 6}, false, f32s(120, binary.LittleEndian)}},
		{name: "fort", arr: &darr{"<f4", []int{3, 4}, true, cToF(fort, []int{3, 4}, 4)}},
		{name: "big", arr: &darr{"<i2", []int{3 << 20}, false, big}},
		{name: "m", arr: &darr{"<f4", []int{2, 3}, false, f32s(6, binary.LittleEndian)}, mask: []byte{0, 1, 0, 0, 0, 1}, fill: f32s(3, binary.LittleEndian)[8:]},
		{name: "meta", value: pyval.Dict{{Key: "gain", Value: 1.5}, {Key: "name", Value: "vnir"}, {Key: "bands", Value: []any{int64(1), int64(2)}}}},
		{name: "__attrs__", value: pyval.Dict{{Key: "/cube", Value: pyval.Dict{{Key: "units", Value: "m"}}}}},
	}
}

// edit returns a copy of keys with the key name changed by fn (nil fn:
// removed).
func edit(keys []dkey, name string, fn func(k *dkey)) []dkey {
	var out []dkey
	for _, k := range keys {
		if k.name == name {
			if fn == nil {
				continue
			}
			if k.arr != nil {
				a := *k.arr
				a.data = bytes.Clone(a.data)
				k.arr = &a
			}
			k.mask = bytes.Clone(k.mask)
			fn(&k)
		}
		out = append(out, k)
	}
	return out
}

func setF32(b []byte, i int, v float32) { binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v)) }

func TestDiffPlanted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := diffBase()
	a := writeDiffFile(t, filepath.Join(dir, "a.mmpkl"), base)
	cases := []struct {
		name string
		keys []dkey
		opt  DiffOptions
		want []Difference // compared on Key, Kind, Count, Index, Path
	}{
		{name: "same", keys: base},
		{name: "one element", keys: edit(base, "cube", func(k *dkey) { setF32(k.arr.data, 3*30+1*6+2, 0.2500001) }),
			want: []Difference{{Key: "cube", Kind: ValuesDiffer, Count: 1, Total: 120, Index: []int{3, 1, 2}}}},
		{name: "late block", keys: edit(base, "big", func(k *dkey) { k.arr.data[2*(3<<20)-2] ^= 1; k.arr.data[2*(2<<20)+10] ^= 1 }),
			want: []Difference{{Key: "big", Kind: ValuesDiffer, Count: 2, Total: 3 << 20, Index: []int{2<<20 + 5}}}},
		{name: "fortran as C", keys: edit(base, "fort", func(k *dkey) { k.arr.fortran = false; k.arr.data = f32s(12, binary.LittleEndian) })},
		{name: "fortran as C, one element", keys: edit(base, "fort", func(k *dkey) {
			k.arr.fortran = false
			k.arr.data = f32s(12, binary.LittleEndian)
			setF32(k.arr.data, 2*4+1, -1)
		}), want: []Difference{{Key: "fort", Kind: ValuesDiffer, Count: 1, Total: 12, Index: []int{2, 1}}}},
		{name: "big-endian", keys: edit(base, "cube", func(k *dkey) { k.arr.dt = ">f4"; k.arr.data = f32s(120, binary.BigEndian) })},
		{name: "big-endian strict", opt: DiffOptions{StrictDType: true}, keys: edit(base, "cube", func(k *dkey) { k.arr.dt = ">f4"; k.arr.data = f32s(120, binary.BigEndian) }),
			want: []Difference{{Key: "cube", Kind: DTypeDiffers}}},
		{name: "big-endian one element", keys: edit(base, "cube", func(k *dkey) {
			k.arr.dt = ">f4"
			k.arr.data = f32s(120, binary.BigEndian)
			binary.BigEndian.PutUint32(k.arr.data[4*7:], math.Float32bits(99))
		}), want: []Difference{{Key: "cube", Kind: ValuesDiffer, Count: 1, Total: 120, Index: []int{0, 1, 1}}}},
		{name: "within rtol", opt: DiffOptions{RTol: 1e-6}, keys: edit(base, "cube", func(k *dkey) { setF32(k.arr.data, 5, 2.5000002) })},
		{name: "outside atol", opt: DiffOptions{ATol: 1e-9}, keys: edit(base, "cube", func(k *dkey) { setF32(k.arr.data, 5, 2.5000002) }),
			want: []Difference{{Key: "cube", Kind: ValuesDiffer, Count: 1, Total: 120, Index: []int{0, 0, 5}}}},
		{name: "mask bit", keys: edit(base, "m", func(k *dkey) { k.mask[2] = 1 }),
			want: []Difference{{Key: "m", Kind: MaskDiffers, Count: 1, Total: 6, Index: []int{0, 2}}}},
		{name: "fill", keys: edit(base, "m", func(k *dkey) { k.fill = f32s(4, binary.LittleEndian)[12:] }),
			want: []Difference{{Key: "m", Kind: FillDiffers}}},
		{name: "masked data", keys: edit(base, "m", func(k *dkey) { setF32(k.arr.data, 4, 7) }),
			want: []Difference{{Key: "m", Kind: ValuesDiffer, Count: 1, Total: 6, Index: []int{1, 1}}}},
		{name: "dtype", keys: edit(base, "cube", func(k *dkey) { k.arr.dt = "<i4" }),
			want: []Difference{{Key: "cube", Kind: DTypeDiffers}}},
		{name: "shape", keys: edit(base, "cube", func(k *dkey) { k.arr.shape = []int{5, 4, 6} }),
			want: []Difference{{Key: "cube", Kind: ShapeDiffers}}},
		{name: "missing key", keys: edit(base, "meta", nil),
			want: []Difference{{Key: "meta", Kind: OnlyInA}}},
		{name: "extra key", keys: append(slices.Clone(base), dkey{name: "extra", value: int64(1)}),
			want: []Difference{{Key: "extra", Kind: OnlyInB}}},
		{name: "kind", keys: edit(base, "m", func(k *dkey) { k.mask = nil }),
			want: []Difference{{Key: "m", Kind: KindDiffers}}},
		{name: "attribute", keys: edit(base, "__attrs__", func(k *dkey) {
			k.value = pyval.Dict{{Key: "/cube", Value: pyval.Dict{{Key: "units", Value: "km"}}}}
		}), want: []Difference{{Key: "__attrs__", Kind: ValueDiffers, Path: []any{"/cube", "units"}}}},
		{name: "attribute type", keys: edit(base, "__attrs__", func(k *dkey) {
			k.value = pyval.Dict{{Key: "/cube", Value: pyval.Dict{{Key: "units", Value: []byte("m")}}}}
		}), want: []Difference{{Key: "__attrs__", Kind: ValueDiffers, Path: []any{"/cube", "units"}}}},
		{name: "value", keys: edit(base, "meta", func(k *dkey) {
			k.value = pyval.Dict{{Key: "gain", Value: 2.0}, {Key: "name", Value: "vnir"}, {Key: "bands", Value: []any{int64(1), int64(2), int64(3)}}}
		}), want: []Difference{{Key: "meta", Kind: ValueDiffers, Path: []any{"gain"}}, {Key: "meta", Kind: ValueDiffers, Path: []any{"bands"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := writeDiffFile(t, filepath.Join(dir, c.name+".mmpkl"), c.keys)
			var got []Difference
			opt := c.opt
			opt.Report = func(d Difference) { got = append(got, d) }
			n, err := Diff(context.Background(), a, b, "", "", opt)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(got) {
				t.Errorf("Diff returned %d, reported %d", n, len(got))
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d differences %+v, want %+v", len(got), got, c.want)
			}
			for i, w := range c.want {
				g := got[i]
				if g.Key != w.Key || g.Kind != w.Kind || g.Count != w.Count || g.Total != w.Total && w.Total != 0 ||
					!slices.Equal(g.Index, w.Index) || fmt.Sprint(g.Path) != fmt.Sprint(w.Path) {
					t.Errorf("difference %d: got %+v, want %+v", i, g, w)
				}
			}
			// Symmetric: B against A finds as many.
			m, err := Diff(context.Background(), b, a, "", "", c.opt)
			if err != nil || m != n {
				t.Errorf("B against A: %d differences (%v), A against B: %d", m, err, n)
			}
		})
	}
}

func TestDiffElements(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := diffBase()
	a := writeDiffFile(t, filepath.Join(dir, "a.mmpkl"), base)
	b := writeDiffFile(t, filepath.Join(dir, "b.mmpkl"), edit(base, "cube", func(k *dkey) { setF32(k.arr.data, 3*30+1*6+2, 0.2500001) }))
	var got []Difference
	if _, err := Diff(context.Background(), a, b, "", "", DiffOptions{Report: func(d Difference) { got = append(got, d) }}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].AElem.Value() != float64(float32(49)) || got[0].BElem.Value() != float64(float32(0.2500001)) {
		t.Fatalf("got %+v", got)
	}
}

func TestDiffOptionsValidated(t *testing.T) {
	t.Parallel()
	for _, o := range []DiffOptions{{RTol: -1}, {ATol: math.NaN()}} {
		if _, err := Diff(context.Background(), "a.mmpkl", "b.mmpkl", "", "", o); err == nil {
			t.Errorf("%+v accepted", o)
		} else if _, ok := err.(*UsageError); !ok {
			t.Errorf("%+v: %v is not a usage error", o, err)
		}
	}
}

// roundTripKeys are arrays every array format carries.
func roundTripKeys() []dkey {
	c16 := make([]byte, 16*6)
	for i := range 12 {
		binary.LittleEndian.PutUint64(c16[8*i:], math.Float64bits(float64(i)-2.5))
	}
	be := make([]byte, 4*10)
	for i := range 10 {
		binary.BigEndian.PutUint32(be[4*i:], uint32(i*1000-3))
	}
	f8 := make([]byte, 8*12)
	for i := range 12 {
		binary.LittleEndian.PutUint64(f8[8*i:], math.Float64bits(math.Sqrt(float64(i))))
	}
	return []dkey{
		{name: "cube", arr: &darr{"<f4", []int{4, 5, 6}, false, f32s(120, binary.LittleEndian)}},
		{name: "fort", arr: &darr{"<f8", []int{3, 4}, true, cToF(f8, []int{3, 4}, 8)}},
		{name: "be", arr: &darr{">i4", []int{2, 5}, false, be}},
		{name: "flags", arr: &darr{"|b1", []int{5}, false, []byte{1, 0, 0, 1, 1}}},
		{name: "z", arr: &darr{"<c16", []int{6}, false, c16}},
		{name: "names", arr: &darr{"|S5", []int{2}, false, []byte("alphabeta\x00")}},
		{name: "grp/scalar", arr: &darr{"|u1", []int{}, false, []byte{7}}},
		{name: "empty", arr: &darr{"<f8", []int{0, 3}, false, nil}},
		{name: "m", arr: &darr{"<f4", []int{2, 3}, false, f32s(6, binary.LittleEndian)}, mask: []byte{0, 1, 0, 0, 0, 1}, fill: f32s(3, binary.LittleEndian)[8:]},
		{name: "grp/m2", arr: &darr{">i4", []int{2, 5}, false, be}, mask: []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
		{name: "mf", arr: &darr{"<f8", []int{3, 4}, true, cToF(f8, []int{3, 4}, 8)}, mask: cToF([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, []int{3, 4}, 1), fill: f8[8:16]},
	}
}

// TestDiffRoundTrips converts files of every format to every other and
// back, and diffs each step against the original: no difference may appear.
func TestDiffRoundTrips(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	base := writeDiffFile(t, filepath.Join(dir, "base.mmpkl"), roundTripKeys())
	formats := []Format{Mmpkl, Npz}
	if hdf5Available {
		formats = append(formats, HDF5)
	}
	ext := map[Format]string{Mmpkl: ".mmpkl", Npz: ".npz", HDF5: ".h5", Npy: ".npy"}
	// The originals, one per format, each made from base.
	orig := map[Format]string{Mmpkl: base}
	for _, f := range formats[1:] {
		orig[f] = filepath.Join(dir, "orig"+ext[f])
		if err := File(ctx, base, orig[f], "", "", Options{}); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	// And one .npy of one array.
	one := writeDiffFile(t, filepath.Join(dir, "one.mmpkl"), roundTripKeys()[1:2])
	orig[Npy] = filepath.Join(dir, "fort.npy")
	if err := File(ctx, one, orig[Npy], "", "", Options{}); err != nil {
		t.Fatal(err)
	}
	same := func(a, b string) {
		t.Helper()
		var got []Difference
		n, err := Diff(ctx, a, b, "", "", DiffOptions{Report: func(d Difference) { got = append(got, d) }})
		if err != nil || n != 0 {
			t.Errorf("diff %s %s: %d differences %+v, %v", filepath.Base(a), filepath.Base(b), n, got, err)
		}
	}
	for _, from := range append(formats, Npy) {
		for _, to := range append(formats, Npy) {
			if from == to || (to == Npy) != (from == Npy) && to == Npy {
				continue
			}
			src := orig[from]
			mid := filepath.Join(dir, fmt.Sprintf("%s-to%s", from, ext[to]))
			back := filepath.Join(dir, fmt.Sprintf("%s-to-%s-back%s", from, to, ext[from]))
			// Progress ends at its total, whatever the route.
			var mu sync.Mutex
			var done, total int64
			opt := Options{Progress: func(d, t int64) { mu.Lock(); done, total = max(done, d), t; mu.Unlock() }}
			if err := File(ctx, src, mid, "", "", opt); err != nil {
				t.Errorf("%s -> %s: %v", from, to, err)
				continue
			}
			if done != total || total == 0 {
				t.Errorf("%s -> %s: progress ended at %d of %d", from, to, done, total)
			}
			done, total = 0, 0
			if err := File(ctx, mid, back, "", "", opt); err != nil {
				t.Errorf("%s -> %s -> %s: %v", from, to, from, err)
				continue
			}
			if done != total || total == 0 {
				t.Errorf("%s -> %s -> %s: progress ended at %d of %d", from, to, from, done, total)
			}
			same(src, mid)
			same(src, back)
			same(mid, back)
		}
	}
}

// BenchmarkDiff compares two 64 MiB mmappickle files of one array each
// (equal: every byte is compared). bash scripts/bench.sh speed (ROWS=diff)
// measures the 1 GiB pair against cmp, with peak RSS.
func BenchmarkDiff(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	keys := []dkey{{name: "x", arr: &darr{"<f8", []int{len(data) / 8}, false, data}}}
	a := writeDiffFile(b, filepath.Join(dir, "a.mmpkl"), keys)
	c := writeDiffFile(b, filepath.Join(dir, "b.mmpkl"), keys)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if n, err := Diff(context.Background(), a, c, "", "", DiffOptions{}); err != nil || n != 0 {
			b.Fatal(n, err)
		}
	}
}

// TestDiffLargeDicts: two dicts of 100,000 keys (and sets of 100,000
// elements; 30,000 with -short) are matched key by key in linear time: a
// quadratic match took hours. The differences are exactly the changed
// value, the missing key and the changed set.
func TestDiffLargeDicts(t *testing.T) {
	t.Parallel()
	n := 100_000
	if testing.Short() {
		n = 30_000
	}
	mk := func(change bool) pyval.Dict {
		d := make(pyval.Dict, 0, n+1)
		for i := range n {
			if change && i == 7 {
				continue // missing in b
			}
			v := int64(i)
			if change && i == n-1 {
				v = -1
			}
			d = append(d, pyval.DictItem{Key: fmt.Sprintf("key-%d", i), Value: v})
		}
		d = append(d, pyval.DictItem{Key: pyval.Tuple{int64(1), "t"}, Value: "tuple key"},
			pyval.DictItem{Key: true, Value: "bool key"}, pyval.DictItem{Key: false, Value: "other bool key"},
			pyval.DictItem{Key: nil, Value: "None key"}, pyval.DictItem{Key: int64(-3), Value: "int key"})
		return d
	}
	set := func(last int64) pyval.Set {
		s := make(pyval.Set, n)
		for i := range n - 1 {
			s[i] = int64(n - i) // another order than b's
		}
		s[n-1] = last
		return s
	}
	dir := t.TempDir()
	a := writeDiffFile(t, filepath.Join(dir, "a.mmpkl"), []dkey{{name: "d", value: mk(false)}, {name: "s", value: set(0)}})
	bset := set(0)
	slices.Reverse(bset)
	b := writeDiffFile(t, filepath.Join(dir, "b.mmpkl"), []dkey{{name: "d", value: mk(true)}, {name: "s", value: bset}})
	var got []Difference
	n1, err := Diff(context.Background(), a, b, "", "", DiffOptions{Report: func(d Difference) { got = append(got, d) }})
	if err != nil || n1 != 2 {
		t.Fatalf("diff: %d differences %+v, %v; want 2", n1, got, err)
	}
	paths := []string{fmt.Sprint(got[0].Path), fmt.Sprint(got[1].Path)}
	if paths[0] != "[key-7]" || got[0].B != Missing || paths[1] != fmt.Sprintf("[key-%d]", n-1) || got[1].B != int64(-1) {
		t.Errorf("differences %+v", got)
	}
	c := writeDiffFile(t, filepath.Join(dir, "c.mmpkl"), []dkey{{name: "d", value: mk(false)}, {name: "s", value: set(-5)}})
	if n2, err := Diff(context.Background(), a, c, "", "", DiffOptions{}); err != nil || n2 != 1 {
		t.Errorf("sets differing in one element: %d differences, %v; want 1", n2, err)
	}
}
