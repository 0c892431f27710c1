package bridge

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
	"mmpbridge/pyval"
)

// Refuse, never guess (issue 19, 5): a file whose value pickle.load would
// give otherwise than the bridge shows it is refused by reading and fails
// verification: an entry stopped early at a limit, a bytearray changed after
// an array was built over it, keys CPython cannot compare (RecursionError),
// a memo index CPython cannot allocate. A masked array's datetime fill of
// another unit is shown converted, as numpy holds it.

// rfCase is a file of one of those classes.
type rfCase struct {
	name string
	file []byte
	opts []Option
	// is: the error NewReader (or, with key, Get, Array and KindOf of key)
	// must wrap; msg: words it must hold.
	is  error
	key string
	msg []string
	// python: what pickle.load does with the file on numpy 1.x and 2.x
	// ("" : not run), the error type it raises, or for "bytes" the hex of
	// the data of the array at pyPath (what pickle.load gives, unlike the
	// file's bytes).
	python string
	pyKey  string
	pyHex  string
}

// rfBuilders are the fragments the cases are made of.
type rfBuilders struct{}

func (rfBuilders) sg(module, name string) []byte { return pkl(module, name, opStackGlobal) }

func (b rfBuilders) dtype(descr string, order string) []byte {
	return pkl(b.sg("numpy", "dtype"), descr, opNewFalse, opNewTrue, opTuple3, opReduce,
		opMark, opBinInt1, 3, order, opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0, opTuple, opBuild)
}

// frombuffer is numpy 2's pickle of a u1 array of n bytes over the
// buffer buf (pushed by the caller's fragment).
func (b rfBuilders) frombuffer(buf []byte, n int64) []byte {
	return pkl(b.sg("numpy.core.numeric", "_frombuffer"), opMark, buf, b.dtype("u1", "|"), shapeTuple(n), "C", opTuple, opReduce)
}

func byteArray8(b []byte) []byte {
	return pkl(opByteArray8, binary.LittleEndian.AppendUint64(nil, uint64(len(b))), b)
}

// nestedTuples is (((0,),),) with depth tuples.
func nestedTuples(depth int) []byte {
	return append(pkl(opBinInt1, 0), bytes.Repeat([]byte{opTuple1}, depth)...)
}

// nestedFrozensets is frozenset({frozenset({... 0})}) with depth frozensets.
func nestedFrozensets(depth int) []byte {
	return append(append(bytes.Repeat([]byte{opMark}, depth), opBinInt1, 0), bytes.Repeat([]byte{opFrozenSet}, depth)...)
}

