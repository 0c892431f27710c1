package bridge

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"

	"mmpbridge/internal/corpus"
	"mmpbridge/pyval"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"mmpbridge/internal/pyrun"
)

// vtCmp compares decoded values: big integers by value, NaNs equal,
// arrays by what they describe.
var vtCmp = []cmp.Option{
	cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 }),
	cmpopts.EquateNaNs(),
	cmpopts.IgnoreUnexported(Array{}),
}

// vtEntry is one key of a reference file with its manifest record.
type vtEntry struct {
	file, key string
	data      []byte // the whole file
	off, n    int64  // the value's bytes
	trailer   int32  // memo index stored after the value
	kind      string
	json      json.RawMessage
	repr      string
}

// vtCorpus reads every key of the reference files (both profiles), in the
// file's entry order.
func vtCorpus(t testing.TB) []vtEntry {
	t.Helper()
	var out []vtEntry
	for _, profile := range corpus.Profiles {
		dir := filepath.Join(corpus.Dir(), profile)
		m, err := corpus.Load(profile)
		if err != nil {
			t.Fatal(err)
		}
		for name, f := range m.Files {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			for key, k := range f.Keys {
				// FRAME(9) SHORT_BINUNICODE(2+len) value BININT(5) POP flag POP
				end := k.EntryOffset + k.EntrySize
				e := vtEntry{file: profile + "/" + name, key: key, data: data, kind: k.Kind, json: k.JSON, repr: k.Repr}
				e.off = k.EntryOffset + 11 + int64(len(key))
				e.n = end - 8 - e.off
				e.trailer = int32(vtLE32(data[end-7:]))
				out = append(out, e)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no reference files")
	}
	return out
}

func vtLE32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func vtLE32b(i int) []byte { return []byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)} }

func (e vtEntry) raw() []byte { return e.data[e.off : e.off+e.n] }

// vtJSON turns a decoded value into what encoding/json (UseNumber) reads
// back from Python's json.dumps of it: integers as json.Number, floats as
// float64, tuples as lists, dicts with string keys as maps.
func vtJSON(t *testing.T, v any) any {
	switch v := v.(type) {
	case nil, bool, string, float64:
		return v
	case int64:
		return json.Number(strconv.FormatInt(v, 10))
	case *big.Int:
		return json.Number(v.String())
	case []any:
		return vtJSONSeq(t, v)
	case pyval.Tuple:
		return vtJSONSeq(t, v)
	case pyval.Dict:
		m := map[string]any{}
		for _, it := range v {
			k, ok := it.Key.(string)
			if !ok {
				t.Fatalf("dict key %v (%T) is not a string", it.Key, it.Key)
			}
			m[k] = vtJSON(t, it.Value)
		}
		return m
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			f, err := v.Float64()
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		return v
	case map[string]any:
		m := map[string]any{}
		for k, x := range v {
			m[k] = vtJSON(t, x)
		}
		return m
	}
	t.Fatalf("unexpected %T in a value with a JSON form", v)
	return nil
}

func vtJSONSeq(t *testing.T, v []any) []any {
	out := make([]any, len(v))
	for i, x := range v {
		out[i] = vtJSON(t, x)
	}
	return out
}

func vtDecode(b []byte) (any, error) {
	return decodeValue(&source{data: b, size: int64(len(b))}, 0, int64(len(b)), Limits{})
}

