package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrun"
)

// TestGetToNpy: get FILE KEY -o OUT.npy writes the array numpy made, C and
// Fortran order, and refuses what .npy cannot hold.
func TestGetToNpy(t *testing.T) {
	t.Parallel()
	py := pyrun.Numpy1(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "data.mmpkl")
	c := filepath.Join(dir, "c.npy")
	fo := filepath.Join(dir, "f.npy")
	py.Run(t, `import sys, numpy as np
np.save(sys.argv[1], np.arange(12, dtype='>i4').reshape(3, 4))
np.save(sys.argv[2], np.asfortranarray(np.arange(6.).reshape(2, 3)))`, c, fo)
	for _, s := range [][]string{{"put", f, "c", c}, {"put", f, "f", fo}, {"put", f, "meta", "--json", `{"a": 1}`}} {
		if code, _, errs := mmpconv(t, s...); code != 0 {
			t.Fatalf("%q: exit %d: %s", s, code, errs)
		}
	}
	outC, outF := filepath.Join(dir, "outc.npy"), filepath.Join(dir, "outf.npy")
	for _, s := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"get", f, "c", "-o", outC}, 0, ""},
		{[]string{"get", "--quiet", f, "f", "-o", outF}, 0, ""},
		{[]string{"get", f, "c", "-o", outC}, 1, "exists"},
		{[]string{"get", f, "c", "-o", outC, "--force"}, 0, ""},
		{[]string{"get", f, "meta", "-o", filepath.Join(dir, "meta.npy")}, 1, "meta"},
		{[]string{"get", f, "missing", "-o", filepath.Join(dir, "m.npy")}, 1, "missing"},
	} {
		code, _, errs := mmpconv(t, s.args...)
		if code != s.code || !strings.Contains(errs, s.msg) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d mentioning %q", s.args, code, errs, s.code, s.msg)
		}
	}
	out := py.Run(t, `import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.dtype == np.dtype('>i4') and (a == np.arange(12).reshape(3, 4)).all(), a
assert b.flags.f_contiguous and (b == np.arange(6.).reshape(2, 3)).all(), b
print("ok")`, outC, outF)
	if strings.TrimSpace(out) != "ok" {
		t.Fatal(out)
	}
	for _, p := range []string{filepath.Join(dir, "meta.npy"), filepath.Join(dir, "m.npy")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s written by a refused get", p)
		}
	}
}

// TestRmAllOrNothing: rm K1 K2 with K2 missing deletes nothing.
func TestRmAllOrNothing(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "x.mmpkl")
	for _, k := range []string{"a", "b", "c"} {
		if code, _, errs := mmpconv(t, "put", f, k, "--json", "1"); code != 0 {
			t.Fatal(errs)
		}
	}
	before, _ := os.ReadFile(f)
	code, _, errs := mmpconv(t, "rm", f, "a", "nope", "b")
	if code != 1 || !strings.Contains(errs, `key "nope"`) || !strings.Contains(errs, "nothing deleted") {
		t.Errorf("rm with a missing key: exit %d, %q", code, errs)
	}
	if after, _ := os.ReadFile(f); string(after) != string(before) {
		t.Error("rm with a missing key changed the file")
	}
	if code, _, errs := mmpconv(t, "rm", f, "a", "b"); code != 0 {
		t.Fatal(errs)
	}
	if _, out, _ := mmpconv(t, "ls", f); !strings.HasPrefix(out, "c ") || strings.Count(out, "\n") != 1 {
		t.Errorf("after rm a b: %q", out)
	}
}

// TestEditThroughSymlink: put, rm, fsck and vacuum on a symlink edit its
// target and keep the link.
func TestEditThroughSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "data", "real.mmpkl")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.mmpkl")
	if err := os.Symlink(filepath.Join("data", "real.mmpkl"), link); err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]string{
		{"put", link, "a", "--json", "1"}, {"put", link, "b", "--json", "[1, 2]"}, {"rm", link, "a"},
		{"fsck", link}, {"vacuum", link}, {"vacuum", "--force", link},
	} {
		if code, _, errs := mmpconv(t, s...); code != 0 {
			t.Fatalf("%q: exit %d: %s", s, code, errs)
		}
		if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("after %q the link is gone or not a link: %v", s, err)
		}
	}
	r, err := bridge.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	keys, _ := r.Keys()
	es, _ := r.Entries()
	deleted := 0
	for _, e := range es {
		if !e.Live && e.Key != "" {
			deleted++
		}
	}
	if len(keys) != 1 || keys[0] != "b" || deleted != 0 {
		t.Errorf("target: keys %q, %d deleted entries (vacuumed: none)", keys, deleted)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("directory holds %d entries: %v", len(entries), entries)
	}
}