func rfCases() []rfCase {
	var b rfBuilders
	live := func(key string, v []byte, memo int32) []byte { return testEntryMemo(key, v, true, memo) }
	dead := func(key string, v []byte, memo int32) []byte { return testEntryMemo(key, v, false, memo) }
	data := []byte{1, 2, 3, 4}
	// An entry after the one that stops early that MEMOIZEs and reads
	// its own slot: with the first entry's memo writes missing, its
	// indices were off by one.
	after := live("b", pkl("after", opMemoize, opPop, opEmptyList, opMemoize, opBinGet, 1, opPop), 2)
	marks := func(n int) []byte {
		return pkl(bytes.Repeat([]byte{opMark}, n), opNone, opMemoize, bytes.Repeat([]byte{opPopMark}, n), opNone)
	}
	// The array over the bytearray (memo 0) in a list, then fragment
	// mutate run on the bytearray (GET 0 pushed), the list left.
	viewed := func(buf []byte, mutate ...any) []byte {
		return pkl(opEmptyList, b.frombuffer(pkl(buf, opBinPut, 0), int64(len(data))), opAppend, opBinGet, 0, pkl(mutate...), opPop)
	}
	mark := func(parts ...any) []byte { return pkl(opMark, pkl(parts...)) }
	keys := func(k1, k2 []byte) []byte { return pkl(opEmptyDict, k1, opNone, opSetItem, k2, opNone, opSetItem) }
	items := func(x1, x2 []byte) []byte { return pkl(opEmptySet, opMark, x1, x2, opAddItems) }
	longPut := func(i uint32) []byte { return pkl(opNone, opLongBinPut, binary.LittleEndian.AppendUint32(nil, i)) }
	dt := func(descr, unit string, count int32) []byte {
		return pkl(b.sg("numpy", "dtype"), descr, opNewFalse, opNewTrue, opTuple3, opReduce,
			opMark, opBinInt1, 4, "<", opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0,
			opEmptyDict, opMark, opShortBinBytes, len(unit), []byte(unit), opBinInt, le32(count), opBinInt1, 1, opBinInt1, 1, opTuple, opTuple2, opTuple, opBuild)
	}
	return []rfCase{
		// (a) An entry that stops early refuses the whole file.
		{name: "16,001 open MARKs, then a MEMOIZE", file: testFile(live("a", marks(16_001), 1), after),
			is: ErrLimit, msg: []string{`entry "a" at offset`, "stops early", "16000 open MARKs"}, python: "loaded"},
		{name: "a deleted entry with 16,001 open MARKs", file: testFile(dead("a", marks(16_001), 1), after),
			is: ErrLimit, msg: []string{`deleted entry "a"`, "stops early", "open MARKs"}, python: "loaded"},
		{name: "MARKs past a lower limit", file: testFile(live("a", marks(200), 1), after), opts: []Option{WithLimits(Limits{MaxDepth: 10})},
			is: ErrLimit, msg: []string{`entry "a"`, "160 open MARKs"}},
		{name: "opcodes past MaxOps", file: testFile(live("a", marks(20), 1), after), opts: []Option{WithLimits(Limits{MaxOps: 30})},
			is: ErrLimit, msg: []string{`entry "a"`, "more than 30 opcodes"}},
		{name: "bytes past MaxValueBytes", file: testFile(live("a", pkl(byteArray8(make([]byte, 5000)), opMemoize), 1), after), opts: []Option{WithLimits(Limits{MaxValueBytes: 4096})},
			is: ErrLimit, msg: []string{`entry "a"`, "stops early", "4096"}},
		{name: "the last entry stops early", file: testFile(after, live("c", marks(16_001), 3)),
			is: ErrLimit, msg: []string{`entry "c"`, "stops early"}, python: "loaded"},

		// (b) A bytearray changed after an array was built over it.
		{name: "SETITEM on the bytearray", file: testFile(live("x", viewed(byteArray8(data), opBinInt1, 0, opBinInt1, 0xff, opSetItem), 1)),
			is: ErrUnsupported, msg: []string{"SETITEM on a bytearray an array was built over"}, python: "bytes", pyHex: "ff020304"},
		{name: "SETITEMS on the bytearray", file: testFile(live("x", viewed(byteArray8(data), mark(opBinInt1, 1, opBinInt1, 0xee, opBinInt1, 3, opBinInt1, 0xdd), opSetItems), 1)),
			is: ErrUnsupported, msg: []string{"SETITEMS on a bytearray"}, python: "bytes", pyHex: "01ee03dd"},
		{name: "SETITEM of a slice", file: testFile(live("x", viewed(byteArray8(data),
			b.sg("builtins", "slice"), opBinInt1, 0, opBinInt1, 2, opNone, opTuple3, opReduce, opShortBinBytes, 2, []byte("\xaa\xbb"), opSetItem), 1)),
			is: ErrUnsupported, python: "bytes", pyHex: "aabb0304"},
		{name: "bytearray(bytes), then SETITEM", file: testFile(live("x", viewed(pkl(b.sg("builtins", "bytearray"), opShortBinBytes, 4, data, opTuple1, opReduce),
			opBinInt1, 3, opBinInt1, 9, opSetItem), 1)),
			is: ErrUnsupported, python: "bytes", pyHex: "01020309"},
		{name: "APPEND to the bytearray", file: testFile(live("x", viewed(byteArray8(data), opBinInt1, 5, opAppend), 1)),
			is: ErrUnsupported, msg: []string{"APPEND on a bytearray an array was built over"}, python: "BufferError"},
		{name: "APPENDS to the bytearray", file: testFile(live("x", viewed(byteArray8(data), mark(opBinInt1, 5), opAppends), 1)),
			is: ErrUnsupported, python: "BufferError"},
		{name: "SETITEM after READONLY_BUFFER", file: testFile(live("x", viewed(byteArray8(data), opReadOnlyBuffer, opPop, opBinGet, 0, opBinInt1, 2, opBinInt1, 7, opSetItem), 1)),
			is: ErrUnsupported, python: "bytes", pyHex: "01020704"},
		{name: "SETITEM into a datetime dtype's metadata", file: testFile(live("x", pkl(opEmptyList,
			b.sg("numpy.core.numeric", "_frombuffer"), opMark, opShortBinBytes, 8, make([]byte, 8),
			pkl(b.sg("numpy", "dtype"), "M8", opNewFalse, opNewTrue, opTuple3, opReduce,
				opMark, opBinInt1, 4, "<", opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0,
				opEmptyDict, opBinPut, 0, opMark, opShortBinBytes, 1, []byte("s"), opBinInt1, 1, opBinInt1, 1, opBinInt1, 1, opTuple, opTuple2, opTuple, opBuild),
			shapeTuple(1), "C", opTuple, opReduce, opAppend,
			opBinGet, 0, "x", opBinInt1, 1, opSetItem, opPop), 1)),
			is: ErrUnsupported, msg: []string{"metadata"}, python: "metadata"},

		// (c) Keys CPython cannot compare: RecursionError.
		{name: "two equal dict keys of 1000 tuples", file: testFile(live("x", keys(nestedTuples(1000), nestedTuples(1000)), 0)),
			is: ErrUnsupported, msg: []string{"RecursionError", "200"}, python: "RecursionError"},
		{name: "two equal set items of 1000 tuples", file: testFile(live("x", items(nestedTuples(1000), nestedTuples(1000)), 0)),
			is: ErrUnsupported, python: "RecursionError"},
		{name: "two equal frozenset items of 1000 tuples", file: testFile(live("x", pkl(opMark, nestedTuples(1000), nestedTuples(1000), opFrozenSet), 0)),
			is: ErrUnsupported, python: "RecursionError"},
		{name: "set(list) of two tuples of 1000", file: testFile(live("x", pkl(b.sg("builtins", "set"), opMark, nestedTuples(1000), nestedTuples(1000), opList, opTuple1, opReduce), 0)),
			is: ErrUnsupported, python: "RecursionError"},
		{name: "two equal keys of 1000 frozensets", file: testFile(live("x", keys(nestedFrozensets(1000), nestedFrozensets(1000)), 0)),
			is: ErrUnsupported, python: "RecursionError"},
		{name: "keys of 998 tuples, items shared below 10", file: testFile(live("x", keys(pkl(nestedTuples(10), opBinPut, 0, bytes.Repeat([]byte{opTuple1}, 988)),
			pkl(opBinGet, 0, bytes.Repeat([]byte{opTuple1}, 988))), 1)),
			is: ErrUnsupported},
		{name: "two equal dict keys of 998 tuples (RecursionError under a few frames)", file: testFile(live("x", keys(nestedTuples(998), nestedTuples(998)), 0)), is: ErrUnsupported},
		{name: "one key of 201 tuples", file: testFile(live("x", keys(nestedTuples(201), pkl(opBinInt1, 1)), 0)), is: ErrUnsupported, python: "loaded"},
		{name: "two equal keys of 300 tuples in a later entry", file: testFile(live("a", pkl(opNone), 0), live("x", keys(nestedTuples(300), nestedTuples(300)), 0)),
			is: ErrUnsupported, python: "loaded"},
		{name: "a key of 100 tuples holding one of 150", file: testFile(live("x", keys(append(nestedTuples(150), bytes.Repeat([]byte{opTuple1}, 100)...), pkl(opBinInt1, 1)), 0)),
			is: ErrUnsupported},

		// (d) Memo indices CPython cannot allocate.
		{name: "LONG_BINPUT 0xffffffff", file: testFile(live("x", longPut(0xffffffff), 0)), is: ErrUnsupported, msg: []string{"LONG_BINPUT 4294967295", "MiB for its memo"}, python: "MemoryError"},
		{name: "LONG_BINPUT 2^31", file: testFile(live("x", longPut(1<<31), 0)), is: ErrUnsupported, python: "MemoryError"},
		{name: "PUT 10^11", file: testFile(live("x", pkl(opNone, []byte("p100000000000\n")), 0)), is: ErrUnsupported, python: "MemoryError"},
		{name: "LONG_BINPUT 2^25 (refused, CPython needs 512 MiB)", file: testFile(live("x", longPut(1<<25), 0)), is: ErrUnsupported},
		{name: "LONG_BINPUT 0xffffffff in a deleted entry", file: testFile(dead("d", longPut(0xffffffff), 0), live("x", pkl(opNone), 0)), is: ErrUnsupported, python: "MemoryError"},

		// (e) A datetime fill of another unit numpy cannot convert exactly.
		{name: "datetime64[s] data, fill in years", file: testFile(live("x", maskedDT(dt("M8", "s", 1), dt("M8", "Y", 1), le64(3)), 0)), is: ErrUnsupported, msg: []string{"fill value"}, python: "loaded"},
		{name: "timedelta64[D] data, fill in months", file: testFile(live("x", maskedDT(dt("m8", "D", 1), dt("m8", "M", 1), le64(5)), 0)), is: ErrUnsupported, python: "loaded"},
		{name: "datetime64[ns] data, fill of 2^62 s (numpy wraps)", file: testFile(live("x", maskedDT(dt("M8", "ns", 1), dt("M8", "s", 1), le64(1<<62)), 0)), is: ErrUnsupported, python: "loaded"},
		{name: "datetime64[s] data, generic fill", file: testFile(live("x", maskedDT(dt("M8", "s", 1), dt("M8", "generic", 1), le64(5)), 0)), is: ErrUnsupported, python: ""},
	}
}