func TestDecodeValueCorpus(t *testing.T) {
	byHand := map[string]any{
		"bytes":  []byte("\x00\x01raw"),
		"bigint": new(big.Int).Lsh(big.NewInt(1), 80).Add(new(big.Int).Lsh(big.NewInt(1), 80), big.NewInt(1)),
		"tuple":  pyval.Tuple{int64(1), pyval.Tuple{int64(2), int64(3)}},
		"none":   nil,
		"float":  1.25,
		"neg":    int64(-7),
		"shared": []any{[]any{int64(1), int64(2)}, []any{int64(1), int64(2)}},
	}
	values, handChecked := 0, 0
	for _, e := range vtCorpus(t) {
		v, err := decodeValue(&source{data: e.data, size: int64(len(e.data))}, e.off, e.n, Limits{})
		if err != nil {
			t.Errorf("%s %q: %v", e.file, e.key, err)
			continue
		}
		if e.kind != "value" {
			// Arrays decode as arrays, in place in the file.
			ok := false
			switch a := v.(type) {
			case *Array:
				ok = e.kind == "array" && a.Offset > e.off && a.Offset+a.NBytes <= e.off+e.n
			case *Masked:
				ok = e.kind == "masked"
			}
			if !ok {
				t.Errorf("%s %q (%s): got %T %+.80v", e.file, e.key, e.kind, v, v)
			}
			continue
		}
		values++
		if string(e.json) != "null" {
			d := json.NewDecoder(bytes.NewReader(e.json))
			d.UseNumber()
			var want any
			if err := d.Decode(&want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(vtJSON(t, want), vtJSON(t, v)); diff != "" {
				t.Errorf("%s %q (-manifest +decoded):\n%s", e.file, e.key, diff)
			}
		}
		if want, ok := byHand[e.key]; ok && strings.HasSuffix(e.file, "/values.mmpkl") {
			handChecked++
			if diff := cmp.Diff(want, v, vtCmp...); diff != "" {
				t.Errorf("%s %q (-want +got):\n%s", e.file, e.key, diff)
			}
		}
	}
	if values < 100 || handChecked != 2*len(byHand) {
		t.Errorf("checked %d values, %d by hand", values, handChecked)
	}
}

// vtPickles runs /usr/bin/python3 once: for each name, the Python expression
// is pickled with pickle.dumps(v, 4) and post-processed the way mmappickle's
// writer does (PROTO, FRAME and STOP removed, unread memo writes dropped,
// the others renumbered from start). It returns the bytes and the end memo
// index by name.
func vtPickles(t *testing.T, exprs map[string]string, start int) map[string]vtPickle {
	t.Helper()
	env := pyrun.Numpy1(t)
	in := filepath.Join(t.TempDir(), "exprs.json")
	b, _ := json.Marshal(exprs)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := env.Run(t, vtDumpFix+fmt.Sprintf(`
import collections, functools, json, math, sys
import numpy as np
sys.setrecursionlimit(20000)
res = {}
for name, expr in json.load(open(sys.argv[1])).items():
    p, end = dump_fix(eval(expr), %d)
    res[name] = [p.hex(), end]
print(json.dumps(res))
`, start), in)
	var raw map[string][2]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	res := map[string]vtPickle{}
	for name, r := range raw {
		p, err := hex.DecodeString(r[0].(string))
		if err != nil {
			t.Fatal(err)
		}
		res[name] = vtPickle{p, int32(r[1].(float64))}
	}
	return res
}

type vtPickle struct {
	b   []byte
	end int32
}

// vtDumpFix is mmappickle's post-processing of pickle.dumps(v, 4),
// rewritten from its description.
const vtDumpFix = `
import pickle, pickletools, struct

def dump_fix(obj, start, proto=4):
    p = pickle.dumps(obj, proto)
    ops = list(pickletools.genops(p))
    ends = [pos for _, _, pos in ops[1:]] + [len(p)]
    written, read, plan = set(), set(), []
    for (op, arg, pos), end in zip(ops, ends):
        if op.name in ("PROTO", "FRAME", "STOP"):
            continue
        if op.name == "MEMOIZE" or "PUT" in op.name:
            idx = len(written) if op.name == "MEMOIZE" else arg
            written.add(idx)
            plan.append(("put", idx))
        elif "GET" in op.name:
            read.add(arg)
            plan.append(("get", arg))
        else:
            plan.append(("raw", p[pos:end]))
    out, new, nxt = [], {}, start
    for kind, x in plan:
        if kind == "put":
            if x not in read:
                continue
            new[x] = nxt
            out.append(b"q" + bytes([nxt]) if nxt < 256 else b"r" + struct.pack("<I", nxt))
            nxt += 1
        elif kind == "get":
            y = new[x]
            out.append(b"h" + bytes([y]) if y < 256 else b"j" + struct.pack("<I", y))
        else:
            out.append(x)
    return b"".join(out), nxt
`

func TestDecodeValueNumpyScalars(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, expr string
		// dtype is the Scalar's dtype ("": the value is not a Scalar);
		// numpy's scalars are native-endian, whatever array they come from.
		dtype string
		want  any // Scalar.Value(), or the whole value when dtype is ""
	}{
		{"f8", "np.float64(1.5)", "<f8", 1.5},
		{"f8 big-endian", "np.dtype('>f8').type(-2.25)", "<f8", -2.25},
		{"f4", "np.float32(2.5)", "<f4", 2.5},
		{"f4 big-endian", "np.array([3.5], dtype='>f4')[0]", "<f4", 3.5},
		{"i1", "np.int8(-3)", "|i1", int64(-3)},
		{"i2", "np.int16(-300)", "<i2", int64(-300)},
		{"i4", "np.int32(7)", "<i4", int64(7)},
		{"i4 big-endian", "np.array([-7], dtype='>i4')[0]", "<i4", int64(-7)},
		{"i8", "np.int64(-2**40)", "<i8", int64(-1 << 40)},
		{"u1", "np.uint8(200)", "|u1", uint64(200)},
		{"u2", "np.uint16(60000)", "<u2", uint64(60000)},
		{"u4", "np.uint32(4000000000)", "<u4", uint64(4000000000)},
		{"u8", "np.uint64(2**64-1)", "<u8", uint64(math.MaxUint64)},
		{"u8 big-endian", "np.array([2**63+5], dtype='>u8')[0]", "<u8", uint64(1<<63 + 5)},
		{"b1 true", "np.bool_(True)", "|b1", true},
		{"b1 false", "np.bool_(False)", "|b1", false},
		{"c8", "np.complex64(1-2j)", "<c8", complex(1, -2)},
		{"c16", "np.complex128(3+4j)", "<c16", complex(3, 4)},
		{"c16 big-endian", "np.array([3-4j], dtype='>c16')[0]", "<c16", complex(3, -4)},
		{"f2", "np.float16(1.5)", "<f2", 1.5},
		{"str", "np.str_('xé')", "<U2", "xé"},
		{"str with NULs", "np.array(['ab'], dtype='U5')[0]", "<U2", "ab"},
		{"datetime", "np.datetime64('2020-01-01')", "<M8[D]", int64(18262)},
		{"timedelta of 10 ms", "np.timedelta64(3, '10ms')", "<m8[10ms]", int64(3)},
		{"bytes", "np.bytes_(b'ab')", "|S2", []byte("ab")},
		{"void", "np.void(b'ab')", "|V2", []byte("ab")},
		{"long double", "np.longdouble(1)", "<f16", nil},
		{"in a list", "[np.float64(0.5), 2]", "", nil},
		{"dtype alone", "np.dtype('>i2')", "", DType{ByteOrder: '>', Kind: 'i', ItemSize: 2}},
	}
	exprs := map[string]string{}
	for _, c := range cases {
		exprs[c.name] = c.expr
	}
	pickles := vtPickles(t, exprs, 1)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := pickles[c.name].b
			v, err := vtDecode(p)
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "in a list" {
				l, ok := v.([]any)
				if s, ok2 := l[0].(Scalar); !ok || !ok2 || len(l) != 2 || s.Value() != 0.5 || l[1] != int64(2) {
					t.Errorf("got %#v", v)
				}
				return
			}
			if c.dtype == "" {
				if diff := cmp.Diff(c.want, v); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				return
			}
			s, ok := v.(Scalar)
			if !ok || s.DType.String() != c.dtype {
				t.Fatalf("got %#v, want a Scalar of %s", v, c.dtype)
			}
			if diff := cmp.Diff(c.want, s.Value(), vtCmp...); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// vtOps joins opcodes and their arguments into a value pickle.
func vtOps(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		case rune: // opcodes named by their character
			b = append(b, byte(p))
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic(fmt.Sprintf("vtOps: %T", p))
		}
	}
	return b
}

