//go:build !nohdf5

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
)

// TestFlagsIssue12: the flags issue 12 added, each run through the command
// line and its effect checked: convert --layout and --vlen-as-list, diff
// --format-a/--format-b, --strict-dtype and --layout, vacuum --quiet.
func TestFlagsIssue12(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	py := pyrun.Numpy2(t)
	py.Run(t, `import sys, numpy as np, h5py
d = sys.argv[1]
with h5py.File(f"{d}/c.h5", "w") as f:
    f.create_dataset("x", data=np.arange(100.0), chunks=(10,), compression="gzip")
    f["s"] = ["a", "bb"]
np.save(f"{d}/le.npy", np.arange(4, dtype="<i4"))
np.save(f"{d}/be.npy", np.arange(4, dtype=">i4"))
`, dir)
	run := func(want int, args ...string) (string, string) {
		t.Helper()
		code, out, errs := mmpconv(t, args...)
		if code != want {
			t.Fatalf("%q: exit %d, want %d\n%s%s", args, code, want, out, errs)
		}
		return out, errs
	}
	// convert --layout: keep (default) restores the chunks, contiguous does not.
	run(0, "convert", "--quiet", p("c.h5"), p("c.mmpkl"))
	run(0, "convert", "--quiet", p("c.mmpkl"), p("keep.h5"))
	run(0, "convert", "--quiet", "--layout", "contiguous", p("c.mmpkl"), p("flat.h5"))
	out := py.Run(t, `import sys, h5py
for n in sys.argv[1:]:
    with h5py.File(n) as f:
        print(f["x"].chunks)
`, p("keep.h5"), p("flat.h5"))
	if out != "(10,)\nNone\n" {
		t.Errorf("chunks after --layout keep / contiguous: %q", out)
	}
	run(2, "convert", "--layout", "tiled", p("c.mmpkl"), p("bad.h5"))
	// diff --layout: the two HDF5 files hold the same data, stored apart.
	run(0, "diff", "--quiet", p("keep.h5"), p("flat.h5"))
	if out, _ := run(1, "diff", "--quiet", "--layout", p("keep.h5"), p("flat.h5")); !strings.Contains(out, "__attrs__") {
		t.Errorf("diff --layout: %s", out)
	}
	// convert --vlen-as-list: the strings as a list of str, not '<U2'.
	if out, _ := run(0, "get", p("c.mmpkl"), "s"); !strings.Contains(out, "<U2") {
		t.Errorf("vlen strings by default: %s", out)
	}
	run(0, "convert", "--quiet", "--vlen-as-list", p("c.h5"), p("list.mmpkl"))
	if out, _ := run(0, "get", p("list.mmpkl"), "s"); out != "['a', 'bb']\n" {
		t.Errorf("--vlen-as-list: %q", out)
	}
	// diff --format-a / --format-b: names that say nothing of the format.
	for _, c := range [][2]string{{"le.npy", "le.bin"}, {"be.npy", "be.dat"}} {
		b, _ := os.ReadFile(p(c[0]))
		os.WriteFile(p(c[1]), b, 0o644)
	}
	run(2, "diff", p("le.bin"), p("be.dat"))
	// --strict-dtype: '<i4' and '>i4' of the same values differ only with it.
	run(0, "diff", "--quiet", "--format-a", "npy", "--format-b", "npy", p("le.bin"), p("be.dat"))
	if out, _ := run(1, "diff", "--quiet", "--strict-dtype", "--format-a", "npy", "--format-b", "npy", p("le.bin"), p("be.dat")); !strings.Contains(out, "dtype <i4 vs >i4") {
		t.Errorf("--strict-dtype: %s", out)
	}
	// vacuum --quiet: the file rewritten, nothing on stderr.
	run(0, "rm", p("c.mmpkl"), "s")
	if _, errs := run(0, "vacuum", "--quiet", p("c.mmpkl")); errs != "" {
		t.Errorf("vacuum --quiet wrote %q", errs)
	}
	if out, _ := run(0, "ls", p("c.mmpkl")); strings.Contains(out, "s ") || !strings.Contains(out, "x") {
		t.Errorf("after vacuum: %s", out)
	}
}