// maskedDT is numpy's pickle of a masked array of two datetimes (or
// timedeltas) of dtype data (a built dtype fragment), the fill a 0-d array
// of dtype fill holding fillRaw.
func maskedDT(data, fill []byte, fillRaw []byte) []byte {
	var b rfBuilders
	arr := func(dt []byte, shape any, raw []byte) []byte {
		return pkl(b.sg("numpy.core.multiarray", "_reconstruct"), b.sg("numpy", "ndarray"), opBinInt1, 0, opTuple1, opShortBinBytes, 1, 'b', opTuple3, opReduce,
			opMark, opBinInt1, 1, shape, dt, opNewFalse, opShortBinBytes, len(raw), raw, opTuple, opBuild)
	}
	raw := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 7), 1<<40)
	return pkl(b.sg("numpy.ma.core", "_mareconstruct"), opMark, b.sg("numpy.ma.core", "MaskedArray"), b.sg("numpy", "ndarray"), opBinInt1, 0, opTuple1, "b", opTuple, opReduce,
		opMark, opBinInt1, 1, shapeTuple(2), data, opNewFalse, opShortBinBytes, 16, raw, opShortBinBytes, 2, []byte{0, 1},
		arr(fill, opEmptyTuple, fillRaw), opTuple, opBuild)
}