// vtStr is SHORT_BINUNICODE s.
func vtStr(s string) []byte { return append([]byte{opShortBinUni, byte(len(s))}, s...) }

func TestDecodeValueGlobals(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "pwned")
	cmd := vtStr("touch " + marker)
	obj := func(module, name string) pyval.Object { return pyval.Object{Module: module, Name: name} }
	cases := []struct {
		name   string
		pickle []byte
		want   any // Objects compared by Module and Name
	}{
		{"os.system by STACK_GLOBAL", vtOps(vtStr("os"), vtStr("system"), opStackGlobal, cmd, opTuple1, opReduce), obj("os", "system")},
		{"os.system by GLOBAL", vtOps("cos\nsystem\n", cmd, opTuple1, opReduce), obj("os", "system")},
		{"posix.system by INST", vtOps(opMark, cmd, "iposix\nsystem\n"), obj("posix", "system")},
		{"builtins.eval", vtOps(vtStr("builtins"), vtStr("eval"), opStackGlobal, vtStr("1+1"), opTuple1, opReduce), obj("builtins", "eval")},
		{"memoized names", vtOps(opEmptyList, vtStr("os"), opMemoize, vtStr("system"), opMemoize, opPop, opPop,
			opBinGet, 0, opBinGet, 1, opStackGlobal, cmd, opTuple1, opReduce, opAppend), []any{obj("os", "system")}},
		{"allowed then not", vtOps(opEmptyList, opMark, vtStr("builtins"), vtStr("set"), opStackGlobal, opEmptyTuple, opReduce,
			vtStr("os"), vtStr("system"), opStackGlobal, opAppends), []any{pyval.Set{}, obj("os", "system")}},
		{"inside a list", vtOps(opEmptyList, opMark, opBinInt1, 1, "cos\nsystem\n", opAppends), []any{int64(1), obj("os", "system")}},
		{"inside a dict", vtOps(opEmptyDict, vtStr("when"), "cdatetime\ndate\n", opShortBinBytes, 4, "\x07\xe4\x01\x01", opTuple1, opReduce, opSetItem),
			pyval.Dict{{Key: "when", Value: obj("datetime", "date")}}},
		{"numpy.dtype without its state", vtOps(vtStr("numpy"), vtStr("dtype"), opStackGlobal, vtStr("f8"), opNewFalse, opNewTrue, opTuple3, opReduce), obj("numpy", "dtype")},
		{"numpy.dtype with one argument", vtOps(vtStr("numpy"), vtStr("dtype"), opStackGlobal, vtStr("f8"), opTuple1, opReduce), obj("numpy", "dtype")},
		{"array reconstruct of nothing", vtOps("cnumpy.core.multiarray\n_reconstruct\n", opEmptyTuple, opReduce), obj("numpy.core.multiarray", "_reconstruct")},
		{"the class set itself", vtOps(vtStr("builtins"), vtStr("set"), opStackGlobal), obj("builtins", "set")},
		{"collections.OrderedDict only by name", vtOps("ccollections\nOrderedDict \n", opEmptyTuple, opReduce), obj("collections", "OrderedDict ")},
		{"complex of a string", vtOps(vtStr("builtins"), vtStr("complex"), opStackGlobal, vtStr("1j"), opTuple1, opReduce), obj("builtins", "complex")},
		{"OrderedDict with arguments", vtOps("ccollections\nOrderedDict\n", opNone, opTuple1, opReduce), obj("collections", "OrderedDict")},
		{"NEWOBJ of set", vtOps("cbuiltins\nset\n", opEmptyTuple, opNewObj), obj("builtins", "set")},
		{"NEWOBJ_EX of set", vtOps("cbuiltins\nset\n", opEmptyTuple, opEmptyDict, opNewObjEx), obj("builtins", "set")},
		{"numpy scalar of the wrong size", vtOps("cnumpy.core.multiarray\nscalar\n", "cnumpy\ndtype\n", vtStr("f8"), opNewFalse, opNewTrue, opTuple3, opReduce,
			opMark, opBinInt1, 3, vtStr("<"), opNone, opNone, opNone, opBinInt, "\xff\xff\xff\xff", opBinInt, "\xff\xff\xff\xff", opBinInt1, 0, opTuple, opBuild,
			opShortBinBytes, 2, "ab", opTuple2, opReduce), obj("numpy.core.multiarray", "scalar")},
	}
	ignore := cmpopts.IgnoreFields(pyval.Object{}, "Why", "Pickle")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := vtDecode(c.pickle)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, v, ignore); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if o, ok := v.(pyval.Object); ok && (!bytes.Equal(o.Pickle, framed(c.pickle)) || o.Why == "") {
				t.Errorf("a whole-value Object keeps its pickle and says why: %+v", o)
			}
		})
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a pickle ran a command")
	}
}

