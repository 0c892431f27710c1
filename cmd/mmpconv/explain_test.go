package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
	"mmpbridge/internal/version"
)

// TestHelpEndsWithExamples: every command's --help ends with two or three
// examples of it.
func TestHelpEndsWithExamples(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"ls", "inspect", "convert", "get", "put", "rm", "vacuum", "fsck", "verify", "serve", "diff"} {
		code, out, _ := mmpconv(t, c, "--help")
		i := strings.LastIndex(out, "\nExamples:\n")
		if code != 0 || i < 0 {
			t.Errorf("%s --help: exit %d, no examples:\n%s", c, code, out)
			continue
		}
		ex := strings.Split(strings.TrimSpace(out[i+len("\nExamples:\n"):]), "\n")
		if len(ex) < 2 || len(ex) > 3 {
			t.Errorf("%s --help: %d examples, want 2 or 3", c, len(ex))
		}
		for _, l := range ex {
			if !strings.HasPrefix(strings.TrimSpace(l), "mmpconv ") {
				t.Errorf("%s --help: after Examples, %q", c, l)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := mmpconv(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "mmpconv "+version.Version+"\n") || !strings.Contains(out, "portable") || !strings.Contains(out, "mmappickle  ") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	code, _, errs := mmpconv(t)
	if code != 2 || !strings.Contains(errs, "Usage:") || !strings.Contains(errs, "Available Commands:") {
		t.Errorf("bare mmpconv: exit %d:\n%s", code, errs)
	}
}

func TestInspectTable(t *testing.T) {
	t.Parallel()
	code, out, errs := mmpconv(t, "inspect", filepath.Join(corpusDir, "portable", "masked.mmpkl"))
	if code != 0 {
		t.Fatal(errs)
	}
	golden(t, "inspect_table_portable_masked.mmpkl.txt", out)
	code, out, _ = mmpconv(t, "inspect", "--hash", filepath.Join(corpusDir, "portable", "masked.mmpkl"))
	if code != 0 || !strings.Contains(strings.SplitN(out, "\n", 2)[0], "SHA256") || strings.Count(out, "\n") != 6 {
		t.Errorf("--hash: exit %d:\n%s", code, out)
	}
}

func TestPutJSONFromFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "d.mmpkl")
	big := `{"bands": [` + strings.Repeat("1.5, ", 200000) + `2.5], "name": "vnir"}`
	js := filepath.Join(dir, "meta.json")
	os.WriteFile(js, []byte(big), 0o644)
	if code, _, errs := mmpconv(t, "put", f, "meta", "--json", "@"+js); code != 0 {
		t.Fatal(errs)
	}
	stdin = strings.NewReader(`{"gain": 2}`)
	defer func() { stdin = os.Stdin }()
	if code, _, errs := mmpconv(t, "put", f, "g", "--json", "-"); code != 0 {
		t.Fatal(errs)
	}
	if _, out, _ := mmpconv(t, "get", f, "g"); out != "{'gain': 2}\n" {
		t.Errorf("get g: %q", out)
	}
	if _, out, _ := mmpconv(t, "ls", f); !strings.Contains(out, "meta") || !strings.Contains(out, "'name': 'vnir'") && !strings.Contains(out, "'bands'") {
		t.Errorf("ls:\n%s", out)
	}
	os.WriteFile(js, []byte(`{"a": 1, "a": 2}`), 0o644)
	code, _, errs := mmpconv(t, "put", f, "dup", "--json", "@"+js)
	if code != 1 || !strings.Contains(errs, `duplicate key "a"`) || !strings.Contains(errs, js) {
		t.Errorf("duplicate keys in a file: exit %d: %s", code, errs)
	}
	code, _, errs = mmpconv(t, "put", f, "x", "--json", "@"+filepath.Join(dir, "missing.json"))
	if code != 1 || !strings.Contains(errs, "missing.json") {
		t.Errorf("missing file: exit %d: %s", code, errs)
	}
}

func TestFsckEmptyFile(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "empty.mmpkl")
	os.WriteFile(f, nil, 0o644)
	code, out, errs := mmpconv(t, "fsck", f)
	if code != 1 || out != "" || errs != "mmpconv: "+f+": offset 0: the file is empty (not an mmappickle file)\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if st, _ := os.Stat(f); st.Size() != 0 {
		t.Errorf("fsck wrote %d bytes into the empty file", st.Size())
	}
	_, _, lsErr := mmpconv(t, "ls", f)
	if !strings.Contains(lsErr, "not an mmappickle file") {
		t.Errorf("ls: %s", lsErr)
	}
}

// TestSkipHint: a refusal --skip-unsupported gets past says so, once; the
// skipped items are then listed with the file's name.
func TestSkipHint(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "obj.npz")
	pyrun.Numpy2(t).Run(t, "import sys, numpy as np; np.savez(sys.argv[1], a=np.array([1, 'x'], dtype=object), b=np.ones(3))", src)
	code, _, errs := mmpconv(t, "convert", src, filepath.Join(dir, "o.mmpkl"))
	want := "mmpconv: " + src + `: member "a.npy": object arrays cannot be converted (they need allow_pickle) (--skip-unsupported converts the rest and lists what it skips)` + "\n"
	if code != 1 || errs != want {
		t.Errorf("exit %d, stderr %q, want %q", code, errs, want)
	}
	code, _, errs = mmpconv(t, "convert", "--skip-unsupported", src, filepath.Join(dir, "o.mmpkl"))
	if code != 0 || errs != "mmpconv: "+src+`: skipped member "a.npy": object arrays cannot be converted (they need allow_pickle)`+"\n" {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if strings.Count(errs, src) != 1 {
		t.Errorf("the file is named %d times: %s", strings.Count(errs, src), errs)
	}
}
