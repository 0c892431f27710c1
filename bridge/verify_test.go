package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
	"mmpbridge/pyval"
)

// Builders of hand-made files for the verify tests (own names: the other
// tests' builders may change under them).

func vline(code byte, lines ...string) []byte {
	b := []byte{code}
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	return b
}

// vFile is a whole file: header, entries, terminator.
func vFile(entries ...[]byte) []byte {
	b := header(3)
	for _, e := range entries {
		b = append(b, e...)
	}
	return append(b, terminator...)
}

// call makes a value that calls the global on the stack with ("true",):
// harmless even if something ran it.
var call = pkl("true", opTuple1, opReduce)

// benign is a live entry holding a list of an int and a set.
var benign = testEntryMemo("ok", pkl(opEmptyList, opMark, opBinInt1, 1, opEmptySet, opMark, opBinInt1, 2, opAddItems, opAppends), true, 0)

// want names a finding: the key, whether its entry is deleted, and what it
// imports ("os.system", "dynamic", "EXT1", "BINPERSID", ...).
type want struct {
	key     string
	deleted bool
	what    string
}

type maliciousCase struct {
	name string
	file []byte
	want []want
	// structure: the structure check must fail too.
	structure bool
}

func maliciousFiles() []maliciousCase {
	sg := func(module, name string) []byte { return pkl(module, name, opStackGlobal) }
	g := func(module, name string) []byte { return vline(opGlobal, module, name) }
	one := func(name string, value []byte, w string) maliciousCase {
		return maliciousCase{name: name, file: vFile(benign, testEntryMemo("x", value, true, 0)), want: []want{{"x", false, w}}}
	}
	cases := []maliciousCase{
		one("os.system via STACK_GLOBAL", pkl(sg("os", "system"), call), "os.system"),
		one("os.system via GLOBAL", pkl(g("os", "system"), call), "os.system"),
		one("os.system via INST", pkl(opMark, "true", vline(opInst, "os", "system")), "os.system"),
		one("posix.system", pkl(sg("posix", "system"), call), "posix.system"),
		one("nt.system", pkl(sg("nt", "system"), call), "nt.system"),
		one("builtins.eval", pkl(sg("builtins", "eval"), pkl("1", opTuple1, opReduce)), "builtins.eval"),
		one("builtins.exec via GLOBAL", pkl(g("builtins", "exec"), pkl("1", opTuple1, opReduce)), "builtins.exec"),
		one("builtins.getattr", pkl(sg("builtins", "getattr"), sg("builtins", "set"), "mro", opTuple2, opReduce), "builtins.getattr"),
		one("subprocess.Popen", pkl(sg("subprocess", "Popen"), call), "subprocess.Popen"),
		one("copyreg._reconstructor", pkl(g("copyreg", "_reconstructor"), sg("builtins", "set"), sg("builtins", "set"), opNone, opTuple3, opReduce), "copyreg._reconstructor"),
		one("numpy.load", pkl(sg("numpy", "load"), pkl("x.npy", opTuple1, opReduce)), "numpy.load"),
		one("numpy.core.multiarray._reconstruct, module split elsewhere", pkl(sg("numpy.core", "multiarray._reconstruct"), opPop, opNone), "numpy.core.multiarray._reconstruct"),
		one("numpy.core.multiarray._reconstruct, module with a trailing space", pkl(g("numpy.core.multiarray ", "_reconstruct"), opPop, opNone), "numpy.core.multiarray ._reconstruct"),
		one("numpy.core.multiarray._reconstruct, capitalised", pkl(sg("Numpy.core.multiarray", "_reconstruct"), opPop, opNone), "Numpy.core.multiarray._reconstruct"),
		one("numpy.dtype with a dotted name", pkl(sg("numpy", "dtype.mro"), opPop, opNone), "numpy.dtype.mro"),
		one("EXT1", pkl(opExt1, 5, opPop, opNone), "fails"),
		one("EXT2", pkl(opExt2, 5, 1, opPop, opNone), "fails"),
		one("EXT4", pkl(opExt4, 5, 0, 0, 1, opPop, opNone), "fails"),
		one("BINPERSID", pkl("x", opBinPersID), "fails"),
		one("PERSID", vline(opPersID, "x"), "fails"),
		one("os.system with SHORT_BINSTRING names", pkl(opShortBinString, 2, []byte("os"), opShortBinString, 6, []byte("system"), opStackGlobal, call), "os.system"),
		one("os.system with UNICODE names", pkl(vline(opUnicode, "os"), vline(opUnicode, "system"), opStackGlobal, call), "os.system"),
		one("os.system with STRING names", pkl(vline(opString, "'os'"), vline(opString, `"system"`), opStackGlobal, call), "os.system"),
		one("module escaped in STRING", pkl(vline(opString, `'o\x73'`), "system", opStackGlobal, call), "os.system"),
		one("module escaped in STRING, octal", pkl(vline(opString, `'\157s'`), "system", opStackGlobal, call), "os.system"),
		one("module escaped in UNICODE", pkl(vline(opUnicode, `o\u0073`), "system", opStackGlobal, call), "os.system"),
		one("module escaped in UNICODE, \\U", pkl(vline(opUnicode, `\U0000006fs`), "system", opStackGlobal, call), "os.system"),
		one("names through DUP and POP", pkl("os", "system", opDup, opPop, opStackGlobal, call), "os.system"),
		one("names under a MARK", pkl("os", "system", opMark, opNone, opPopMark, opStackGlobal, call), "os.system"),
		one("names through BINPUT/BINGET", pkl("os", opBinPut, 1, opPop, "system", opBinPut, 2, opPop, opBinGet, 1, opBinGet, 2, opStackGlobal, call), "os.system"),
		one("names through MEMOIZE", pkl("os", opMemoize, opPop, "system", opMemoize, opPop, opBinGet, 0, opBinGet, 1, opStackGlobal, call), "os.system"),
		one("names through PUT/GET text", pkl("os", vline(opPut, "7"), opPop, "system", vline(opPut, "8"), opPop, vline(opGet, "7"), vline(opGet, "8"), opStackGlobal, call), "os.system"),
		one("names through LONG_BINPUT/LONG_BINGET", pkl("os", opLongBinPut, 9, 0, 0, 0, opPop, "system", opLongBinPut, 10, 0, 0, 0, opPop, opLongBinGet, 9, 0, 0, 0, opLongBinGet, 10, 0, 0, 0, opStackGlobal, call), "os.system"),
		// MEMOIZE writes at len(memo) = 2, overwriting "numpy": a model
		// that got the index wrong would see the allowed numpy.dtype.
		one("MEMOIZE overwriting a slot", pkl("x", opBinPut, 0, opPop, "numpy", opBinPut, 2, opPop, "os", opMemoize, opPop, opBinGet, 2, "dtype", opStackGlobal, opPop, opNone), "os.dtype"),
		one("memo slot overwritten by a non-string", pkl("numpy", opBinPut, 1, opPop, sg("numpy", "ndarray"), opBinPut, 1, opPop, opBinGet, 1, "dtype", opStackGlobal, opPop, opNone), "fails"),
		one("os.system imported and dropped beside a range", pkl(sg("os", "system"), opPop, sg("builtins", "range"), opBinInt1, 3, opTuple1, opReduce), "os.system"),
		one("allowed global used as a name", pkl(sg("builtins", "set"), "x", opStackGlobal, opPop, opNone), "fails"),
		one("OBJ of an imported class", pkl(opMark, g("builtins", "eval"), "1", opObj), "builtins.eval"),
		one("NEWOBJ of an imported class", pkl(sg("subprocess", "Popen"), "true", opTuple1, opNewObj), "subprocess.Popen"),
		{
			name: "names memoized in an earlier entry",
			file: vFile(
				testEntryMemo("a", pkl("os", opBinPut, 10, "system", opBinPut, 11, opTuple2), true, 12),
				testEntryMemo("b", pkl(opBinGet, 10, opBinGet, 11, opStackGlobal, call), true, 12)),
			want: []want{{"b", false, "shared memo"}, {"b", false, "os.system"}},
		},
		{
			name: "names memoized in a deleted entry",
			file: vFile(
				testEntryMemo("a", pkl("posix", opBinPut, 3, "system", opBinPut, 4, opTuple2), false, 5),
				benign,
				testEntryMemo("b", pkl(opBinGet, 3, opBinGet, 4, opStackGlobal, call), true, 5)),
			want: []want{{"b", false, "shared memo"}, {"b", false, "posix.system"}},
		},
		{
			name: "os.system in a deleted entry",
			file: vFile(benign, testEntryMemo("gone", pkl(sg("os", "system"), call), false, 0), testEntryMemo("x", pkl(opNone), true, 0)),
			want: []want{{"gone", true, "os.system"}},
		},
		{
			name: "os.system in a deleted padding entry with an empty key",
			file: vFile(testEntryMemo("", pkl(g("os", "system"), call), false, 0), benign),
			want: []want{{"", true, "os.system"}},
		},
		{
			name: "allowed and not allowed in one value",
			file: vFile(testEntryMemo("x", pkl(sg("numpy", "ndarray"), opPop, sg("builtins", "eval"), pkl("1", opTuple1, opReduce)), true, 0)),
			want: []want{{"x", false, "builtins.eval"}},
		},
		{
			// pickle.load stops at the STOP (and so does mmappickle's
			// reader of one value): os.system is never imported.
			name:      "os.system after a STOP inside a value",
			file:      vFile(testEntryMemo("x", pkl(opNone, opStop, g("os", "system"), opPop), true, 0)),
			structure: true,
		},
		{
			// The first value's SHORT_BINBYTES claims the bytes up to the
			// payload of the second value's SHORT_BINBYTES, which hold a
			// GLOBAL: a per-entry reading sees bytes, pickle.load the GLOBAL.
			name: "GLOBAL hidden in a payload, reached through a length that swallows the next entry",
			file: func() []byte {
				hidden := pkl(g("os", "system"), "true", opTuple1, opReduce, opPop)
				// bytes from the end of value 1 to the payload of value 2:
				// trailer (8), FRAME (9), key "b" (3), SHORT_BINBYTES n (2).
				skip := 8 + 9 + 3 + 2
				return vFile(testEntryMemo("a", pkl(opShortBinBytes, skip), true, 0),
					testEntryMemo("b", pkl(opShortBinBytes, len(hidden), hidden), true, 0))
			}(),
			want: []want{{"b", false, "os.system"}}, structure: true,
		},
		{
			name: "torn file (no terminator)",
			file: func() []byte {
				f := vFile(benign, testEntryMemo("x", pkl(sg("os", "system"), call), true, 0))
				return f[:len(f)-len(terminator)]
			}(),
			want: []want{{"x", false, "os.system"}}, structure: true,
		},
		{
			name: "plain pickle, not an mmappickle file",
			file: pkl(opProto, 4, g("os", "system"), call, opStop),
			want: []want{{"", false, "os.system"}}, structure: true,
		},
		{
			name: "header version 2",
			file: func() []byte {
				f := vFile(testEntryMemo("x", pkl(sg("os", "system"), call), true, 0))
				f[12] = 2
				return f
			}(),
			want: []want{{"x", false, "os.system"}}, structure: true,
		},
		{
			// Imported at each use, not hashed at each (shared_test.go).
			name: "a 20 KB module name imported 2,000 times",
			file: vFile(testEntryMemo("x", pkl(binUni(strings.Repeat("m", 20_000)), opBinPut, 1, "system", opBinPut, 2, opPop, opPop,
				opMark, bytes.Repeat(pkl(opBinGet, 1, opBinGet, 2, opStackGlobal), 2000), opList), true, 3)),
			want: []want{{"x", false, strings.Repeat("m", 20_000) + ".system"}},
		},
	}
	return cases
}

