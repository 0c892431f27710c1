package bridge

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var updatePickles = flag.Bool("update", false, "rewrite testdata/pickles")

// plainFiles are hand-made files of plain data in the forms per-entry
// decoders got wrong: text opcodes, escapes, keys equal in Python, NaN keys
// shared through the memo, big ints, numpy scalars and dtypes as values.
func plainFiles() []hostile {
	sg := func(module, name string) []byte { return pkl(module, name, opStackGlobal) }
	f8state := pkl(opMark, opBinInt1, 3, "<", opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0, opTuple, opBuild)
	nan := pkl(opBinFloat, []byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 0})
	return []hostile{
		{name: "text ints, longs and floats", file: testFile(testEntry("x", pkl(opMark,
			vline(opInt, "010"), vline(opInt, "00"), vline(opInt, "-0"), vline(opInt, "1_0"), vline(opInt, " 5"), vline(opInt, "0x1F"),
			vline(opInt, "99999999999999999999"), vline(opInt, "5\x00junk"), vline(opLong, "10L"), vline(opLong, "0x10L"),
			vline(opFloat, "1e-400"), vline(opFloat, "-nan"), vline(opFloat, "5."), vline(opFloat, "2.5\x00x"), opList), true))},
		{name: "escaped strings", file: testFile(testEntry("x", pkl(opMark,
			vline(opString, `'a\x41\101\n'`), vline(opString, `"it's"`), vline(opUnicode, `\u0041\\u0041\x41`+"\xe9"),
			vline(opUnicode, `\ud800`), opShortBinString, 3, []byte("abc"), opShortBinUni, 3, []byte{0xed, 0xa0, 0x80}, opTuple), true))},
		{name: "keys equal in Python", file: testFile(testEntry("x", pkl(opEmptyDict, opMark,
			opBinInt1, 1, "int", opBinFloat, []byte{0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, "float", opNewTrue, "bool",
			opBinInt1, 2, "two", vline(opInt, "2"), "two again", opSetItems), true))},
		{name: "NaN keys, shared and not", file: testFile(testEntry("x", pkl(opEmptyDict, opMark,
			nan, opBinPut, 1, "first", opBinGet, 1, "same NaN", nan, "another NaN", opSetItems), true))},
		{name: "sets with equal items", file: testFile(testEntry("x", pkl(opEmptySet, opMark,
			opBinInt1, 1, opNewTrue, opBinFloat, []byte{0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, "a", "a", opAddItems), true))},
		{name: "a LONG4 of 100 KB", file: testFile(testEntry("x", pkl(opLong4, le32(100_000), bytes.Repeat([]byte{0x5a}, 100_000)), true))},
		{name: "numpy scalars and a dtype", file: testFile(testEntry("x", pkl(opMark,
			sg("numpy.core.multiarray", "scalar"), sg("numpy", "dtype"), "f8", opNewFalse, opNewTrue, opTuple3, opReduce, f8state,
			opShortBinBytes, 8, []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x3f}, opTuple2, opReduce,
			sg("numpy", "dtype"), "f8", opNewFalse, opNewTrue, opTuple3, opReduce, f8state, opTuple), true))},
		{name: "an OrderedDict and a complex", file: testFile(testEntry("x", pkl(
			sg("collections", "OrderedDict"), opEmptyTuple, opReduce, opMark, "z", opBinInt1, 1, "a",
			sg("builtins", "complex"), opBinInt1, 1, opBinInt1, 2, opTuple2, opReduce, opSetItems), true))},
		{name: "a 20 KB str shared as 1,000 dict keys and 1,000 tuple keys", file: testFile(testEntryMemo("x", pkl(
			binUni(strings.Repeat("k", 20_000)), opBinPut, 1, opPop, opEmptyDict, opMark,
			bytes.Repeat(pkl(opBinGet, 1, opBinInt1, 1, opBinGet, 1, opTuple1, opBinInt1, 2), 1000), opSetItems), true, 2))},
	}
}

// TestPicklesTestdata keeps testdata/pickles in step with the builders:
// hostile/ (verify fails) and plain/ (verify passes), for the command
// line's tests. go test -run TestPicklesTestdata -update rewrites them.
func TestPicklesTestdata(t *testing.T) {
	want := map[string][]byte{}
	name := func(dir string, i int, s string) string {
		s = regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(s), "-")
		return filepath.Join("testdata", "pickles", dir, fmt.Sprintf("%02d-%s.mmpkl", i, strings.Trim(s, "-")))
	}
	for i, h := range hostileFiles() {
		want[name("hostile", i, h.name)] = h.file
	}
	for i, c := range maliciousFiles() {
		want[name("hostile", 100+i, c.name)] = c.file
	}
	for i, p := range plainFiles() {
		want[name("plain", i, p.name)] = p.file
	}
	g := &pgen{rng: rand.New(rand.NewPCG(21, 1))}
	for i := 0; len(want) < 300; i++ {
		f := g.file()
		rep, err := Verify(bytesReaderAt(f.data), int64(len(f.data)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() && !pgenWarnsNumpy2(rep) {
			want[name("plain", 100+i, "random")] = f.data
		}
	}
	for _, dir := range []string{"hostile", "plain"} {
		have, _ := filepath.Glob(filepath.Join("testdata", "pickles", dir, "*.mmpkl"))
		for _, p := range have {
			if _, ok := want[p]; !ok {
				if *updatePickles {
					os.Remove(p)
					continue
				}
				t.Errorf("%s: no builder makes it (go test -run TestPicklesTestdata -update)", p)
			}
		}
	}
	for p, b := range want {
		if *updatePickles {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if have, err := os.ReadFile(p); err != nil || !bytes.Equal(have, b) {
			t.Errorf("%s: out of date (go test -run TestPicklesTestdata -update): %v", p, err)
		}
	}
	// And plain/ verifies, hostile/ does not.
	for p, b := range want {
		rep, err := Verify(bytesReaderAt(b), int64(len(b)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(p, "/plain/") != rep.OK() {
			t.Errorf("%s: verify %v: %+v %v", p, rep.OK(), rep.Findings, rep.Structure)
		}
	}
}