// TestPutMemoOverflow: in a file whose trailer holds memo index 2^31-1, a
// put that needs memo slots (an array) is refused, leaving the file as it
// was; a value that needs none can still go in. Nothing wraps round.
func TestPutMemoOverflow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "x.mmpkl")
	npy := filepath.Join(dir, "a.npy")
	pyrun.Numpy1(t).Run(t, "import sys, numpy as np; np.save(sys.argv[1], np.arange(5.))", npy)
	if code, _, errs := mmpconv(t, "put", f, "a", "--json", `"x"`); code != 0 {
		t.Fatal(errs)
	}
	b, _ := os.ReadFile(f)
	// The entry's trailer: BININT <memo> POP NEWTRUE POP, before the terminator.
	trailer := len(b) - 11 - 8
	if b[trailer] != 'J' {
		t.Fatalf("no trailer at %d", trailer)
	}
	binary.LittleEndian.PutUint32(b[trailer+1:], 1<<31-1)
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := mmpconv(t, "put", f, "arr", npy)
	if code != 1 || !strings.Contains(errs, "memo indices exhausted") || !strings.Contains(errs, "2147483647") {
		t.Errorf("put of an array: exit %d, %q", code, errs)
	}
	if after, _ := os.ReadFile(f); string(after) != string(b) {
		t.Error("a refused put changed the file")
	}
	if code, _, errs := mmpconv(t, "put", f, "v", "--json", `[1, "two"]`); code != 0 {
		t.Errorf("put of a value needing no memo slot: %s", errs)
	}
	if code, out, errs := mmpconv(t, "ls", f); code != 0 || !strings.Contains(out, "v ") {
		t.Errorf("ls: exit %d, %q %q", code, out, errs)
	}
	if code, _, errs := mmpconv(t, "verify", f); code != 0 {
		t.Errorf("verify: %s", errs)
	}
}

// A file whose only deleted entries are alignment padding has nothing to
// reclaim: vacuum says so and leaves it byte for byte; verify counts the
// padding apart from deleted keys.
func TestVacuumNothingToReclaim(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	npy := filepath.Join(dir, "a.npy")
	writeNpy(t, npy, "<i8", []int{3}, false, i64s(1, 2, 3))
	f := filepath.Join(dir, "f.mmpkl")
	for _, args := range [][]string{
		{"put", f, "meta", "--json", `"x"`},
		{"put", f, "a", npy},
	} {
		if code, _, errs := mmpconv(t, args...); code != 0 {
			t.Fatalf("%q: exit %d, %s", args, code, errs)
		}
	}
	code, out, _ := mmpconv(t, "verify", f)
	if code != 0 || !strings.Contains(out, "(0 deleted, 1 alignment padding, 2 of the index)") {
		t.Fatalf("verify: exit %d, %q", code, out)
	}
	before, _ := os.ReadFile(f)
	code, out, _ = mmpconv(t, "vacuum", f)
	if code != 0 || !strings.Contains(out, "nothing to reclaim") {
		t.Errorf("vacuum: exit %d, %q", code, out)
	}
	if after, _ := os.ReadFile(f); !bytes.Equal(before, after) {
		t.Error("vacuum with nothing to reclaim changed the file")
	}
	if code, _, errs := mmpconv(t, "rm", f, "meta"); code != 0 {
		t.Fatalf("rm: %s", errs)
	}
	if _, out, _ = mmpconv(t, "verify", f); !strings.Contains(out, "(1 deleted, 1 alignment padding, 2 of the index)") {
		t.Errorf("verify after rm: %q", out)
	}
	if code, out, errs := mmpconv(t, "vacuum", f); code != 0 || out != "" {
		t.Errorf("vacuum after rm: exit %d, %q, %s", code, out, errs)
	}
	if after, _ := os.ReadFile(f); len(after) >= len(before) {
		t.Errorf("vacuum after rm: %d bytes, before %d", len(after), len(before))
	}
}