// findingWhat is how a test names a finding: "module.name" for an import,
// "fails" or "not plain" or "shared memo" for the others.
func findingWhat(f Finding) string {
	switch f.Kind {
	case Import:
		return f.Module + "." + f.Name
	case Fails:
		return "fails"
	case NotPlain:
		return "not plain"
	case SharedMemo:
		return "shared memo"
	}
	return "warning"
}

func findings(rep *VerifyReport, kinds ...FindingKind) []Finding {
	var out []Finding
	for _, f := range rep.Findings {
		if slices.Contains(kinds, f.Kind) {
			out = append(out, f)
		}
	}
	return out
}

// bad tells whether a finding fails the file.
func bad(f Finding) bool {
	return f.Kind == Import && !f.Allowed || f.Kind != Import && f.Kind != Warning
}

func TestVerifyMalicious(t *testing.T) {
	t.Parallel()
	for _, c := range maliciousFiles() {
		t.Run(c.name, func(t *testing.T) {
			rep, err := Verify(bytesReaderAt(c.file), int64(len(c.file)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatalf("verify passes a malicious file: %+v", rep)
			}
			if c.structure == (len(rep.Structure) == 0) {
				t.Errorf("structure ok = %v, want %v: %v", (len(rep.Structure) == 0), !c.structure, rep.Structure)
			}
			for _, w := range c.want {
				found := false
				for _, f := range rep.Findings {
					if findingWhat(f) == w.what && f.Key == w.key && f.Deleted == w.deleted && bad(f) {
						found = true
					}
				}
				if !found {
					t.Errorf("no finding %+v in %+v", w, rep.Findings)
				}
			}
			for _, p := range rep.Structure {
				if p.Offset < 0 || p.Offset > int64(len(c.file)) {
					t.Errorf("structure error at offset %d outside the file: %v", p.Offset, p)
				}
			}
			for _, f := range rep.Findings {
				if f.Offset < 0 || f.Offset > int64(len(c.file)) {
					t.Errorf("finding at offset %d outside the file: %+v", f.Offset, f)
				}
			}
			// Trusting what was imported makes a file with a sound
			// structure and nothing else wrong pass.
			var trust []pyval.Global
			only := true
			for _, f := range rep.Findings {
				switch f.Kind {
				case Import:
					trust = append(trust, pyval.Global{Module: f.Module, Name: f.Name})
				case Warning:
				default:
					only = false
				}
			}
			if only && !c.structure {
				rep2, err := Verify(bytesReaderAt(c.file), int64(len(c.file)), trust)
				if err != nil {
					t.Fatal(err)
				}
				if !rep2.OK() {
					t.Errorf("trusting %v: still fails: %+v %v", trust, rep2.Findings, rep2.Structure)
				}
			}
			// The reader never shows a key that imports a global outside
			// the allow-list as plain data, even when the value discards
			// what it imported: it refuses the file, or the value holds
			// an Object.
			r, err := newReaderBytes(c.file)
			if err != nil {
				return
			}
			checked := map[string]bool{}
			for _, f := range rep.Findings {
				if f.Kind != Import || f.Allowed || f.Deleted || f.Entry < 0 || checked[f.Key] {
					continue
				}
				checked[f.Key] = true
				if v, err := r.Get(f.Key); err == nil && !hasObject(v) {
					t.Errorf("key %q imports %s.%s; the reader gives %#v", f.Key, f.Module, f.Name, v)
				}
			}
		})
	}
}

// pythonForVerify returns the numpy1 interpreter.
func pythonForVerify(t *testing.T, modules string) string {
	t.Helper()
	e := pyrun.Numpy1(t)
	e.Run(t, "import "+modules)
	return e.Python
}

// recordGlobals: for each file, the globals pickle.load asks find_class
// for. find_class returns a stand-in class that accepts every call, BUILD
// and NEWOBJ, so reading goes on; with "stop" it raises at the first global
// outside the allow-list (argv[2], JSON), so nothing is ever imported. The
// result is the globals asked for and the error pickle.load raised, if any.
const recordGlobals = `
import json, pickle, sys
stop = sys.argv[1] == "stop"
allow = set(tuple(x) for x in json.loads(sys.argv[2]))

class Found(Exception):
    pass

class Any:
    def __init__(self, *a, **k): pass
    def __setstate__(self, state): pass
    def __call__(self, *a, **k): return Any()

class Recorder(pickle.Unpickler):
    def __init__(self, f):
        super().__init__(f)
        self.seen = []
    def find_class(self, module, name):
        self.seen.append([module, name])
        if stop and (module, name) not in allow:
            raise Found(module, name)
        return Any

out = {}
for path in sys.argv[3:]:
    with open(path, "rb") as f:
        u = Recorder(f)
        try:
            u.load()
            err = None
        except Found:
            err = None
        except Exception as e:
            err = type(e).__name__ + ": " + str(e)
    out[path] = {"globals": u.seen, "error": err}
json.dump(out, sys.stdout)
`

type pyGlobals struct {
	Globals [][2]string `json:"globals"`
	Error   *string     `json:"error"`
}

func runRecordGlobals(t *testing.T, py string, stop bool, files []string) map[string]pyGlobals {
	t.Helper()
	mode := "all"
	if stop {
		mode = "stop"
	}
	var allow [][2]string
	for k := range allowedGlobals {
		allow = append(allow, k)
	}
	aj, _ := json.Marshal(allow)
	cmd := exec.Command(py, append([]string{"-c", recordGlobals, mode, string(aj)}, files...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONNOUSERSITE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	res := map[string]pyGlobals{}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python output: %v: %s", err, out)
	}
	return res
}

// TestVerifyMaliciousPython: Python's own unpickler, with a find_class that
// imports nothing, reads each malicious file up to the first global outside
// the allow-list. Every global it asked for is among those verify reports,
// the last one as not allowed (or verify reports a dynamic global it cannot
// name). Where Python asks for nothing outside the list, it must fail for
// another reason (extension code, persistent id, a broken stream) or verify
// must fail the file's structure.
func TestVerifyMaliciousPython(t *testing.T) {
	py := pythonForVerify(t, "pickle")
	dir := t.TempDir()
	cases := maliciousFiles()
	var files []string
	for i, c := range cases {
		p := filepath.Join(dir, fmt.Sprintf("m%02d.mmpkl", i))
		if err := os.WriteFile(p, c.file, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	res := runRecordGlobals(t, py, true, files)
	for i, c := range cases {
		r := res[files[i]]
		rep, err := Verify(bytesReaderAt(c.file), int64(len(c.file)), nil)
		if err != nil {
			t.Fatal(err)
		}
		reported := func(m, n string, allowed bool) bool {
			for _, g := range findings(rep, Import) {
				if g.Allowed == allowed && g.Module == m && g.Name == n {
					return true
				}
			}
			return false
		}
		stopped := false
		for j, pg := range r.Globals {
			last := j == len(r.Globals)-1 && r.Error == nil
			if !reported(pg[0], pg[1], !last) {
				t.Errorf("%s: Python asks for %s.%s (allowed %v); verify reports %+v", c.name, pg[0], pg[1], !last, rep.Findings)
			}
			stopped = stopped || last
		}
		switch {
		case stopped:
			t.Logf("%s: Python stops at %v", c.name, r.Globals[len(r.Globals)-1])
		case r.Error != nil:
			t.Logf("%s: Python imports nothing outside the list and fails: %s", c.name, *r.Error)
			if len(findings(rep, Fails, SharedMemo)) == 0 && (len(rep.Structure) == 0) {
				t.Errorf("%s: Python fails (%s); verify reports no failure", c.name, *r.Error)
			}
		case c.structure:
			t.Logf("%s: Python imports nothing outside the list; verify fails the structure", c.name)
		default:
			t.Errorf("%s: Python loads it importing only %v", c.name, r.Globals)
		}
	}
}

func verifyRefFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "compat", "testdata", "*", "*.mmpkl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no reference files: %v", err)
	}
	return files
}

// TestVerifyReferenceFiles: every file mmappickle 1.0.1 wrote passes, with
// the numpy >= 2.3 warning exactly for the mmappickle-profile arrays.
func TestVerifyReferenceFiles(t *testing.T) {
	t.Parallel()
	for _, p := range verifyRefFiles(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := newReaderBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(bytesReaderAt(b), int64(len(b)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Errorf("%s: %v %+v", p, rep.Structure, rep.Findings)
		}
		if rep.Entries != len(r.Entries()) || rep.Stream {
			t.Errorf("%s: %d entries, reader has %d; stream %v", p, rep.Entries, len(r.Entries()), rep.Stream)
		}
		warned := map[int64]bool{}
		for _, w := range findings(rep, Warning) {
			if !strings.Contains(w.Msg, "numpy >= 2.3") {
				t.Errorf("%s: warning %+v", p, w)
			}
			warned[w.Entry] = true
		}
		for i, e := range r.Entries() {
			info, _ := r.info(i)
			var mmp bool
			switch a := info.array.(type) {
			case *Array:
				mmp = a.Profile == Mmappickle
			case *Masked:
				mmp = a.Data.Profile == Mmappickle
			}
			if mmp != warned[e.Offset] {
				t.Errorf("%s: entry %q at %d: mmappickle array %v, warned %v", p, e.Key, e.Offset, mmp, warned[e.Offset])
			}
			if mmp && strings.Contains(p, "portable") {
				t.Errorf("%s: entry %q: mmappickle array in the portable profile", p, e.Key)
			}
		}
		// Through the ReaderAt path (no mapping) the report is the same.
		rep2, err := Verify(bytes.NewReader(b), int64(len(b)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(rep2) != fmt.Sprint(rep) {
			t.Errorf("%s: reports differ:\n%+v\n%+v", p, rep, rep2)
		}
	}
}

// TestVerifyMatchesPython: on every reference file, the globals verify
// reports are exactly those Python's unpickler asks for, in order.
func TestVerifyMatchesPython(t *testing.T) {
	py := pythonForVerify(t, "pickle")
	files := verifyRefFiles(t)
	dir := t.TempDir()
	// Files written by the bridge: both profiles, aligned (deleted padding
	// entries), generic values, replaced and deleted keys.
	for _, p := range []Profile{Portable, Mmappickle} {
		path := filepath.Join(dir, p.String()+".mmpkl")
		writeVerifyMixed(t, path, p)
		files = append(files, path)
	}
	res := runRecordGlobals(t, py, false, files)
	for _, p := range files {
		r := res[p]
		if r.Error != nil {
			t.Errorf("%s: Python: %s", p, *r.Error)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(bytesReaderAt(b), int64(len(b)), nil)
		if err != nil {
			t.Fatal(err)
		}
		var got [][2]string
		for _, g := range findings(rep, Import) {
			got = append(got, [2]string{g.Module, g.Name})
		}
		if !slices.Equal(got, r.Globals) {
			t.Errorf("%s: verify reports\n%v\nPython imports\n%v", p, got, r.Globals)
		}
		if !rep.OK() {
			t.Errorf("%s: %v %+v", p, rep.Structure, rep.Findings)
		}
	}
}

// writeVerifyMixed writes a file with the bridge: arrays (one Fortran, one
// masked), generic values using every allowed builtin the encoder writes,
// a replaced and a deleted key, 64-byte alignment.
func writeVerifyMixed(t *testing.T, path string, p Profile) {
	t.Helper()
	f, err := Create(path, WithProfile(p))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f64 := DType{ByteOrder: '<', Kind: 'f', ItemSize: 8}
	for i, h := range []ArrayHeader{
		{DType: f64, Shape: []int{2, 3}},
		{DType: DType{ByteOrder: '>', Kind: 'i', ItemSize: 4}, Shape: []int{5}},
		{DType: f64, Shape: []int{3, 2}, Fortran: p == Portable}, // the mmappickle profile has no order
	} {
		n := int64(h.DType.ItemSize)
		for _, d := range h.Shape {
			n *= int64(d)
		}
		if err := f.PutArray(fmt.Sprintf("a%d", i), h, bytes.NewReader(make([]byte, n))); err != nil {
			t.Fatal(err)
		}
	}
	vals := map[string]any{
		"meta":  pyval.Dict{{Key: "gain", Value: 1.5}, {Key: "tags", Value: pyval.Set{"a", "b"}}, {Key: "frozen", Value: pyval.FrozenSet{int64(1)}}},
		"c":     complex(1, 2),
		"ba":    pyval.ByteArray("xy"),
		"nums":  []any{int64(1), "two", pyval.Tuple{3.0, nil}},
		"bytes": []byte("raw"),
	}
	for _, k := range []string{"meta", "c", "ba", "nums", "bytes"} {
		if err := f.Put(k, vals[k]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Put("c", "replaced"); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete("a1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyBridgeOutput: files the bridge writes pass in both profiles.
func TestVerifyBridgeOutput(t *testing.T) {
	for _, p := range []Profile{Portable, Mmappickle} {
		path := filepath.Join(t.TempDir(), "x.mmpkl")
		writeVerifyMixed(t, path, p)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(bytesReaderAt(b), int64(len(b)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Deleted == 0 {
			t.Errorf("%s: %+v", p, rep)
		}
		if (rep.Warnings > 0) != (p == Mmappickle) {
			t.Errorf("%s: warnings %+v", p, findings(rep, Warning))
		}
	}
}

// TestVerifyStructure: each broken structure is reported at its offset.
func TestVerifyStructure(t *testing.T) {
	ok := vFile(benign, testEntryMemo("x", pkl(opNone), true, 0))
	cases := []struct {
		name string
		file []byte
		off  int64 // the offset the first error names
		msg  string
	}{
		{"empty file", nil, 0, "shorter than the 24-byte header"},
		{"bad PROTO", func() []byte { b := bytes.Clone(ok); b[1] = 2; return b }(), 1, "bad header byte"},
		{"version 2", func() []byte { b := bytes.Clone(ok); b[12] = 2; return b }(), 12, "unsupported mmappickle version 2"},
		{"no terminator", ok[:len(ok)-terminatorSize], int64(len(ok) - 2*terminatorSize), "terminator"},
		{"damaged terminator", func() []byte { b := bytes.Clone(ok); b[len(b)-1] = opDict; return b }(), int64(len(ok) - terminatorSize), "terminator"},
		{"stray bytes", vFile(benign, []byte{opNone, opPop}), int64(headerSize + len(benign)), "stray bytes"},
		{"STOP in a value", vFile(testEntryMemo("x", pkl(opNone, opStop), true, 0)), 24 + 9 + 3 + 1, "STOP inside a value"},
		{"FRAME in a value", vFile(testEntryMemo("x", pkl(opFrame, make([]byte, 8), opNone), true, 0)), 24 + 9 + 3, "FRAME inside a value"},
		{"PROTO in a value", vFile(testEntryMemo("x", pkl(opProto, 2, opNone), true, 0)), 24 + 9 + 3, "PROTO inside a value"},
		{"two items", vFile(testEntryMemo("x", pkl(opNone, opNone), true, 0)), 24 + 9 + 3, "leaves 2 items"},
		{"no item", vFile(testEntryMemo("x", pkl(opNone, opPop, opMark, opPop), true, 0)), 24 + 9 + 3, "leaves 0 items"},
		{"pops the key", vFile(testEntryMemo("x", pkl(opNone, opPop, opPop, opNone), true, 0)), 24 + 9 + 3 + 2, "reaches below the start of the value"},
		{"unclosed MARK", vFile(testEntryMemo("x", pkl(opMark, opNone), true, 0)), 24 + 9 + 3, "1 marks"},
		{"TUPLE without MARK", vFile(testEntryMemo("x", pkl(opNone, opTuple), true, 0)), 24 + 9 + 3 + 1, "TUPLE without a MARK"},
		{"payload past the value", vFile(testEntryMemo("x", pkl(opShortBinBytes, 40), true, 0), benign), 24 + 9 + 3, "claims 40 bytes"},
		{"invalid opcode", vFile(testEntryMemo("x", pkl(0xff), true, 0)), 24 + 9 + 3, "invalid pickle opcode 0xff"},
		{"deleted entry with a bad value", vFile(testEntryMemo("d", pkl(opNone, opNone), false, 0)), 24 + 9 + 3, "deleted entry \"d\" at offset 24"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := Verify(bytesReaderAt(c.file), int64(len(c.file)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if (len(rep.Structure) == 0) || rep.OK() {
				t.Fatalf("structure reported sound: %+v", rep)
			}
			if p := rep.Structure[0]; p.Offset != c.off || !strings.Contains(p.Error(), c.msg) {
				t.Errorf("first error %q at %d, want %q at %d (all: %v)", p.Error(), p.Offset, c.msg, c.off, rep.Structure)
			}
		})
	}
	rep, err := Verify(bytesReaderAt(ok), int64(len(ok)), nil)
	if err != nil || !rep.OK() || rep.Entries != 2 || rep.Imports != 0 {
		t.Fatalf("sound file: %+v %v", rep, err)
	}
}

// TestVerifyLimits: the op limit bounds the work on one value, and a deep
// stack is modelled whole.
func TestVerifyLimits(t *testing.T) {
	t.Parallel()
	v := bytes.Repeat([]byte{opNone, opPop}, 1000)
	v = append(v, opNone)
	f := vFile(testEntryMemo("x", v, true, 0))
	rep, err := Verify(bytesReaderAt(f), int64(len(f)), nil, WithLimits(Limits{MaxOps: 100}))
	if err != nil {
		t.Fatal(err)
	}
	if fs := findings(rep, Fails); rep.OK() || len(fs) == 0 || !strings.Contains(fs[0].Msg, "more than 100 opcodes") {
		t.Errorf("%+v", rep)
	}
	// The names are pushed, buried under 200,000 items and uncovered again.
	v = pkl("os", "system", bytes.Repeat([]byte{opNone}, 200_000), bytes.Repeat([]byte{opPop}, 200_000), opStackGlobal, call)
	f = vFile(testEntryMemo("x", v, true, 0))
	rep, err = Verify(bytesReaderAt(f), int64(len(f)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.NotAllowed != 1 || len(rep.Structure) != 0 || findings(rep, Import)[0].Name != "system" {
		t.Errorf("%+v", rep)
	}
}

func TestVerifyTrust(t *testing.T) {
	t.Parallel()
	f := vFile(testEntryMemo("x", pkl("os", "system", opStackGlobal, call), true, 0))
	rep, err := Verify(bytesReaderAt(f), int64(len(f)), []pyval.Global{{Module: "os", Name: "system"}})
	if err != nil || !rep.OK() {
		t.Errorf("trusting os.system: %+v %v", rep, err)
	}
	// Trusting one global trusts what it returns, not other globals.
	f = vFile(testEntryMemo("x", pkl("os", "system", opStackGlobal, call, "os", "popen", opStackGlobal, opPop), true, 0))
	rep, err = Verify(bytesReaderAt(f), int64(len(f)), []pyval.Global{{Module: "os", Name: "system"}})
	if err != nil || rep.OK() || rep.NotAllowed != 1 {
		t.Errorf("trusting os.system, os.popen imported: %+v %v", rep, err)
	}
}

// TestVerifyMutations: mutated reference files never make Verify fail
// with an error or panic, and a report that passes names only allowed
// globals.
func TestVerifyMutations(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	files := verifyRefFiles(t)
	for i := 0; i < 3000; i++ {
		b, err := os.ReadFile(files[rng.IntN(len(files))])
		if err != nil {
			t.Fatal(err)
		}
		for k := rng.IntN(4) + 1; k > 0; k-- {
			switch rng.IntN(3) {
			case 0:
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			case 1:
				j := rng.IntN(len(b))
				b = append(b[:j], b[j+1:]...)
			case 2:
				j := rng.IntN(len(b))
				b = slices.Insert(b, j, byte(rng.IntN(256)))
			}
		}
		rep, err := Verify(bytesReaderAt(b), int64(len(b)), nil)
		if err != nil {
			t.Fatalf("mutation %d: %v", i, err)
		}
		if rep.OK() {
			for _, g := range rep.Findings {
				if bad(g) {
					t.Fatalf("mutation %d: ok report with %+v", i, g)
				}
			}
		}
	}
}

// FuzzVerify: Verify never fails but on I/O, never panics, keeps every
// offset inside the file, and when it passes, the file reads: the Reader
// opens it and every key decodes (or exceeds a limit), as plain data.
func FuzzVerify(f *testing.F) {
	for _, b := range referenceFiles(f) {
		f.Add(b)
	}
	for _, c := range maliciousFiles() {
		f.Add(c.file)
	}
	for _, h := range hostileFiles() {
		f.Add(h.file)
	}
	g := &pgen{rng: rand.New(rand.NewPCG(3, 3))}
	for range 30 {
		f.Add(g.file().data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		rep, err := Verify(bytesReaderAt(data), size, nil, WithLimits(fuzzLimits))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		for _, fi := range rep.Findings {
			if fi.Offset < 0 || fi.Offset > size || fi.Entry >= size {
				t.Fatalf("finding outside the file: %+v", fi)
			}
			if strings.Contains(fi.Msg, "internal error") {
				t.Fatalf("%+v", fi)
			}
		}
		for _, p := range rep.Structure {
			if p.Offset < 0 || p.Offset > size || strings.Contains(p.Msg, "internal error") {
				t.Fatalf("structure error outside the file: %v", p)
			}
		}
		if !rep.OK() {
			return
		}
		r, err := newReaderBytes(data, WithLimits(fuzzLimits))
		if err != nil {
			t.Fatalf("verify passes, NewReader fails: %v", err)
		}
		for _, k := range r.Keys() {
			v, err := r.Get(k)
			if err != nil {
				if !errors.Is(err, ErrLimit) {
					t.Fatalf("verify passes, key %q: %v", k, err)
				}
				continue
			}
			if hasObject(v) {
				t.Fatalf("verify passes, key %q holds an object of a global outside the allow-list: %#v", k, v)
			}
		}
	})
}

// hasObject tells whether a decoded value holds, anywhere, an Object made
// by a global outside the allow-list (others are plain data the package
// does not decode: ranges, dicts keyed by them).
func hasObject(v any) bool {
	switch v := v.(type) {
	case pyval.Object:
		_, allowed := allowedGlobals[[2]string{v.Module, v.Name}]
		switch v.Module + "." + v.Name {
		case "builtins.set", "builtins.frozenset", "builtins.dict", "builtins.slice", "builtins.range":
			allowed = true
		}
		if v.Module+"."+v.Name == "numpy.ma.MaskedArray" {
			allowed = true
		}
		return !allowed
	case []any:
		return slices.ContainsFunc(v, hasObject)
	case pyval.Tuple:
		return slices.ContainsFunc(v, hasObject)
	case pyval.Set:
		return slices.ContainsFunc(v, hasObject)
	case pyval.FrozenSet:
		return slices.ContainsFunc(v, hasObject)
	case pyval.Dict:
		for _, it := range v {
			if hasObject(it.Key) || hasObject(it.Value) {
				return true
			}
		}
	}
	return false
}
