package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
)

// makeDiffInputs writes, with numpy and h5py, the same arrays as a.npz
// (np.savez), a_c.npz (np.savez_compressed), a.h5 (chunked, gzip) and a.npy
// (one array), and b.npz with planted differences.
func makeDiffInputs(t *testing.T, dir string) {
	pyrun.Numpy2(t).Run(t, `import sys, os, numpy as np, h5py
d = sys.argv[1]
rng = np.random.default_rng(5)
cube = rng.standard_normal((40, 50, 60)).astype(np.float32)
fort = np.asfortranarray(np.arange(12.).reshape(3, 4))
be = np.arange(10, dtype='>i4')
arrs = dict(cube=cube, fort=fort, be=be, flags=np.array([True, False, True]))
np.savez(os.path.join(d, 'a.npz'), **arrs)
np.savez_compressed(os.path.join(d, 'a_c.npz'), **arrs)
np.save(os.path.join(d, 'a.npy'), cube)
with h5py.File(os.path.join(d, 'a.h5'), 'w') as f:
    f.create_dataset('cube', data=cube, chunks=(8, 10, 12), compression='gzip', shuffle=True)
    f.create_dataset('fort', data=fort)
    f.create_dataset('be', data=be)
    f.create_dataset('flags', data=arrs['flags'])
b = dict(arrs)
b['cube'] = cube.copy(); b['cube'][3, 17, 2] = np.float32(0.25)
b['fort'] = fort.astype(np.float32)
del b['flags']
b['extra'] = np.zeros(3)
np.savez(os.path.join(d, 'b.npz'), **b)
many = {f'k{i:03d}': np.full(2, i) for i in range(30)}
np.savez(os.path.join(d, 'many_a.npz'), **many)
np.savez(os.path.join(d, 'many_b.npz'), **{k: v + 1 for k, v in many.items()})
`, dir)
}

func TestDiffCLI(t *testing.T) {
	dir := t.TempDir()
	makeDiffInputs(t, dir)
	p := func(n string) string { return filepath.Join(dir, n) }

	// The same arrays in every format: no difference.
	pairs := [][2]string{{"a.npz", "a_c.npz"}}
	src := "a_c.npz"
	if _, _, errs := mmpconv(t, "convert", p("a.h5"), p("probe.mmpkl")); !strings.Contains(errs, "without HDF5") {
		pairs = append(pairs, [2]string{"a.npz", "a.h5"}, [2]string{"a_c.npz", "a.h5"})
		src = "a.h5"
	}
	for _, pair := range pairs {
		code, out, errs := mmpconv(t, "diff", p(pair[0]), p(pair[1]))
		if code != 0 || out != "" || errs != "" {
			t.Errorf("diff %s %s: exit %d, stdout %q, stderr %q", pair[0], pair[1], code, out, errs)
		}
	}
	// A converted file against its source.
	if code, _, errs := mmpconv(t, "convert", p(src), p("a.mmpkl")); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := mmpconv(t, "diff", p("a.mmpkl"), p("a_c.npz")); code != 0 {
		t.Errorf("diff a.mmpkl a_c.npz: exit %d: %s%s", code, out, errs)
	}
	// An .npy against the same array under a key.
	if code, _, errs := mmpconv(t, "convert", p("a.npy"), p("one.mmpkl"), "--key", "cube"); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := mmpconv(t, "diff", p("a.npy"), p("one.mmpkl")); code != 0 {
		t.Errorf("diff a.npy one.mmpkl: exit %d: %s%s", code, out, errs)
	}

	// Planted differences, each on its own line.
	code, out, errs := mmpconv(t, "diff", p("a.npz"), p("b.npz"))
	want := []string{
		`key "cube": values differ at 1 of 120,000 elements, first at (3, 17, 2): `,
		`key "fort": dtype <f8 vs <f4`,
		`key "flags": only in ` + p("a.npz"),
		`key "extra": only in ` + p("b.npz"),
		`4 differences`,
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 1 || errs != "" || len(lines) != len(want) {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want %q...", i, lines[i], w)
		}
	}
	if !strings.HasSuffix(lines[0], " vs 0.25") {
		t.Errorf("line 0: %q, want the two elements", lines[0])
	}

	// JSON.
	code, out, _ = mmpconv(t, "diff", "--json", p("a.npz"), p("b.npz"))
	var j struct {
		Equal       bool
		Count       int
		Differences []struct {
			Key, Kind string
			Index     []int
			B         any
		}
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 1 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if j.Equal || j.Count != 4 || j.Differences[0].Kind != "values" || j.Differences[0].B != 0.25 ||
		len(j.Differences[0].Index) != 3 || j.Differences[1].Kind != "dtype" {
		t.Errorf("JSON: %+v", j)
	}

	// More than --max: the first ones, then the count.
	code, out, _ = mmpconv(t, "diff", p("many_a.npz"), p("many_b.npz"))
	lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 1 || len(lines) != 21 || lines[20] != "... and 10 more (30 differences in all; --max 0 lists every one)" {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if _, out, _ = mmpconv(t, "diff", "--max", "0", p("many_a.npz"), p("many_b.npz")); strings.Count(out, "\n") != 31 {
		t.Errorf("--max 0:\n%s", out)
	}

	// Tolerances.
	if code, out, _ := mmpconv(t, "diff", "--atol", "1", p("many_a.npz"), p("many_b.npz")); code != 0 {
		t.Errorf("--atol 1: exit %d\n%s", code, out)
	}

	// Usage and input errors.
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"diff", p("a.npz")}, 2, "want A and B"},
		{[]string{"diff", "--rtol", "-1", p("a.npz"), p("b.npz")}, 2, "non-negative"},
		{[]string{"diff", p("a.npz"), p("b.txt")}, 2, "cannot tell the format"},
		{[]string{"diff", p("a.npz"), p("missing.npz")}, 1, "missing.npz"},
	} {
		code, out, errs := mmpconv(t, c.args...)
		if code != c.code || out != "" || !strings.Contains(errs, c.msg) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d and %q", c.args, code, out, errs, c.code, c.msg)
		}
	}
}
