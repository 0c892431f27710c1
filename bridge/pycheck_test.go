package bridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
	"mmpbridge/pyval"
)

// This file holds the bridge to what plain pickle.load does: files are
// loaded by pickle.load in a child Python (testdata/pycheck.py, a forked
// process per file, numpy 1.x and 2.x), and every key the bridge reads must
// be what pickle.load gives.

// pmDesc is the exact description of a value the bridge decoded, in the
// form testdata/pycheck.py compares with what pickle.load gives.
func pmDesc(v any) any {
	switch v := v.(type) {
	case nil:
		return map[string]any{"t": "none"}
	case bool:
		return map[string]any{"t": "bool", "v": v}
	case int64:
		return map[string]any{"t": "int", "v": pyHex(big.NewInt(v))}
	case *big.Int:
		return map[string]any{"t": "int", "v": pyHex(v)}
	case float64:
		return map[string]any{"t": "float", "v": fmt.Sprintf("%016x", math.Float64bits(v))}
	case complex128:
		return map[string]any{"t": "complex", "v": []string{fmt.Sprintf("%016x", math.Float64bits(real(v))), fmt.Sprintf("%016x", math.Float64bits(imag(v)))}}
	case string:
		return map[string]any{"t": "str", "v": hex.EncodeToString([]byte(v))}
	case []byte:
		return map[string]any{"t": "bytes", "v": hex.EncodeToString(v)}
	case pyval.ByteArray:
		return map[string]any{"t": "bytearray", "v": hex.EncodeToString(v)}
	case []any:
		return map[string]any{"t": "list", "v": pmSeq(v)}
	case pyval.Tuple:
		return map[string]any{"t": "tuple", "v": pmSeq(v)}
	case pyval.Set:
		return map[string]any{"t": "set", "v": pmSeq(v)}
	case pyval.FrozenSet:
		return map[string]any{"t": "frozenset", "v": pmSeq(v)}
	case pyval.Dict:
		items := make([]any, len(v))
		for i, it := range v {
			items[i] = []any{pmDesc(it.Key), pmDesc(it.Value)}
		}
		return map[string]any{"t": "dict", "v": items}
	case pyval.OrderedDict:
		d := pmDesc(pyval.Dict(v)).(map[string]any)
		d["t"] = "OrderedDict"
		return d
	case Scalar:
		switch v.DType.Kind {
		case 'U':
			s, _ := v.text()
			return map[string]any{"t": "scalar", "kind": "U", "v": hex.EncodeToString([]byte(s))}
		case 'S':
			return map[string]any{"t": "scalar", "kind": "S", "v": hex.EncodeToString(v.Value().([]byte))}
		}
		d := v.DType
		raw := swapToLE(d, v.Raw)
		d.ByteOrder = leOrder(d)
		// The padding of x87 long doubles is not kept by numpy's scalars.
		switch {
		case d.Kind == 'f' && d.ItemSize == 16:
			raw = raw[:10]
		case d.Kind == 'c' && d.ItemSize == 32:
			raw = append(raw[:10:10], raw[16:26]...)
		}
		return map[string]any{"t": "scalar", "dtype": d.String(), "v": hex.EncodeToString(zeroPadding(d, raw))}
	case DType:
		v.ByteOrder = leOrder(v)
		return map[string]any{"t": "dtype", "v": v.String()}
	case *Array:
		return pmArray(v)
	case *Masked:
		d := map[string]any{"t": "masked", "data": pmArray(v.Data), "mask": pmArray(v.Mask), "fill": nil}
		if f, ok := v.Fill.(*Array); ok {
			fd := f.DType
			fd.ByteOrder = leOrder(fd)
			d["fill"] = map[string]any{"dtype": fd.String(), "v": hex.EncodeToString(swapToLE(f.DType, f.Bytes()))}
		}
		return d
	case pyval.Object:
		return map[string]any{"t": "opaque", "module": v.Module, "name": v.Name}
	}
	panic(fmt.Sprintf("pmDesc: %T", v))
}

func pmSeq(v []any) []any {
	out := make([]any, len(v))
	for i, x := range v {
		out[i] = pmDesc(x)
	}
	return out
}

// pyHex is Python's hex(): 0x1f, -0x1f.
func pyHex(b *big.Int) string {
	if b.Sign() < 0 {
		return "-0x" + new(big.Int).Neg(b).Text(16)
	}
	return "0x" + b.Text(16)
}

