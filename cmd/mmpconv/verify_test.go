package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/convert"
	"mmpbridge/internal/pyrun"
)

// Hand-made files for the CLI tests.

// vHeader is the 24-byte header (version 1, commit number 5).
var vHeader = []byte{0x80, 4, 0x95, 13, 0, 0, 0, 0, 0, 0, 0, 'J', 1, 0, 0, 0, '0', 'J', 5, 0, 0, 0, '0', '('}

var vTerminator = []byte{0x95, 2, 0, 0, 0, 0, 0, 0, 0, 'd', '.'}

// vEntry is an entry: FRAME n, SHORT_BINUNICODE key, value, BININT 0 POP,
// NEWTRUE POP (live) or POP POP (deleted).
func vEntry(key string, value []byte, live bool) []byte {
	body := append([]byte{0x8c, byte(len(key))}, key...)
	body = append(body, value...)
	body = append(body, 'J', 0, 0, 0, 0, '0')
	if live {
		body = append(body, 0x88, '0')
	} else {
		body = append(body, '0', '0')
	}
	b := binary.LittleEndian.AppendUint64([]byte{0x95}, uint64(len(body)))
	return append(b, body...)
}

func vFile(entries ...[]byte) []byte {
	b := append([]byte(nil), vHeader...)
	for _, e := range entries {
		b = append(b, e...)
	}
	return append(b, vTerminator...)
}

