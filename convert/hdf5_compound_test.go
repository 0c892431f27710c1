//go:build !nohdf5

package convert

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
)

// TestHDF5Compound: compound datasets h5py writes (nested, array members,
// big-endian members, offsets with padding) convert to mmpkl as structured
// arrays that plain pickle.load gives as h5py reads them, back to HDF5
// with the same dtype for h5py, and to .npz and back: diff finds nothing at
// any step.
func TestHDF5Compound(t *testing.T) {
	needH5py(t)
	t.Parallel()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	pyrun.Numpy2(t).Run(t, `import sys, numpy as np, h5py
d = sys.argv[1]
dts = {
    "table": np.dtype([("id", "<i8"), ("x", "<f8"), ("ok", "?"), ("name", "S6")]),
    "nested": np.dtype([("p", [("a", "u1"), ("b", ">i2")], (2,)), ("m", "<f4", (2, 3)), ("z", "<c8")]),
    "padded": np.dtype({"names": ["a", "b"], "formats": ["u1", "<i4"], "offsets": [0, 8], "itemsize": 16}),
}
rng = np.random.default_rng(1)
with h5py.File(f"{d}/c.h5", "w") as f:
    for k, dt in dts.items():
        a = np.zeros((4, 3), dt)
        for n in dt.names:
            sub = a[n]
            if sub.dtype.names:
                for m in sub.dtype.names:
                    sub[m] = rng.integers(0, 100, sub[m].shape)
            elif sub.dtype.kind in "iufc":
                sub[...] = rng.integers(0, 100, sub.shape)
            elif sub.dtype.kind == "S":
                sub[...] = b"abc"
            a[n] = sub
        f.create_dataset(k, data=a)
    f.create_dataset("chunked", data=np.zeros(100, dts["table"]), chunks=(10,), compression="gzip")
`, dir)
	ctx := context.Background()
	same := func(a, b string) {
		t.Helper()
		var got []Difference
		n, err := Diff(ctx, a, b, "", "", DiffOptions{Report: func(d Difference) { got = append(got, d) }})
		if err != nil || n != 0 {
			t.Errorf("diff %s %s: %d %+v %v", filepath.Base(a), filepath.Base(b), n, got, err)
		}
	}
	steps := [][2]string{{"c.h5", "c.mmpkl"}, {"c.mmpkl", "back.h5"}, {"c.h5", "c.npz"}, {"c.npz", "npz-back.h5"}}
	for _, s := range steps {
		if err := File(ctx, p(s[0]), p(s[1]), "", "", Options{}); err != nil {
			t.Fatalf("%s -> %s: %v", s[0], s[1], err)
		}
		same(p(s[0]), p(s[1]))
	}
	same(p("c.h5"), p("back.h5"))
	check := `import sys, pickle, numpy as np, h5py
d = sys.argv[1]
with h5py.File(f"{d}/c.h5") as f, h5py.File(f"{d}/back.h5") as b, open(f"{d}/c.mmpkl", "rb") as m:
    p = pickle.load(m)
    for k in f:
        want = f[k][()]
        assert p[k].dtype == want.dtype, (k, p[k].dtype, want.dtype)
        assert np.array_equal(p[k], want), k
        got = b[k][()]
        assert got.dtype == want.dtype and np.array_equal(got, want), (k, got.dtype, want.dtype)
print("ok")
`
	for _, env := range pyrun.Numpys(t) {
		if out := env.Run(t, check, dir); strings.TrimSpace(out) != "ok" {
			t.Errorf("%s: %s", env, out)
		}
	}
}