func leOrder(d DType) byte {
	if d.ByteOrder == '>' {
		return '<'
	}
	return d.ByteOrder
}

// swapToLE returns the bytes of elements of dtype d in little-endian order.
func swapToLE(d DType, b []byte) []byte {
	out := bytes.Clone(b)
	if d.ByteOrder != '>' {
		return out
	}
	w := d.ItemSize
	switch d.Kind {
	case 'c':
		w = d.ItemSize / 2
	case 'U':
		w = 4
	}
	for i := 0; i+w <= len(out); i += w {
		for a, z := i, i+w-1; a < z; a, z = a+1, z-1 {
			out[a], out[z] = out[z], out[a]
		}
	}
	return out
}

// zeroPadding zeroes the bytes of elements of a structured dtype that no
// field covers: numpy does not keep padding (copies and scalars leave it
// undefined), so pycheck.py compares structured values with it zeroed.
func zeroPadding(d DType, b []byte) []byte {
	if d.layout == "" || d.ItemSize == 0 {
		return b
	}
	cover := make([]bool, d.ItemSize)
	var mark func(d DType, off int)
	mark = func(d DType, off int) {
		if fs := d.Fields(); fs != nil {
			for _, f := range fs {
				mark(f.DType, off+f.Offset)
			}
			return
		}
		if base, shape, ok := d.SubArray(); ok && base.layout != "" {
			n := 1
			for _, s := range shape {
				n *= s
			}
			for i := range n {
				mark(base, off+i*base.ItemSize)
			}
			return
		}
		for i := off; i < off+d.ItemSize && i < len(cover); i++ {
			cover[i] = true
		}
	}
	mark(d, 0)
	for i := range b {
		if !cover[i%d.ItemSize] {
			b[i] = 0
		}
	}
	return b
}

func pmArray(a *Array) any {
	var c bytes.Buffer
	if err := a.WriteC(&c); err != nil {
		panic(err)
	}
	d := a.DType
	d.ByteOrder = leOrder(d)
	order := "C"
	if (ArrayHeader{Shape: a.Shape, Fortran: a.Fortran}).isFortranFlag() {
		order = "F"
	}
	sum := sha256.Sum256(zeroPadding(a.DType, swapToLE(a.DType, c.Bytes())))
	shape := append([]int{}, a.Shape...)
	return map[string]any{"t": "array", "dtype": d.String(), "shape": shape, "order": order, "sha": hex.EncodeToString(sum[:])}
}

// pmCase is one file for pycheck.py: the bridge's description of every
// live key (nil where it refuses the key).
type pmCase struct {
	Path string         `json:"path"`
	Keys map[string]any `json:"keys"`
	// refused: the bridge refuses the whole file; err is why.
	refused error
}

// pmRead describes a file as the bridge reads it.
func pmRead(t testing.TB, path string) pmCase {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := pmCase{Path: path, Keys: map[string]any{}}
	r, err := newReaderBytes(b)
	if err != nil {
		c.refused = err
		return c
	}
	for _, k := range r.Keys() {
		v, err := r.Get(k)
		if err != nil {
			c.Keys[k] = nil
			continue
		}
		c.Keys[k] = pmDesc(v)
	}
	return c
}

type pmResult struct {
	Status     string   `json:"status"` // loaded, raised, crashed, timeout
	Error      string   `json:"error"`
	Mismatches []string `json:"mismatches"`
}