// vStackGlobal pushes module and name and imports them, then calls the
// result with ("true",).
func vStackGlobal(module, name string) []byte {
	b := append([]byte{0x8c, byte(len(module))}, module...)
	b = append(b, 0x8c, byte(len(name)))
	b = append(b, name...)
	b = append(b, 0x93, 0x8c, 4)
	return append(b, "true\x85R"...)
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVerifyCorpus: every reference file passes; the mmappickle-profile
// files holding arrays get the numpy >= 2.3 warning, portable ones none.
func TestVerifyCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*", "*.mmpkl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	for _, f := range files {
		code, out, errs := mmpconv(t, "verify", f)
		if code != 0 {
			t.Errorf("%s: exit %d\n%s%s", f, code, out, errs)
			continue
		}
		if !strings.Contains(out, "structure ok: header, ") || !regexp.MustCompile(`(?m)^(0 globals imported|\d+ globals? imported, all allowed); 0 problems$`).MatchString(out) {
			t.Errorf("%s: no summary:\n%s", f, out)
		}
		warned := strings.Contains(out, "warning: ") && strings.Contains(out, "plain pickle.load fails on numpy >= 2.3")
		r, err := bridge.NewReader(bytes.NewReader(mustRead(t, f)), int64(len(mustRead(t, f))))
		if err != nil {
			t.Fatal(err)
		}
		arrays := false
		for _, k := range r.Keys() {
			if kind, _ := r.KindOf(k); kind != bridge.KindValue {
				arrays = true
			}
		}
		if want := arrays && strings.Contains(f, "mmappickle"+string(filepath.Separator)); warned != want {
			t.Errorf("%s: warned %v, want %v:\n%s", f, warned, want, out)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyMaliciousCLI(t *testing.T) {
	benign := vEntry("ok", []byte{'N'}, true)
	osSystem := vEntry("x", vStackGlobal("os", "system"), true)
	longName := mustRead(t, filepath.Join("..", "..", "bridge", "testdata", "pickles", "hostile", "149-a-20-kb-module-name-imported-2-000-times.mmpkl"))
	cases := []struct {
		name    string
		file    []byte
		args    []string
		code    int
		out     []string // regexps stdout must match
		stderr  string
		noMatch string // regexp stdout must not match
		maxOut  int    // the largest stdout expected, if not 0
	}{
		{
			name: "os.system", file: vFile(benign, osSystem), code: 1,
			out: []string{
				`(?m)^key "x": imports os\.system at offset 70: NOT ALLOWED$`,
				`(?m)^structure ok: header, 2 entries \(0 deleted\), terminator$`,
				`(?m)^1 global imported, 1 not allowed; 0 problems$`,
			},
			stderr: `^mmpconv: .*: verify failed: 1 global not allowed\n$`,
		},
		{
			name: "allowed with --allow", file: vFile(benign, osSystem), args: []string{"--allow", "os.system"}, code: 0,
			out: []string{`(?m)^key "x": imports os\.system at offset 70: allowed$`, `(?m)^1 global imported, all allowed; 0 problems$`},
		},
		{
			name: "deleted entry", file: vFile(vEntry("old", vStackGlobal("posix", "system"), false), benign), code: 1,
			out: []string{
				`(?m)^deleted entry at offset 24 \(key "old"\): imports posix\.system at offset 53: NOT ALLOWED$`,
				`(?m)^structure ok: header, 2 entries \(1 deleted\), terminator$`,
			},
		},
		{
			name: "allowed and not allowed, quiet", args: []string{"-q"}, code: 1,
			file:    vFile(vEntry("x", append(append(vStackGlobal("numpy", "dtype"), '0'), vStackGlobal("builtins", "eval")...), true)),
			out:     []string{`(?m)^key "x": imports builtins\.eval at offset \d+: NOT ALLOWED$`, `(?m)^2 globals imported, 1 not allowed; 1 problem$`, `(?m)^key "x": offset \d+: not plain data: numpy\.dtype\("true",\): not how numpy pickles a dtype$`},
			noMatch: `imports numpy\.dtype`,
		},
		{
			name: "extension code", file: vFile(vEntry("x", []byte{0x82, 7}, true)), code: 1,
			out: []string{`(?m)^key "x": offset 36: plain pickle.load fails here: EXT1: unregistered extension code 7$`},
		},
		{
			name: "persistent id", file: vFile(vEntry("x", []byte("N\x51"), true)), code: 1,
			out: []string{`(?m)^key "x": offset 37: plain pickle.load fails here: BINPERSID: a persistent id, and pickle.load has no persistent_load$`},
		},
		{
			name: "global named by an int", file: vFile(vEntry("x", []byte("K\x01\x8c\x06system\x93"), true)), code: 1,
			out: []string{`(?m)^key "x": offset 46: plain pickle.load fails here: STACK_GLOBAL requires str$`},
		},
		{
			name: "object dtype", code: 1,
			file: vFile(vEntry("x", []byte("\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02O8\x89\x88\x87R"), true)),
			out:  []string{`(?m)^key "x": offset 58: not plain data: numpy\.dtype\("O8", False, True\): dtype "O8" is not a plain numpy dtype`},
		},
		{
			name: "torn", file: vFile(benign, osSystem)[:24+len(benign)+len(osSystem)], code: 1,
			out: []string{
				`(?m)^key "x": imports os\.system at offset 70: NOT ALLOWED$`,
				`(?m)^structure error: offset \d+: file does not end with the terminator`,
				`(?m)^structure BROKEN: 1 error; 2 entries \(0 deleted\)$`,
			},
			stderr: `verify failed: its structure is broken, 1 global not allowed`,
		},
		{
			name: "STOP inside a value", file: vFile(vEntry("x", []byte("N."), true)), code: 1,
			out:    []string{`(?m)^structure error: key "x": offset 37: STOP inside a value`, `(?m)^0 globals imported; 0 problems$`},
			stderr: `verify failed: its structure is broken\n`,
		},
		{
			name: "json", file: vFile(benign, osSystem), args: []string{"--json"}, code: 1,
			out: []string{`"ok": false`, `"module": "os"`, `"name": "system"`, `"opcode": "STACK_GLOBAL"`, `"offset": 70`},
		},
		{name: "bad --allow", file: vFile(benign), args: []string{"--allow", "os"}, code: 2, stderr: `--allow`},
		{
			// bridge/testdata: a 20 KB module name imported 2,000 times
			// through the memo: each finding shows it clipped.
			name: "long module name", file: longName, code: 1,
			out:    []string{`(?m)^key "x": imports "m{200}\.\.\.\(20000 bytes\)"\.system at offset \d+: NOT ALLOWED$`, `(?m)^2000 globals imported, 2000 not allowed; 0 problems$`},
			maxOut: 2000 * 300,
		},
		{
			name: "long module name, json", file: longName, args: []string{"--json"}, code: 1,
			out:    []string{`"module": "m{200}\.\.\.\(20000 bytes\)"`},
			maxOut: 2000 * 600,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeTemp(t, "f.mmpkl", c.file)
			code, out, errs := mmpconv(t, append(append([]string{"verify"}, c.args...), p)...)
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s%s", code, c.code, out, errs)
			}
			for _, re := range c.out {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("stdout does not match %s:\n%s", re, out)
				}
			}
			if c.maxOut > 0 && len(out) > c.maxOut {
				t.Errorf("stdout of %d bytes, want at most %d", len(out), c.maxOut)
			}
			if c.noMatch != "" && regexp.MustCompile(c.noMatch).MatchString(out) {
				t.Errorf("stdout matches %s:\n%s", c.noMatch, out)
			}
			if c.stderr != "" && !regexp.MustCompile(c.stderr).MatchString(errs) {
				t.Errorf("stderr does not match %s: %q", c.stderr, errs)
			}
			if c.code == 0 && errs != "" {
				t.Errorf("stderr: %q", errs)
			}
			if strings.Contains(strings.Join(c.args, " "), "--json") {
				var v map[string]any
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Errorf("not JSON: %v\n%s", err, out)
				}
			}
		})
	}
	code, _, errs := mmpconv(t, "verify", filepath.Join(t.TempDir(), "missing.mmpkl"))
	if code != 1 || !strings.HasPrefix(errs, "mmpconv: ") {
		t.Errorf("missing file: exit %d, %q", code, errs)
	}
	code, _, _ = mmpconv(t, "verify")
	if code != 2 {
		t.Errorf("no FILE: exit %d", code)
	}
}