// TestRefuseNeverGuess: every case fails verification and is refused by
// reading, with an error that names the cause; pickle.load really does
// what the case says on numpy 1.x and 2.x.
func TestRefuseNeverGuess(t *testing.T) {
	t.Parallel()
	cases := rfCases()
	dir := t.TempDir()
	for i := range cases {
		c := &cases[i]
		rep, err := Verify(bytesReaderAt(c.file), int64(len(c.file)), nil, c.opts...)
		if err != nil {
			t.Fatalf("%s: Verify: %v", c.name, err)
		}
		if rep.OK() {
			t.Errorf("%s: verify passes", c.name)
		}
		r, err := newReaderBytes(c.file, c.opts...)
		if err == nil {
			for _, k := range r.Keys() {
				_, gerr := r.Get(k)
				_, aerr := r.Array(k)
				_, kerr := r.KindOf(k)
				if gerr == nil || kerr == nil || !errors.Is(aerr, c.is) {
					t.Errorf("%s: key %q read: Get %v, Array %v, KindOf %v", c.name, k, gerr, aerr, kerr)
				}
				err = gerr
			}
		}
		if !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want %v", c.name, err, c.is)
			continue
		}
		checkFormatError(t, c.name, err, int64(len(c.file)))
		for _, w := range c.msg {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", c.name, err, w)
			}
		}
		if testing.Verbose() {
			t.Logf("%s: %v", c.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%02d.mmpkl", i)), c.file, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, env := range pyrun.Numpys(t) {
		res := rfPython(t, env, dir, len(cases))
		for i, c := range cases {
			got := res[i]
			switch c.python {
			case "":
			case "bytes":
				if got != "bytes:"+c.pyHex {
					t.Errorf("%s (%s): pickle.load gives %s, want bytes:%s (not the file's %x)", c.name, env, got, c.pyHex, []byte{1, 2, 3, 4})
				}
			default:
				if got != c.python {
					t.Errorf("%s (%s): pickle.load: %s, want %s", c.name, env, got, c.python)
				}
			}
		}
	}
}