func TestDecodeValueKinds(t *testing.T) {
	big80 := new(big.Int).Lsh(big.NewInt(1), 80)
	cases := []struct {
		name   string
		pickle []byte
		want   any
	}{
		{"set", vtOps(opEmptySet, opMark, opBinInt1, 3, opBinInt1, 1, vtStr("a"), opAddItems), pyval.Set{int64(3), int64(1), "a"}},
		{"set of a tuple and bytes", vtOps(opEmptySet, opMark, opBinInt1, 1, opBinInt1, 2, opTuple2, opShortBinBytes, 1, "b", opAddItems),
			pyval.Set{pyval.Tuple{int64(1), int64(2)}, []byte("b")}},
		{"frozenset", vtOps(opMark, opBinInt1, 2, opBinInt1, 1, opFrozenSet), pyval.FrozenSet{int64(2), int64(1)}},
		{"set by builtins.set", vtOps("cbuiltins\nset\n", opEmptyList, opMark, opBinInt1, 1, opBinInt1, 2, opAppends, opTuple1, opReduce), pyval.Set{int64(1), int64(2)}},
		{"frozenset by builtins.frozenset", vtOps(vtStr("builtins"), vtStr("frozenset"), opStackGlobal, opEmptyTuple, opReduce), pyval.FrozenSet{}},
		{"complex", vtOps(vtStr("builtins"), vtStr("complex"), opStackGlobal, opBinFloat, "\x3f\xf8\x00\x00\x00\x00\x00\x00", opBinInt1, 2, opTuple2, opReduce), complex(1.5, 2)},
		{"bytearray", vtOps(vtStr("builtins"), vtStr("bytearray"), opStackGlobal, opShortBinBytes, 2, "ab", opTuple1, opReduce), pyval.ByteArray("ab")},
		{"empty bytearray", vtOps(vtStr("builtins"), vtStr("bytearray"), opStackGlobal, opEmptyTuple, opReduce), pyval.ByteArray{}},
		{"BYTEARRAY8", vtOps(opByteArray8, "\x01\x00\x00\x00\x00\x00\x00\x00x"), pyval.ByteArray("x")},
		{"OrderedDict", vtOps(vtStr("collections"), vtStr("OrderedDict"), opStackGlobal, opEmptyTuple, opReduce,
			opMark, opShortBinBytes, 1, "k", opNone, opBinInt1, 2, opNewTrue, opSetItems), pyval.OrderedDict{{Key: []byte("k"), Value: nil}, {Key: int64(2), Value: true}}},
		{"dict with mixed keys", vtOps(opEmptyDict, opMark, opNone, opBinInt1, 1, opMark, opBinInt1, 1, opFrozenSet, opNewFalse,
			opBinInt1, 1, opTuple1, vtStr("t"), opSetItems), pyval.Dict{{Key: nil, Value: int64(1)}, {Key: pyval.FrozenSet{int64(1)}, Value: false}, {Key: pyval.Tuple{int64(1)}, Value: "t"}}},
		{"LONG1 of no bytes", vtOps(opLong1, 0), int64(0)},
		{"LONG4 of no bytes", vtOps(opLong4, "\x00\x00\x00\x00"), int64(0)},
		{"LONG1 that fits int64", vtOps(opLong1, 9, "\xff\xff\xff\xff\xff\xff\xff\xff\xff"), int64(-1)},
		{"LONG1 of 2**80", vtOps(opLong1, 11, "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"), big80},
		{"text opcodes", vtOps(opMark, "I12\n", "L-5L\n", "F0.5\n", "I01\n", opTuple), pyval.Tuple{int64(12), int64(-5), 0.5, true}},
		{"text memo", vtOps(opEmptyList, "p7\n", "g7\n", opPop), []any{}},
		{"shared list", vtOps(opEmptyList, opMark, opEmptyList, opBinPut, 9, opBinGet, 9, opAppends), []any{[]any{}, []any{}}},
		{"DUP", vtOps(opBinInt1, 5, opDup, opTuple2), pyval.Tuple{int64(5), int64(5)}},
		{"OBJ", vtOps(opMark, "cbuiltins\nfrozenset\n", opEmptyList, opObj), pyval.FrozenSet{}},
		{"INST", vtOps(opMark, opEmptyList, "ibuiltins\nset\n"), pyval.Set{}},
		{"class through the memo", vtOps("cbuiltins\nset\n", opBinPut, 0, opPop, opBinGet, 0, opEmptyTuple, opReduce), pyval.Set{}},
		{"class through DUP", vtOps("cbuiltins\nset\n", opDup, opEmptyTuple, opReduce, opPop, opEmptyTuple, opReduce), pyval.Set{}},
		{"POP of a MARK", vtOps(opBinInt1, 5, opMark, opPop), int64(5)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := vtDecode(c.pickle)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, v, vtCmp...); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// vtNested returns n nested lists: ] ( ] ( ] ... e e (each with two items).
func vtNested(n int) []byte {
	var b []byte
	for range n {
		b = append(b, opEmptyList, opMark, opNone)
	}
	for range n {
		b = append(b, opAppends)
	}
	return b
}

func TestDecodeValueBadInput(t *testing.T) {
	// n lists each holding the next one twice: 2**n leaves when expanded.
	laughs := vtOps(opEmptyList, opBinPut, 0)
	for i := 1; i < 70; i++ {
		laughs = append(laughs, vtOps(opEmptyList, opBinPut, i, opPop, opBinGet, i-1, opBinGet, i, opAppend, opBinGet, i, opAppend, opPop)...)
	}
	// A chain of lists through the memo: the stack never holds more than two.
	chain := vtOps(opEmptyList, opBinPut, 0)
	for i := 1; i < 1100; i++ {
		chain = append(chain, vtOps(opEmptyList, opLongBinPut, vtLE32b(i), opPop)...)
	}
	for i := 1; i < 1100; i++ {
		chain = append(chain, vtOps(opLongBinGet, vtLE32b(i-1), opLongBinGet, vtLE32b(i), opAppend, opPop)...)
	}
	tuples := vtOps(opNone)
	for range 10000 {
		tuples = append(tuples, opTuple1)
	}
	marks := bytes.Repeat([]byte{opMark}, 10000)
	marks = append(append(marks, opNone), bytes.Repeat([]byte{opTuple}, 10000)...)
	cases := []struct {
		name   string
		pickle []byte
		is     error
	}{
		{"empty", nil, nil},
		{"two items", vtOps(opNone, opNone), nil},
		{"an open MARK", vtOps(opMark, opNone), nil},
		{"BINGET of an unknown index", vtOps(opEmptyList, opBinGet, 3, opAppend), nil},
		{"LONG_BINGET of an unknown index", vtOps(opEmptyList, opBinPut, 1, opLongBinGet, "\x01\x00\x01\x00", opAppend), nil},
		{"GET before PUT", vtOps("g0\n", "p0\n"), nil},
		{"BINBYTES of 2**31 bytes", vtOps(opBinBytes, "\x00\x00\x00\x80", "abcde"), nil},
		{"BINUNICODE8 of 2**62 bytes", vtOps(opBinUnicode8, "\x00\x00\x00\x00\x00\x00\x00\x40", "x"), nil},
		{"opcode 0xff", vtOps(opEmptyList, 0xff, opAppend), nil},
		{"STOP", vtOps(opNone, opStop), nil},
		{"FRAME", vtOps(opFrame, "\x01\x00\x00\x00\x00\x00\x00\x00", opNone), nil},
		{"PROTO", vtOps(opProto, 4, opNone), nil},
		{"PERSID", vtOps("P1\n"), nil},
		{"BINPERSID", vtOps(opNone, opBinPersID), nil},
		{"EXT1", vtOps(opExt1, 1), nil},
		{"NEXT_BUFFER", vtOps(opNextBuffer), nil},
		{"READONLY_BUFFER", vtOps(opNone, opReadOnlyBuffer), nil},
		{"stack underflow", vtOps(opAppend), nil},
		{"POP past the value", vtOps(opNone, opPop, opPop, opNone), nil},
		{"APPENDS without MARK", vtOps(opEmptyList, opAppends), nil},
		{"odd SETITEMS", vtOps(opEmptyDict, opMark, opNone, opSetItems), nil},
		{"odd DICT", vtOps(opMark, opNone, opDict), nil},
		{"truncated BININT", vtOps(opBinInt, "\x01\x02"), nil},
		{"10,000 nested lists", vtNested(10000), ErrLimit},
		{"1,001 nested lists", vtNested(1001), ErrLimit},
		{"10,000 nested tuples", tuples, ErrLimit},
		{"10,000 MARKs", marks, ErrLimit},
		{"nesting through the memo", chain, ErrLimit},
		{"billion laughs", laughs, ErrLimit},
		{"a set of lists", vtOps(opEmptySet, opMark, opEmptyList, opEmptyList, opAddItems), nil},
		{"a set holding a set", vtOps(opEmptySet, opMark, opEmptySet, opAddItems), nil},
		{"a frozenset of a bytearray", vtOps(opMark, opByteArray8, "\x00\x00\x00\x00\x00\x00\x00\x00", opFrozenSet), nil},
		{"a dict keyed by a list", vtOps(opEmptyDict, opEmptyList, opNone, opSetItem), nil},
		{"a dict keyed by a tuple of a list", vtOps(opEmptyDict, opEmptyList, opTuple1, opNone, opSetItem), nil},
		{"a list holding itself", vtOps(opEmptyList, opBinPut, 0, opBinGet, 0, opAppend), nil},
		{"a dict holding itself", vtOps(opEmptyDict, opMemoize, opNone, opBinGet, 0, opSetItem), nil},
		{"ADDITEMS to a frozenset", vtOps(opMark, opFrozenSet, opMark, opNone, opAddItems), nil},
		{"APPEND to a set", vtOps(opEmptySet, opNone, opAppend), nil},
		{"REDUCE calling a list", vtOps(opEmptyList, opNone, opTuple1, opReduce), nil},
		{"OBJ of a dict", vtOps(opMark, opEmptyDict, opNone, opObj), nil},
		{"NEWOBJ of a function", vtOps("cnumpy.core.multiarray\n_reconstruct\n", opEmptyTuple, opNewObj), nil},
		{"names not plain strings", vtOps(vtStr("os"), opNone, opStackGlobal), nil},
		{"names in bytes", vtOps(opShortBinBytes, 2, "os", vtStr("system"), opStackGlobal), nil},
		{"a dict keyed by an array", vtOps(opEmptyDict, "cnumpy.core.multiarray\n_reconstruct\n", "cnumpy\nndarray\n", opBinInt1, 0, opTuple1, opShortBinBytes, 1, "b", opTuple3, opReduce, opNone, opSetItem), nil},
		{"SETITEM into a tuple", vtOps(opEmptyTuple, opNone, opNone, opSetItem), nil},
		{"BUILD of a list with a dict", vtOps(opEmptyList, opEmptyDict, opBuild), nil},
		{"list index out of range", vtOps(opEmptyList, opBinInt1, 0, opNone, opSetItem), nil},
		{"range of step 0", vtOps("cbuiltins\nrange\n", opBinInt1, 0, opBinInt1, 1, opBinInt1, 0, opTuple3, opReduce), nil},
		{"INT not a number", vtOps("I1x\n"), nil},
		{"FLOAT with a blank", vtOps("F 1.5\n"), nil},
		{"LONG with leading zeros", vtOps("L010L\n"), nil},
		{"STRING unquoted", vtOps("Sab\n"), nil},
		{"STRING non-ASCII", vtOps("S'\\xe9'\n"), nil},
		{"UNICODE truncated escape", vtOps("V\\u00\n"), nil},
		{"BINUNICODE not UTF-8", vtOps(opShortBinUni, 1, "\xff"), nil},
		{"SHORT_BINSTRING not ASCII", vtOps(opShortBinString, 1, "\xe9"), nil},
		{"PUT negative", vtOps(opNone, "p-1\n"), nil},
		{"GET past the memo", vtOps("g99999999999999999999\n"), nil},
		// Found by FuzzDecodeValue when values were built by gopickle:
		// REDUCE calling a dict.
		{"fuzz: REDUCE calling a dict", []byte("}C\x150000000007\x0078an Z2 aRK.\x85\x86R"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, mapped := range []bool{true, false} {
				// The value sits at offset 100 of a file.
				file := append(make([]byte, 100), c.pickle...)
				file = append(file, opBinInt1, 0, opPop)
				src := &source{data: file, size: int64(len(file))}
				if !mapped {
					src = &source{ra: bytes.NewReader(file), size: int64(len(file))}
				}
				v, err := decodeValue(src, 100, int64(len(c.pickle)), Limits{})
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("mapped %v: got %T %+.60v, %v; want a *FormatError", mapped, v, v, err)
				}
				if fe.Offset < 100 || fe.Offset > 100+int64(len(c.pickle)) || strings.Contains(err.Error(), "internal error") {
					t.Errorf("mapped %v: %v", mapped, err)
				}
				if testing.Verbose() && mapped {
					t.Log(err)
				}
				if c.is != nil && !errors.Is(err, c.is) {
					t.Errorf("mapped %v: %v is not %v", mapped, err, c.is)
				}
			}
		})
	}
}

func TestDecodeValueLimits(t *testing.T) {
	p := vtOps(opEmptyList, opMark, opBinInt1, 1, opBinInt1, 2, opBinInt1, 3, opAppends)
	src := &source{data: p, size: int64(len(p))}
	for _, c := range []struct {
		name string
		lim  Limits
		ok   bool
	}{
		{"defaults", Limits{}, true},
		// The list expands to 8 bytes and 8 a slot, its ints to 8 each.
		{"bytes", Limits{MaxValueBytes: 55}, false},
		{"exact bytes", Limits{MaxValueBytes: 56}, true},
		{"ops", Limits{MaxOps: 5}, false},
		{"exact ops", Limits{MaxOps: 6}, true},
		{"depth", Limits{MaxDepth: 1}, true},
	} {
		_, err := decodeValue(src, 0, int64(len(p)), c.lim)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrLimit) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	nested := vtNested(2)
	if _, err := decodeValue(&source{data: nested, size: int64(len(nested))}, 0, int64(len(nested)), Limits{MaxDepth: 1}); !errors.Is(err, ErrLimit) {
		t.Errorf("depth 2 with MaxDepth 1: %v", err)
	}
	if _, err := decodeValue(src, 1, int64(len(p)), Limits{}); err == nil {
		t.Error("a value past the end of the file decoded")
	}
}

// vtAllocs is the bytes allocated on the heap so far.
func vtAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func FuzzDecodeValue(f *testing.F) {
	for _, e := range vtCorpus(f) {
		if e.n < 4096 {
			f.Add(e.raw())
		}
	}
	f.Add(vtOps(vtStr("builtins"), vtStr("complex"), opStackGlobal, opBinInt1, 1, opBinInt1, 2, opTuple2, opReduce))
	f.Add(vtOps(opEmptySet, opMark, opBinInt1, 3, opShortBinBytes, 1, "b", opAddItems))
	f.Add(vtOps("ccollections\nOrderedDict\n", opEmptyTuple, opReduce, opMark, opMark, opFrozenSet, opNone, opSetItems))
	f.Add(vtOps(opEmptyList, opBinPut, 0, opBinGet, 0, opAppend))
	lim := Limits{MaxValueBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := int64(len(b))
		before := vtAllocs()
		v, err := decodeValue(&source{data: b, size: n}, 0, n, lim)
		if got, limit := vtAllocs()-before, uint64(64<<20+256*len(b)); got > limit {
			t.Fatalf("decoding %d bytes allocated %d bytes", len(b), got)
		}
		v2, err2 := decodeValue(&source{ra: bytes.NewReader(b), size: n}, 0, n, lim)
		if fmt.Sprint(err) != fmt.Sprint(err2) || !cmp.Equal(v, v2, vtCmp...) {
			t.Fatalf("mapped: %v, %v; ReaderAt: %v, %v", v, err, v2, err2)
		}
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > n || strings.Contains(err.Error(), "internal error") {
				t.Fatalf("%v (%T)", err, err)
			}
			return
		}
		if o, ok := v.(pyval.Object); ok {
			// An Object carries a complete pickle of its own: the value's
			// opcodes between PROTO and STOP, decoding as the value does.
			body, err := unframe(o.Pickle)
			if err != nil || len(o.Pickle) < 3 || o.Pickle[0] != opProto || o.Pickle[len(o.Pickle)-1] != opStop {
				t.Fatalf("Object pickle %x of value %x: %v", o.Pickle, b, err)
			}
			again, err := vtDecode(body)
			if err != nil || !cmp.Equal(v, again, vtCmp...) {
				t.Fatalf("Object pickle %x of value %x decodes to %+.200v, %v", o.Pickle, b, again, err)
			}
		}
		// What decodes encodes, and decodes again to the same.
		var buf bytes.Buffer
		if _, err := encodeValue(&buf, v, 1); err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("encoding %+.200v: %v", v, err)
			}
			return
		}
		back, err := vtDecode(buf.Bytes())
		if err != nil {
			t.Fatalf("%x decodes to %+.200v, encoded as %x, which fails: %v", b, v, buf.Bytes(), err)
		}
		// An Object decoded alone numbers its memo from 0 again, so its
		// pickle comes back as it was.
		if diff := cmp.Diff(v, back, vtCmp...); diff != "" {
			t.Fatalf("%x re-encoded as %x (-first +second):\n%s", b, buf.Bytes(), diff)
		}
	})
}