// genInputs writes .npy, .npz and (with h5py) HDF5 inputs into dir.
const genInputs = `
import sys, numpy as np
d, with_h5 = sys.argv[1], sys.argv[2] == "1"
arrays = {
    "f8": np.arange(12, dtype="<f8").reshape(3, 4),
    "be_i4": np.arange(-6, 6, dtype=">i4").reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(6, dtype="<i2").reshape(2, 3)),
    "bool": np.array([True, False, True]),
    "str": np.array(["ab", "c"], dtype="<U2"),
    "bytes": np.array([b"ab", b"c"], dtype="|S2"),
    "date": np.array(["2020-01-01", "NaT"], dtype="<M8[D]"),
    "c16": np.array([1 + 2j, 3j]),
    "scalar": np.array(3.25),
    "empty": np.zeros((0, 2), dtype="<f4"),
}
for k, a in arrays.items():
    np.save(f"{d}/{k}.npy", a)
np.savez(f"{d}/stored.npz", **arrays)
np.savez_compressed(f"{d}/compressed.npz", **arrays)
if with_h5:
    import h5py
    with h5py.File(f"{d}/data.h5", "w") as f:
        f.attrs["title"] = "héllo"
        f.attrs["count"] = 42
        f.attrs["scale"] = 2.5
        f.attrs["floats"] = [1.0, 2.5]
        f.attrs["flag"] = True
        f.attrs["names"] = ["a", "bc"]
        f.attrs["z"] = 1 + 2j
        g = f.create_group("grp")
        g.attrs["units"] = "m"
        for k in ("f8", "be_i4", "bool", "c16", "scalar"):
            g.create_dataset(k, data=arrays[k])
        f.create_dataset("chunked", data=np.arange(1000, dtype="<f4").reshape(10, 100), chunks=(5, 10), compression="gzip", shuffle=True)
`

// TestVerifyConverterOutputs: every mmappickle file mmpconv convert writes
// passes verify, in both profiles: from the corpus (rewritten, and through
// .npz and HDF5 and back) and from .npy, .npz and HDF5 files numpy and h5py
// made. Outputs in the mmappickle profile holding arrays carry the warning.
func TestVerifyConverterOutputs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	var sources []string
	corpusFiles, err := filepath.Glob(filepath.Join(corpusDir, "*", "*.mmpkl"))
	if err != nil || len(corpusFiles) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	sources = append(sources, corpusFiles...)
	// Through .npz and HDF5 and back.
	hdf5 := true
	for i, f := range corpusFiles {
		npz := filepath.Join(in, fmt.Sprintf("c%02d.npz", i))
		if err := convert.File(ctx, f, npz, "", "", convert.Options{SkipUnsupported: true, Skipped: func(string, string) {}}); err != nil {
			t.Fatalf("%s -> npz: %v", f, err)
		}
		sources = append(sources, npz)
		if !hdf5 {
			continue
		}
		h5 := filepath.Join(in, fmt.Sprintf("c%02d.h5", i))
		err := convert.File(ctx, f, h5, "", "", convert.Options{SkipUnsupported: true, Skipped: func(string, string) {}})
		if errors.Is(err, convert.ErrNoHDF5) {
			t.Logf("built without HDF5: %v", err)
			hdf5 = false
			continue
		}
		if err != nil {
			t.Fatalf("%s -> h5: %v", f, err)
		}
		sources = append(sources, h5)
	}
	// Made by numpy and h5py.
	withH5 := "0"
	if hdf5 {
		withH5 = "1"
	}
	pyrun.Numpy1(t).Run(t, genInputs, in, withH5)
	made, _ := filepath.Glob(filepath.Join(in, "*.np[yz]"))
	h5s, _ := filepath.Glob(filepath.Join(in, "data.h5"))
	sources = append(sources, append(made, h5s...)...)

	outs := 0
	for i, src := range sources {
		for _, p := range []bridge.Profile{bridge.Portable, bridge.Mmappickle} {
			for _, align := range []int{64, 1} {
				dst := filepath.Join(dir, fmt.Sprintf("o%03d-%s-%d.mmpkl", i, p, align))
				opt := convert.Options{Profile: p, Align: align, SkipUnsupported: true, Skipped: func(string, string) {}}
				if err := convert.File(ctx, src, dst, "", "", opt); err != nil {
					t.Fatalf("%s -> %s: %v", src, p, err)
				}
				outs++
				code, out, errs := mmpconv(t, "verify", dst)
				if code != 0 {
					t.Errorf("%s (%s, align %d): exit %d\n%s%s", src, p, align, code, out, errs)
					continue
				}
				r, err := bridge.NewReader(bytes.NewReader(mustRead(t, dst)), int64(len(mustRead(t, dst))))
				if err != nil {
					t.Fatal(err)
				}
				arrays := false
				for _, k := range r.Keys() {
					if kind, _ := r.KindOf(k); kind != bridge.KindValue {
						arrays = true
					}
				}
				warned := strings.Contains(out, "plain pickle.load fails on numpy >= 2.3")
				if want := arrays && p == bridge.Mmappickle; warned != want {
					t.Errorf("%s (%s): warned %v, want %v\n%s", src, p, warned, want, out)
				}
				// -q: only the summary line, which counts the warnings.
				_, qout, _ := mmpconv(t, "verify", "-q", dst)
				if strings.Count(qout, "\n") != 1 || strings.Contains(qout, "warning") != warned {
					t.Errorf("%s (%s): verify -q printed\n%s", src, p, qout)
				}
			}
		}
	}
	t.Logf("%d sources, %d converter outputs verified", len(sources), outs)
}