// rfPython loads each file rNN.mmpkl of dir with plain pickle.load in a
// child process of its own, with 4 GiB of address space, and says what it
// did: loaded, bytes:HEX (the
// data of the array in key "x", a list holding it), metadata (key "x"'s
// array has a dtype with metadata), or the name of the exception raised.
func rfPython(t *testing.T, env *pyrun.Env, dir string, n int) []string {
	t.Helper()
	const script = `
import json, os, pickle, resource, sys, warnings
import numpy as np
out = []
for i in range(int(sys.argv[2])):
    path = os.path.join(sys.argv[1], "r%02d.mmpkl" % i)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        # 4 GiB of address space: a memo CPython cannot allocate raises
        # MemoryError here whatever the machine's memory.
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with open(path, "rb") as f:
                    d = pickle.load(f)
            x = d.get("x")
            res = "loaded"
            if isinstance(x, list) and x and isinstance(x[0], np.ndarray):
                res = "metadata" if x[0].dtype.metadata else "bytes:" + x[0].tobytes().hex()
        except BaseException as e:
            res = type(e).__name__
        os.write(w, res.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    out.append(data.decode() if os.WIFEXITED(status) and data else "crashed:%d" % status)
print(json.dumps(out))
`
	var res []string
	if err := json.Unmarshal([]byte(env.Run(t, script, dir, fmt.Sprint(n))), &res); err != nil || len(res) != n {
		t.Fatalf("%s: %v %v", env, res, err)
	}
	return res
}

