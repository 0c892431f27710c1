package convert

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrun"
)

// TestStructuredNpy: structured arrays numpy saves (.npy, .npz stored and
// deflated) convert to mmpkl, load there with plain pickle.load on numpy
// 1.x and 2.x as the same array, convert back to byte-identical .npy
// members, and diff equal at every step.
func TestStructuredNpy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gen := `import sys, os, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(3)
dts = {
    "table": [("id", "<i8"), ("x", "<f8"), ("flag", "?"), ("name", "S8"), ("label", "<U4")],
    "nested": [("p", [("a", "u1"), ("b", ">i2")], (2,)), ("m", "<f4", (2, 3)), ("t", "<M8[ms]")],
    "aligned": np.dtype([("x", "u1"), ("y", "<f8"), ("z", "<i2")], align=True),
    "names": [("température", "<f4"), ("n'x\"", "<i2")],
}
arrs = {}
for k, dt in dts.items():
    dt = np.dtype(dt)
    a = np.zeros((3, 4), dt)
    a.view(np.uint8)[...] = rng.integers(0, 256, a.view(np.uint8).shape, dtype=np.uint8)
    for n in dt.names:  # valid values where numpy cares
        if dt[n].kind == "?" : a[n] = a[n].view(np.uint8) & 1
        if dt[n].kind == "U": a[n] = "ab"
    z = np.zeros(a.shape, dt)  # padding zeroed: numpy does not keep it
    for n in dt.names: z[n] = a[n]
    arrs[k] = z
    np.save(os.path.join(d, k + ".npy"), z)
    np.save(os.path.join(d, k + "_F.npy"), np.asfortranarray(z))
np.savez(os.path.join(d, "all.npz"), **arrs)
np.savez_compressed(os.path.join(d, "all_c.npz"), **arrs)
`
	pyrun.Numpy2(t).Run(t, gen, dir)
	ctx := context.Background()
	p := func(n string) string { return filepath.Join(dir, n) }
	same := func(a, b string) {
		t.Helper()
		var got []Difference
		n, err := Diff(ctx, a, b, "", "", DiffOptions{Report: func(d Difference) { got = append(got, d) }})
		if err != nil || n != 0 {
			t.Errorf("diff %s %s: %d %+v %v", filepath.Base(a), filepath.Base(b), n, got, err)
		}
	}
	for _, k := range []string{"table", "nested", "aligned", "names", "table_F", "nested_F"} {
		src := p(k + ".npy")
		mid := p(k + ".mmpkl")
		back := p(k + "-back.npy")
		if err := File(ctx, src, mid, "", "", Options{}); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if err := File(ctx, mid, back, "", "", Options{}); err != nil {
			t.Fatalf("%s back: %v", k, err)
		}
		same(src, mid)
		same(src, back)
		a, _ := os.ReadFile(src)
		b, _ := os.ReadFile(back)
		if string(a) != string(b) {
			t.Errorf("%s: the .npy written back differs from numpy's (%d vs %d bytes)", k, len(b), len(a))
		}
	}
	for _, z := range []string{"all.npz", "all_c.npz"} {
		mid := p(z + ".mmpkl")
		back := p("back-" + z)
		if err := File(ctx, p(z), mid, "", "", Options{}); err != nil {
			t.Fatalf("%s: %v", z, err)
		}
		if err := File(ctx, mid, back, "", "", Options{}); err != nil {
			t.Fatalf("%s back: %v", z, err)
		}
		same(p(z), mid)
		same(p(z), back)
	}
	// The mmappickle files load with plain pickle.load as numpy's arrays.
	check := `import sys, pickle, numpy as np
d = sys.argv[1]
for k in ["table", "nested", "aligned", "names", "table_F", "nested_F"]:
    want = np.load(f"{d}/{k}.npy")
    with open(f"{d}/{k}.mmpkl", "rb") as f:
        got = pickle.load(f)[k]
    assert got.dtype == want.dtype, (k, got.dtype, want.dtype)
    assert got.shape == want.shape and np.array_equal(got, want), k
    assert got.flags.f_contiguous == want.flags.f_contiguous, k
    back = np.load(f"{d}/{k}-back.npy")
    assert back.dtype == want.dtype and np.array_equal(back, want), k
z = np.load(f"{d}/back-all.npz")
with open(f"{d}/all.npz.mmpkl", "rb") as f:
    m = pickle.load(f)
for k in z.files:
    assert np.array_equal(z[k], m[k]) and z[k].dtype == m[k].dtype, k
print("ok")
`
	for _, env := range pyrun.Numpys(t) {
		if out := env.Run(t, check, dir); strings.TrimSpace(out) != "ok" {
			t.Errorf("%s: %s", env, out)
		}
	}
	// Object fields stay refused, naming the member.
	pyrun.Numpy2(t).Run(t, `import sys, numpy as np; np.save(sys.argv[1], np.zeros(2, [("o", "O"), ("x", "<f8")]), allow_pickle=True)`, p("obj.npy"))
	err := File(ctx, p("obj.npy"), p("obj.mmpkl"), "", "", Options{})
	if err == nil || !strings.Contains(err.Error(), "object fields") {
		t.Errorf("object field: %v", err)
	}
}

func TestNpyDescrOverlap(t *testing.T) {
	t.Parallel()
	f8, _ := bridge.ParseDType("<f8")
	i4, _ := bridge.ParseDType("<i4")
	d, err := bridge.StructDType([]bridge.Field{{Name: "a", DType: f8}, {Name: "b", DType: i4, Offset: 4}}, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	if why := npyDescrProblem(d); !strings.Contains(why, `field "b" overlaps`) {
		t.Errorf("overlap: %q", why)
	}
	ok, _ := bridge.StructDType([]bridge.Field{{Name: "a", DType: f8}, {Name: "b", DType: i4, Offset: 8}}, 16, false)
	if why := npyDescrProblem(ok); why != "" {
		t.Errorf("no overlap: %q", why)
	}
}