// pmCheck loads every case with pickle.load in env and returns the results
// by path.
func pmCheck(t testing.TB, env *pyrun.Env, cases []pmCase) map[string]pmResult {
	t.Helper()
	in := filepath.Join(t.TempDir(), "cases.json")
	b, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := env.Run(t, "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
		filepath.Join("testdata", "pycheck.py"), in)
	var res struct {
		Numpy   string              `json:"numpy"`
		Results map[string]pmResult `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("pycheck.py output: %v\n%.2000s", err, out)
	}
	return res.Results
}

// hostile is a hand-made file that pickle.load and a per-entry reader see
// differently, or that is not plain data.
type hostile struct {
	name string
	file []byte
	// shared: the bridge must refuse the file (entries share memo slots).
	shared bool
	// python: what pickle.load does with it on both numpy versions, when
	// the test states it: "loaded", "raised", "crashed" ("" : either).
	python string
}

// hostileFiles are the classes of issue 8, each built by hand.
func hostileFiles() []hostile {
	sg := func(module, name string) []byte { return pkl(module, name, opStackGlobal) }
	dtypeNew := func(descr string) []byte {
		return pkl(sg("numpy", "dtype"), descr, opNewFalse, opNewTrue, opTuple3, opReduce)
	}
	state := func(order string, elsize, align, flags int32) []byte {
		return pkl(opMark, opBinInt1, 3, order, opNone, opNone, opNone, opBinInt, le32(elsize), opBinInt, le32(align), opBinInt, le32(flags), opTuple, opBuild)
	}
	scalar := func(dt []byte, raw []byte) []byte {
		return pkl(sg("numpy.core.multiarray", "scalar"), dt, opShortBinBytes, len(raw), raw, opTuple2, opReduce)
	}
	reconstruct := pkl(sg("numpy.core.multiarray", "_reconstruct"), sg("numpy", "ndarray"), opBinInt1, 0, opTuple1, opShortBinBytes, 1, 'b', opTuple3, opReduce)
	arrayState := func(shape []byte, dt []byte, data []byte) []byte {
		return pkl(opMark, opBinInt1, 1, shape, dt, opNewFalse, data, opTuple, opBuild)
	}
	f8 := func(vals ...float64) []byte {
		var b []byte
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	bytesOp := func(b []byte) []byte { return pkl(opBinBytes, le32(int32(len(b))), b) }
	f8array := pkl(reconstruct, arrayState(shapeTuple(2, 3), pkl(dtypeNew("f8"), state("<", -1, -1, 0)), bytesOp(f8(0, 1, 2, 3, 4, 5))))
	junk := []byte{0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0, 0}
	live := func(key string, v []byte, memo int32) []byte { return testEntryMemo(key, v, true, memo) }
	dead := func(key string, v []byte, memo int32) []byte { return testEntryMemo(key, v, false, memo) }
	return []hostile{
		// Verify bypass by arguments: allowed names, other arguments.
		{name: "object dtype with the pointer flags dropped, scalar of a junk pointer", python: "crashed",
			file: testFile(live("x", scalar(pkl(dtypeNew("O8"), state("|", -1, -1, 0)), junk), 0))},
		{name: "object dtype with numpy's own state, scalar of a junk pointer",
			file: testFile(live("x", scalar(pkl(dtypeNew("O8"), state("|", -1, -1, 63)), junk), 0))},
		{name: "float dtype with object flags", python: "raised",
			file: testFile(live("x", scalar(pkl(dtypeNew("f8"), state("<", -1, -1, 63)), f8(1)), 0))},
		{name: "str dtype with an element size numpy never writes",
			file: testFile(live("x", scalar(pkl(dtypeNew("U3"), state("<", 4000, 4, 8)), make([]byte, 12)), 0))},
		{name: "dtype with fields", file: testFile(live("x", pkl(dtypeNew("f8"),
			opMark, opBinInt1, 3, "<", opNone, pkl("a", opTuple1), opEmptyDict, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0, opTuple, opBuild), 0))},
		{name: "dtype byte order '='", file: testFile(live("x", scalar(pkl(dtypeNew("f8"), state("=", -1, -1, 0)), f8(2)), 0)), python: "loaded"},
		{name: "dtype built twice", file: testFile(live("x", pkl(dtypeNew("f8"), state("<", -1, -1, 0), opMark, opBinInt1, 3, ">", opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0, opTuple, opBuild), 0))},
		{name: "object array (a list payload)", file: testFile(live("x", pkl(reconstruct, arrayState(shapeTuple(2), pkl(dtypeNew("O8"), state("|", -1, -1, 63)),
			pkl(opEmptyList, opMark, opBinInt1, 1, opBinInt1, 2, opAppends))), 0)), python: "loaded"},
		{name: "array of an unbuilt dtype", file: testFile(live("x", pkl(reconstruct, arrayState(shapeTuple(1), dtypeNew("f8"), bytesOp(f8(1)))), 0)), python: "loaded"},
		{name: "scalar from too many bytes", file: testFile(live("x", scalar(pkl(dtypeNew("f8"), state("<", -1, -1, 0)), f8(1, 2)), 0)), python: "loaded"},
		{name: "scalar from too few bytes", file: testFile(live("x", scalar(pkl(dtypeNew("f8"), state("<", -1, -1, 0)), []byte{1}), 0)), python: "raised"},
		{name: "array rebuilt after it is used", file: testFile(live("x", pkl(opEmptyList, f8array, opBinPut, 1, opAppend,
			opBinGet, 1, opMark, opBinInt1, 1, shapeTuple(4), dtypeNew("i2"), state("<", -1, -1, 0), opNewFalse, bytesOp([]byte{1, 0, 2, 0, 3, 0, 4, 0}), opTuple, opBuild, opPop), 2)), python: "loaded"},
		{name: "item assignment into an array", file: testFile(live("x", pkl(f8array, opBinInt1, 0, opBinFloat, []byte{0x40, 0x85, 0x38, 0, 0, 0, 0, 0}, opSetItem), 0)), python: "loaded"},
		{name: "mmappickle fromstring of object", file: testFile(live("x", mmpArray(f8(1), "object", shapeTuple(1)), 0)), python: "raised"},

		// Amplification: a small file that makes pickle.load copy or
		// allocate far more than it holds.
		{name: "one 70 KB bytes made into 100 bytearrays", python: "loaded",
			file: testFile(live("x", pkl(sg("builtins", "bytearray"), opBinPut, 1, opPop, bytesOp(make([]byte, 70_000)), opBinPut, 2, opPop,
				opEmptyList, opMark, bytes.Repeat(pkl(opBinGet, 1, opBinGet, 2, opTuple1, opReduce), 100), opAppends), 3))},
		{name: "a memo index past 2**26", python: "loaded",
			file: testFile(live("x", pkl(opNone, opLongBinPut, le32(1<<26+1)), 1<<26+2))},

		// Cross-entry memo: pickle.load runs the whole file with one memo.
		{name: "a deleted entry's slot read through MEMOIZE's file-wide index", shared: true, python: "loaded",
			file: testFile(dead("old", pkl("rm -rf /nonexistent-dir", opBinPut, 0), 1),
				live("cmd", pkl("echo hello", opMemoize, opPop, opBinGet, 0), 2))},
		{name: "an array whose data comes from another entry's memo slot", shared: true, python: "loaded",
			file: testFile(live("a", pkl(opShortBinBytes, 48, bytes.Repeat([]byte{0x9a, 2, 0, 0, 0, 0, 0, 0}, 6), opBinPut, 1), 2),
				live("b", pkl(reconstruct, opMark, opBinInt1, 1, shapeTuple(6), dtypeNew("i8"), state("<", -1, -1, 0), opNewFalse,
					opShortBinBytes, 48, bytes.Repeat([]byte{0, 0, 0, 0, 0, 0, 0, 0}, 6), opMemoize, opPop, opBinGet, 1, opTuple, opBuild), 3))},
		{name: "a later entry rebuilds an earlier array", shared: true, python: "loaded",
			file: testFile(live("a", pkl(f8array, opBinPut, 1), 2),
				live("b", pkl(opBinGet, 1, opMark, opBinInt1, 1, shapeTuple(4), dtypeNew("i2"), state("<", -1, -1, 0), opNewFalse,
					bytesOp([]byte{1, 0, 2, 0, 3, 0, 4, 0}), opTuple, opBuild, opPop, opNone), 3))},
		{name: "a later entry fills an earlier dict", shared: true, python: "loaded",
			file: testFile(live("a", pkl(opEmptyDict, opBinPut, 1), 2),
				live("b", pkl(opBinGet, 1, "injected", opBinInt1, 1, opSetItem, opPop, opNone), 3))},
		{name: "a later entry overwrites an earlier entry's slot", shared: true, python: "loaded",
			file: testFile(live("a", pkl("x", opBinPut, 1), 2), live("b", pkl("y", opBinPut, 1), 2))},

		// Structured dtypes: numpy keeps the fields dict it is given, and
		// reads a field's bytes as its dtype says.
		{name: "structured dtype whose fields dict gets an object field after it is built, scalar of a junk pointer",
			file: testFile(live("x", pkl(structNew(dtypeNew, pkl(opEmptyDict, opBinPut, 1, opMark, "x", dtypeNew("f8"), state("<", -1, -1, 0), opBinInt1, 0, opTuple2, opSetItems), 16, 1),
				opBinPut, 2, opPop,
				opBinGet, 1, "x", dtypeNew("O8"), state("|", -1, -1, 63), opBinInt1, 0, opTuple2, opSetItem, opPop,
				scalar(pkl(opBinGet, 2), junk)), 3))},
		{name: "structured dtype with an object field, scalar of a junk pointer",
			file: testFile(live("x", scalar(structNew(dtypeNew, pkl(opEmptyDict, opMark, "x", dtypeNew("O8"), state("|", -1, -1, 63), opBinInt1, 0, opTuple2, opSetItems), 63|16, 1), junk), 0))},
		{name: "structured dtype with the object flags on plain fields", python: "raised",
			file: testFile(live("x", scalar(structNew(dtypeNew, pkl(opEmptyDict, opMark, "x", dtypeNew("f8"), state("<", -1, -1, 0), opBinInt1, 0, opTuple2, opSetItems), 63, 1), f8(1)), 0))},
		{name: "structured dtype with a field past its item",
			file: testFile(live("x", scalar(structNew(dtypeNew, pkl(opEmptyDict, opMark, "x", dtypeNew("f8"), state("<", -1, -1, 0), opBinInt1, 4, opTuple2, opSetItems), 16, 1), f8(1)), 0))},
		{name: "structured dtype with a field title",
			file: testFile(live("x", scalar(structNew(dtypeNew, pkl(opEmptyDict, opMark, "x", dtypeNew("f8"), state("<", -1, -1, 0), opBinInt1, 0, "t", opTuple3, opSetItems), 16, 1), f8(1)), 0))},

		// Amplification through the memo: one long object used at each of
		// 2,000 BINGETs (reading must pay for it once: shared_test.go).
		{name: "a 20 KB str as the dtype name of 2,000 fromstring calls", python: "raised",
			file: testFile(live("x", pkl(sg("numpy.core.multiarray", "fromstring"), opBinPut, 1, opShortBinBytes, 8, f8(1), opBinPut, 2,
				binUni(strings.Repeat("f", 20_000)), opBinPut, 3, opPop, opPop, opPop,
				opMark, bytes.Repeat(pkl(opBinGet, 1, opBinGet, 2, opBinGet, 3, opTuple2, opReduce), 2000), opList), 4))},
		{name: "one 20 KB bytes made into 2,000 numpy scalars", python: "loaded",
			file: testFile(live("x", pkl(sg("numpy.core.multiarray", "scalar"), opBinPut, 1, dtypeNew("S20000"), state("|", 20_000, 1, 0), opBinPut, 2,
				bytesOp(make([]byte, 20_000)), opBinPut, 3, opPop, opPop, opPop,
				opMark, bytes.Repeat(pkl(opBinGet, 1, opBinGet, 2, opBinGet, 3, opTuple2, opReduce), 2000), opList), 4))},
	}
}

// structNew is numpy.dtype("V8") built with the structured state
// (3, '|', None, ('x',), fields, 8, align, flags).
func structNew(dtypeNew func(string) []byte, fields []byte, flags, align int32) []byte {
	return pkl(dtypeNew("V8"), opMark, opBinInt1, 3, "|", opNone, "x", opTuple1, fields,
		opBinInt, le32(8), opBinInt, le32(align), opBinInt, le32(flags), opTuple, opBuild)
}

// TestHostileFilesPython: for every hostile file, verify fails, and every
// key the bridge reads is what pickle.load gives, on numpy 1.x and 2.x, in
// a child process.
func TestHostileFilesPython(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var cases []pmCase
	files := hostileFiles()
	for i, h := range files {
		p := filepath.Join(dir, fmt.Sprintf("h%02d.mmpkl", i))
		if err := os.WriteFile(p, h.file, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(bytesReaderAt(h.file), int64(len(h.file)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			t.Errorf("%s: verify passes: %+v", h.name, rep)
		}
		c := pmRead(t, p)
		if h.shared != (c.refused != nil && errors.Is(c.refused, ErrSharedMemo)) {
			t.Errorf("%s: shared %v, the bridge refuses with %v", h.name, h.shared, c.refused)
		}
		if h.shared && !strings.Contains(c.refused.Error(), "memo slot") {
			t.Errorf("%s: %v does not name the memo slot", h.name, c.refused)
		}
		if rep.Problems == 0 {
			t.Errorf("%s: no problem reported: %+v", h.name, rep.Findings)
		}
		cases = append(cases, c)
	}
	for _, env := range pyrun.Numpys(t) {
		res := pmCheck(t, env, cases)
		for i, h := range files {
			r := res[cases[i].Path]
			if h.python != "" && r.Status != h.python {
				t.Errorf("%s (%s): pickle.load %s %s, want %s", h.name, env, r.Status, r.Error, h.python)
			}
			for _, m := range r.Mismatches {
				t.Errorf("%s (%s): %s", h.name, env, m)
			}
			t.Logf("%s (%s): pickle.load %s %s; bridge: %.200v", h.name, env, r.Status, r.Error, cases[i].Keys)
		}
	}
}