// TestRefuseBoundaries: what lies just inside each bound reads, verifies
// and is what pickle.load gives.
func TestRefuseBoundaries(t *testing.T) {
	t.Parallel()
	var b rfBuilders
	keys := func(k1, k2 []byte) []byte { return pkl(opEmptyDict, k1, opNone, opSetItem, k2, opNone, opSetItem) }
	data := []byte{1, 2, 3, 4}
	for _, c := range []struct {
		name string
		file []byte
	}{
		{"two equal keys of 200 tuples", testFile(testEntry("x", keys(nestedTuples(200), nestedTuples(200)), true))},
		{"two equal keys of 199 tuples holding a frozenset", testFile(testEntry("x", keys(
			append(nestedFrozensets(1), bytes.Repeat([]byte{opTuple1}, 199)...), append(nestedFrozensets(1), bytes.Repeat([]byte{opTuple1}, 199)...)), true))},
		{"LONG_BINPUT 2^25-1", testFile(testEntry("x", pkl(opNone, opLongBinPut, le32(1<<25-1)), true))},
		{"16,000 open MARKs", testFile(testEntryMemo("a", pkl(bytes.Repeat([]byte{opMark}, 16_000), opNone, opMemoize, bytes.Repeat([]byte{opPopMark}, 16_000), opNone), true, 1),
			testEntryMemo("b", pkl("after", opMemoize, opPop, opEmptyList, opMemoize, opBinGet, 1, opPop), true, 2))},
		{"a bytearray changed before the array", testFile(testEntry("x", pkl(opEmptyList, byteArray8(data), opBinPut, 0, opPop,
			opBinGet, 0, opBinInt1, 0, opBinInt1, 9, opSetItem, opPop, b.frombuffer(pkl(opBinGet, 0), 4), opAppend), true))},
		{"a bytearray under an array, read again", testFile(testEntry("x", pkl(opEmptyList, b.frombuffer(pkl(byteArray8(data), opBinPut, 0), 4), opAppend,
			opBinGet, 0, opAppend), true))},
	} {
		rep, err := Verify(bytesReaderAt(c.file), int64(len(c.file)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.name != "a bytearray changed before the array" && !rep.OK() {
			t.Errorf("%s: verify fails: %+v", c.name, rep.Findings)
		}
		r, err := newReaderBytes(c.file)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for _, k := range r.Keys() {
			if _, err := r.Get(k); err != nil {
				t.Errorf("%s: key %q: %v", c.name, k, err)
			}
		}
	}
}

// TestMaskedDatetimeFill: a masked array's datetime64 or timedelta64 fill
// of another unit (or byte order) is held converted to the data's dtype as
// numpy converts it: floor division, NaT kept. pycheck.py compares the
// fill with pickle.load's on numpy 1.x and 2.x.
func TestMaskedDatetimeFill(t *testing.T) {
	t.Parallel()
	var b rfBuilders
	dt := func(descr, order, unit string, count int32) []byte {
		return pkl(b.sg("numpy", "dtype"), descr, opNewFalse, opNewTrue, opTuple3, opReduce,
			opMark, opBinInt1, 4, order, opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0,
			opNone, opMark, opShortBinBytes, len(unit), []byte(unit), opBinInt, le32(count), opBinInt1, 1, opBinInt1, 1, opTuple, opTuple2, opTuple, opBuild)
	}
	nat := int64(math.MinInt64)
	cases := []struct {
		name         string
		data, fill   []byte
		v            int64
		want         int64
		wantBigEndin bool
		fillBE       bool
	}{
		{"s from 1500 ms", dt("M8", "<", "s", 1), dt("M8", "<", "ms", 1), 1500, 1, false, false},
		{"s from -1500 ms", dt("M8", "<", "s", 1), dt("M8", "<", "ms", 1), -1500, -2, false, false},
		{"s from -1 ms", dt("M8", "<", "s", 1), dt("M8", "<", "ms", 1), -1, -1, false, false},
		{"s from NaT ms", dt("M8", "<", "s", 1), dt("M8", "<", "ms", 1), nat, nat, false, false},
		{"ms from 7 s", dt("M8", "<", "ms", 1), dt("M8", "<", "s", 1), 7, 7000, false, false},
		{"h from -3599 s", dt("M8", "<", "h", 1), dt("M8", "<", "s", 1), -3599, -1, false, false},
		{"us from 3 W", dt("M8", "<", "us", 1), dt("M8", "<", "W", 1), 3, 3 * 604800e6, false, false},
		{"10s from 25 s", dt("M8", "<", "s", 10), dt("M8", "<", "s", 1), 25, 2, false, false},
		{"10s from -25 s", dt("M8", "<", "s", 10), dt("M8", "<", "s", 1), -25, -3, false, false},
		{"3ms from 7 2s", dt("M8", "<", "ms", 3), dt("M8", "<", "s", 2), 7, 4666, false, false},
		{"timedelta s from -1500 ms", dt("m8", "<", "s", 1), dt("m8", "<", "ms", 1), -1500, -2, false, false},
		{"timedelta ns from 5 D", dt("m8", "<", "ns", 1), dt("m8", "<", "D", 1), 5, 5 * 86400e9, false, false},
		{"big-endian fill of the same unit", dt("M8", "<", "s", 1), dt("M8", ">", "s", 1), 12345, 12345, false, true},
		{"big-endian fill in ms", dt("m8", "<", "s", 1), dt("m8", ">", "ms", 1), -2500, -3, false, true},
		{"big-endian data, fill in ms", dt("M8", ">", "s", 1), dt("M8", "<", "ms", 1), 4500, 4, true, false},
	}
	dir := t.TempDir()
	var pm []pmCase
	for i, c := range cases {
		fillRaw := le64(uint64(c.v))
		if c.fillBE {
			fillRaw = binary.BigEndian.AppendUint64(nil, uint64(c.v))
		}
		file := testFile(testEntry("x", maskedDT(c.data, c.fill, fillRaw), true))
		rep, err := Verify(bytesReaderAt(file), int64(len(file)), nil)
		if err != nil || !rep.OK() {
			t.Errorf("%s: verify: %v %+v", c.name, err, rep)
		}
		r, err := newReaderBytes(file)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		m, err := r.Masked("x")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		f, ok := m.Fill.(*Array)
		if !ok || f.DType != m.Data.DType || len(f.Shape) != 0 {
			t.Fatalf("%s: fill %#v for data %s", c.name, m.Fill, m.Data.DType)
		}
		raw := f.Bytes()
		got := int64(binary.LittleEndian.Uint64(raw))
		if c.wantBigEndin {
			got = int64(binary.BigEndian.Uint64(raw))
		}
		if got != c.want {
			t.Errorf("%s: fill %d (%s), want %d", c.name, got, hex.EncodeToString(raw), c.want)
		}
		p := filepath.Join(dir, fmt.Sprintf("f%02d.mmpkl", i))
		if err := os.WriteFile(p, file, 0o644); err != nil {
			t.Fatal(err)
		}
		pc := pmRead(t, p)
		if pc.refused != nil {
			t.Fatalf("%s: %v", c.name, pc.refused)
		}
		pm = append(pm, pc)
	}
	for _, env := range pyrun.Numpys(t) {
		res := pmCheck(t, env, pm)
		for i, c := range cases {
			r := res[pm[i].Path]
			if r.Status != "loaded" || len(r.Mismatches) != 0 {
				t.Errorf("%s (%s): pickle.load %s %s %v", c.name, env, r.Status, r.Error, r.Mismatches)
			}
		}
	}
}

// TestConvertDatetime checks the conversion against values numpy 1.26 and
// 2.4 gave, and its refusals.
func TestConvertDatetime(t *testing.T) {
	u := func(unit string, n int) DType {
		return DType{ByteOrder: '<', Kind: 'M', ItemSize: 8, Unit: unit, UnitCount: n}
	}
	for _, c := range []struct {
		v        int64
		from, to DType
		want     int64
		ok       bool
	}{
		{1500, u("ms", 1), u("s", 1), 1, true},
		{-1500, u("ms", 1), u("s", 1), -2, true},
		{math.MinInt64 + 1, u("ms", 1), u("s", 1), 0, false}, // numpy wraps to 9223372036854774
		{math.MinInt64 + 1000, u("ms", 1), u("s", 1), -9223372036854775, true},
		{-4611686018427387904, u("s", 1), u("ms", 1), 0, false}, // numpy wraps to 0
		{1 << 62, u("s", 1), u("ns", 1), 0, false},
		{1e9, u("D", 1), u("ns", 1), 0, false},
		{3, u("W", 1), u("us", 1), 1814400000000, true},
		{3, u("Y", 1), u("s", 1), 0, false},
		{5, u("M", 1), u("D", 1), 0, false},
		{5, u("", 1), u("s", 1), 0, false},
		{1, u("as", 1), u("W", 1), 0, false}, // a factor past int64
		{math.MinInt64, u("Y", 1), u("s", 1), math.MinInt64, true},
	} {
		got, ok := convertDatetime(c.v, c.from, c.to)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("%d %s -> %s: %d %v, want %d %v", c.v, c.from, c.to, got, ok, c.want, c.ok)
		}
	}
}

// TestPutRefusesMemoPastBound: in a file whose entries used memo indices
// up to 2^25-2, a put whose value needs memo slots from 2^25 is refused
// with ErrMemoFull and leaves the file as it was (readers would refuse the
// whole file); a value that needs none still goes in, and the file reads.
func TestPutRefusesMemoPastBound(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "m.mmpkl")
	b := testFile(testEntryMemo("a", pkl(opNone), true, maxMemoSlots-1))
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A list memoized twice: two memo slots, 2^25-1 and 2^25.
	two := pyval.Object{Pickle: pkl(opProto, 4, opEmptyList, opMemoize, opEmptyList, opMemoize, opAppend, opStop)}
	if err := f.Put("two", two); !errors.Is(err, ErrMemoFull) || !strings.Contains(err.Error(), "33554431 to 33554432") {
		t.Fatalf("Put: %v, want ErrMemoFull", err)
	}
	if after, _ := os.ReadFile(name); !bytes.Equal(after, b) {
		t.Error("a refused put changed the file")
	}
	if err := f.Put("v", int64(5)); err != nil {
		t.Fatalf("Put of a value needing no memo slot: %v", err)
	}
	r, err := NewReader(mustOpen(t, name))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := r.Get("v"); err != nil || v != int64(5) {
		t.Errorf("Get: %v %v", v, err)
	}
}

