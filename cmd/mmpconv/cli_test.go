package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/internal/corpus"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var corpusDir = corpus.Dir()

func mmpconv(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", name, d)
	}
}

func TestLsGolden(t *testing.T) {
	for _, f := range []string{"portable/values.mmpkl", "mmappickle/shapes.mmpkl", "portable/masked.mmpkl", "mmappickle/dtypes.mmpkl"} {
		code, out, errs := mmpconv(t, "ls", filepath.Join(corpusDir, f))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", f, code, errs)
		}
		golden(t, "ls_"+strings.ReplaceAll(f, "/", "_")+".txt", out)
	}
}

func TestInspectGolden(t *testing.T) {
	for _, f := range []string{"portable/values.mmpkl", "mmappickle/shapes.mmpkl", "portable/masked.mmpkl", "portable/strings.mmpkl"} {
		code, out, errs := mmpconv(t, "inspect", "--json", "--hash", filepath.Join(corpusDir, f))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", f, code, errs)
		}
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%s: output is not JSON: %v", f, err)
		}
		golden(t, "inspect_"+strings.ReplaceAll(f, "/", "_")+".json", out)
	}
}

// TestInspectMatchesManifest: every array's fields agree with the corpus manifest.
func TestInspectMatchesManifest(t *testing.T) {
	type arr struct {
		DType      string `json:"dtype"`
		NBytes     int64  `json:"nbytes"`
		SHA256     string `json:"sha256"`
		DataOffset int64  `json:"data_offset"`
	}
	for _, p := range corpus.Profiles {
		m, err := corpus.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		for name, mf := range m.Files {
			code, out, errs := mmpconv(t, "inspect", "--json", "--hash", filepath.Join(corpusDir, p, name))
			if code != 0 {
				t.Fatalf("%s/%s: exit %d: %s", p, name, code, errs)
			}
			var got struct {
				CommitNumber int32 `json:"commit_number"`
				Keys         map[string]struct {
					Kind    string `json:"kind"`
					Profile string `json:"encoding"`
					arr
				} `json:"keys"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if got.CommitNumber != mf.CommitNumber || len(got.Keys) != len(mf.Keys) {
				t.Errorf("%s/%s: commit %d keys %d, manifest %d %d", p, name, got.CommitNumber, len(got.Keys), mf.CommitNumber, len(mf.Keys))
			}
			for k, want := range mf.Keys {
				g := got.Keys[k]
				w := arr{DType: want.DType, NBytes: want.NBytes, SHA256: want.SHA256, DataOffset: want.DataOffset}
				if g.Kind != want.Kind || (want.Kind == "array" && (g.arr != w || g.Profile != p)) {
					t.Errorf("%s/%s %s: %+v, manifest %+v", p, name, k, g, want)
				}
			}
		}
	}
}

func TestConvertAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.mmpkl")
	src := filepath.Join(corpusDir, "mmappickle/dtypes.mmpkl")
	if code, _, errs := mmpconv(t, "convert", src, dst); code != 0 {
		t.Fatalf("convert: exit %d: %s", code, errs)
	}
	_, out, _ := mmpconv(t, "inspect", "--json", "--hash", dst)
	_, ref, _ := mmpconv(t, "inspect", "--json", "--hash", src)
	// Same arrays (dtype, shape, hash), now portable and aligned.
	var a, b struct {
		Keys map[string]map[string]any `json:"keys"`
	}
	json.Unmarshal([]byte(out), &a)
	json.Unmarshal([]byte(ref), &b)
	for k, e := range b.Keys {
		g := a.Keys[k]
		for _, f := range []string{"dtype", "shape", "sha256", "nbytes"} {
			if !cmp.Equal(g[f], e[f]) {
				t.Errorf("%s.%s: %v, source %v", k, f, g[f], e[f])
			}
		}
		if g["encoding"] != "portable" || int64(g["data_offset"].(float64))%64 != 0 {
			t.Errorf("%s: %v", k, g)
		}
	}

	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"exists", []string{"convert", src, dst}, 1, "destination exists"},
		{"force", []string{"convert", "--force", "--profile", "mmappickle", "--align", "1", src, dst}, 0, ""},
		{"missing src", []string{"convert", filepath.Join(dir, "nope.mmpkl"), filepath.Join(dir, "x.mmpkl")}, 1, "nope.mmpkl"},
		{"not mmappickle", []string{"ls", "cli_test.go"}, 1, "cli_test.go: offset 0"},
		{"not mmappickle file", []string{"ls", filepath.Join(corpusDir, "README.md")}, 1, "not an mmappickle file"},
		{"bad profile", []string{"convert", "--profile", "zip", src, filepath.Join(dir, "y.mmpkl")}, 2, "unknown profile"},
		{"bad align", []string{"convert", "--align", "3", src, filepath.Join(dir, "y.mmpkl")}, 2, "--align"},
		{"align past the bridge's largest", []string{"convert", "--align", "2097152", src, filepath.Join(dir, "y.mmpkl")}, 2, "alignment 2097152: want a power of two from 1 to 1048576"},
		{"vacuum align past the largest", []string{"vacuum", "--align", "2097152", dst}, 2, "alignment 2097152"},
		{"too many args", []string{"convert", src, dst, dst}, 2, "want SRC and DST"},
		{"unknown flag", []string{"ls", "--frobnicate", src}, 2, "unknown flag"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"bare", nil, 2, "Usage:"},
		{"--key on an npz conversion", []string{"convert", "--key", "x", src, filepath.Join(dir, "out.npz")}, 2, "--key names the key of an .npy"},
		{"put a bare word", []string{"put", filepath.Join(dir, "new.mmpkl"), "k", "--json", "hello"}, 2, `a string needs quotes: --json '"hello"'`},
		{"put duplicate keys", []string{"put", filepath.Join(dir, "new.mmpkl"), "k", "--json", `{"a": 1, "a": 2}`}, 2, `duplicate key "a"`},
		{"unknown extension", []string{"convert", src, filepath.Join(dir, "out.xyz")}, 2, "extension"},
	}
	for _, c := range cases {
		code, _, errs := mmpconv(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", c.name, code, errs, c.code, c.msg)
		}
		if code != 0 && c.args != nil && !strings.HasPrefix(errs, "mmpconv: ") {
			t.Errorf("%s: stderr %q does not start with mmpconv:", c.name, errs)
		}
	}
	// A refused conversion leaves no temporary file behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestEditCommands(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "new.mmpkl")
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"put", f, "meta", "--json", `{"name": "x", "n": 3, "big": 123456789012345678901234567890, "xs": [1.5, true, null]}`}, 0, ""},
		{[]string{"get", f, "meta"}, 0, "{'name': 'x', 'n': 3, 'big': 123456789012345678901234567890, 'xs': [1.5, True, None]}\n"},
		{[]string{"put", f, "n", "--json", "7"}, 0, ""},
		{[]string{"put", f, "n", "--json", "8"}, 0, ""},
		{[]string{"get", f, "n"}, 0, "8\n"},
		{[]string{"ls", f}, 0, "meta  value  {'name': 'x', 'n': 3, 'big': 123456789012345678901234567890,...\nn     value  8\n"},
		{[]string{"rm", f, "meta"}, 0, ""},
		{[]string{"rm", f, "meta"}, 1, ""},
		{[]string{"get", f, "meta"}, 1, ""},
		{[]string{"vacuum", f}, 0, ""},
		{[]string{"fsck", f}, 0, f + ": intact, 3 entries\n"}, // the key, and the index's pointer and entry
		{[]string{"put", f, "bad", "--json", "{"}, 2, ""},
		{[]string{"put", f, "k"}, 2, ""},
	}
	for _, s := range steps {
		code, out, errs := mmpconv(t, s.args...)
		if code != s.code || (s.out != "" && out != s.out) {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q; want exit %d, stdout %q", s.args, code, out, errs, s.code, s.out)
		}
	}
	// fsck repairs a torn file.
	b, _ := os.ReadFile(f)
	os.WriteFile(f, b[:len(b)-3], 0o644)
	if code, _, errs := mmpconv(t, "ls", f); code != 1 || !strings.Contains(errs, "torn") {
		t.Errorf("ls of a torn file: exit %d, %q", code, errs)
	}
	code, out, _ := mmpconv(t, "fsck", f)
	if code != 0 || !strings.Contains(out, "repaired") {
		t.Errorf("fsck: exit %d, %q", code, out)
	}
	if code, out, _ := mmpconv(t, "get", f, "n"); code != 0 || out != "8\n" {
		t.Errorf("after fsck: exit %d, %q", code, out)
	}
}