// TestHostileInspectPython: on every hostile file of bridge/testdata/pickles
// verify exits 1, on every plain one 0; and inspect --json --hash either
// refuses (exit 1) or prints what plain pickle.load gives, checked in a
// child Python on numpy 1.x and 2.x (testdata/inspect_check.py).
func TestHostileInspectPython(t *testing.T) {
	t.Parallel()
	type inspectCase struct {
		Path    string `json:"path"`
		Inspect string `json:"inspect"`
	}
	var cases []inspectCase
	refused := 0
	for _, dir := range []string{"hostile", "plain"} {
		files, _ := filepath.Glob(filepath.Join("..", "..", "bridge", "testdata", "pickles", dir, "*.mmpkl"))
		if len(files) < 10 {
			t.Fatalf("%s: %d files", dir, len(files))
		}
		for i, f := range files {
			// -short: one file in three (the test command runs them all).
			if testing.Short() && i%3 != 0 {
				continue
			}
			want := 0
			if dir == "hostile" {
				want = 1
			}
			if code, out, errs := mmpconv(t, "verify", "-q", f); code != want {
				t.Errorf("%s: verify exit %d, want %d\n%s%s", f, code, want, out, errs)
			}
			code, out, errs := mmpconv(t, "inspect", "--json", "--hash", f)
			switch {
			case code == 1 && strings.HasPrefix(errs, "mmpconv: "+f+": "):
				refused++
				continue
			case code != 0:
				t.Errorf("%s: inspect exit %d: %s", f, code, errs)
				continue
			case dir == "plain" && errs != "":
				t.Errorf("%s: %s", f, errs)
			}
			abs, _ := filepath.Abs(f)
			cases = append(cases, inspectCase{abs, out})
		}
	}
	in := filepath.Join(t.TempDir(), "cases.json")
	b, _ := json.Marshal(cases)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, env := range pyrun.Numpys(t) {
		out := env.Run(t, "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
			filepath.Join("testdata", "inspect_check.py"), in)
		var res struct {
			Results map[string]struct {
				Status     string   `json:"status"`
				Error      string   `json:"error"`
				Mismatches []string `json:"mismatches"`
			} `json:"results"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("inspect_check.py: %v\n%.1000s", err, out)
		}
		loaded := 0
		for _, c := range cases {
			r := res.Results[c.Path]
			if r.Status == "loaded" {
				loaded++
			}
			for _, m := range r.Mismatches {
				t.Errorf("%s (%s): %s", filepath.Base(c.Path), env, m)
			}
			if r.Status != "loaded" && testing.Verbose() {
				t.Logf("%s (%s): pickle.load %s: %s", filepath.Base(c.Path), env, r.Status, r.Error)
			}
			if strings.Contains(c.Path, "/plain/") && r.Status != "loaded" {
				t.Errorf("%s (%s): verify passes, pickle.load %s: %s", filepath.Base(c.Path), env, r.Status, r.Error)
			}
		}
		t.Logf("%s: inspect printed %d files (refused %d), pickle.load loaded %d of them", env, len(cases), refused, loaded)
	}
}