func mustOpen(t *testing.T, name string) (*os.File, int64) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, st.Size()
}

// TestPutRefusesWhatReadersRefuse: a put of a value readers would refuse
// (a key nesting tuples past 200, a pickle stopping at a limit) is refused
// and leaves the file as it was, instead of making readers refuse the
// whole file; what lies just inside the bound goes in and reads back.
func TestPutRefusesWhatReadersRefuse(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "p.mmpkl")
	f, err := OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Put("a", int64(1)); err != nil {
		t.Fatal(err)
	}
	nested := func(n int) any {
		var k any = int64(0)
		for range n {
			k = pyval.Tuple{k}
		}
		return k
	}
	before, _ := os.ReadFile(name)
	for _, c := range []struct {
		name string
		v    any
		is   error
	}{
		{"a dict key of 201 tuples", pyval.Dict{{Key: nested(201), Value: int64(1)}}, ErrUnsupported},
		{"a set item of 300 tuples", pyval.Set{nested(300)}, ErrUnsupported},
		{"a frozenset of 201 frozensets", func() any {
			var s any = int64(0)
			for range 201 {
				s = pyval.FrozenSet{s}
			}
			return pyval.Dict{{Key: s, Value: nil}}
		}(), ErrUnsupported},
		{"a pickle of 16,001 open MARKs", pyval.Object{Pickle: pkl(opProto, 4, bytes.Repeat([]byte{opMark}, 16_001), opNone, bytes.Repeat([]byte{opPopMark}, 16_001), opNone, opStop)}, ErrLimit},
		{"a pickle changing a bytearray under an array", pyval.Object{Pickle: pkl(opProto, 4, opEmptyList,
			rfBuilders{}.frombuffer(pkl(byteArray8([]byte{1, 2}), opBinPut, 0), 2), opAppend, opBinGet, 0, opBinInt1, 0, opBinInt1, 9, opSetItem, opPop, opStop)}, ErrUnsupported},
	} {
		if err := f.Put("x", c.v); !errors.Is(err, c.is) {
			t.Errorf("%s: Put: %v, want %v", c.name, err, c.is)
		}
		if after, _ := os.ReadFile(name); !bytes.Equal(after, before) {
			t.Fatalf("%s: a refused put changed the file", c.name)
		}
	}
	if err := f.Put("x", pyval.Dict{{Key: nested(200), Value: int64(1)}}); err != nil {
		t.Fatalf("a key of 200 tuples: %v", err)
	}
	r, err := NewReader(mustOpen(t, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("x"); err != nil {
		t.Error(err)
	}
}
