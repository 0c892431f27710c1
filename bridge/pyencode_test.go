package bridge

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"mmpbridge/pyval"

	"github.com/google/go-cmp/cmp"
)

// etCase is a Go value, the Python expression CPython pickles to the same
// bytes, and the value decodeValue gives back (nil: the Go value itself).
type etCase struct {
	name, expr string
	v          any
	back       any
}

func etBig(s string) *big.Int {
	b, ok := new(big.Int).SetString(s, 0)
	if !ok {
		panic(s)
	}
	return b
}

// etRange is [0, 1, ..., n-1] as Go's []any of int64.
func etRange(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = int64(i)
	}
	return out
}

// etNest returns n lists nested in one another around an empty one.
func etNest(n int) any {
	var v any = []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

func etCases() []etCase {
	nan := math.Float64frombits(0x7ff8000000000000) // Python's float('nan')
	dict1001 := pyval.Dict{}
	for i := range 1001 {
		dict1001 = append(dict1001, pyval.DictItem{Key: int64(i), Value: strconv.Itoa(i)})
	}
	return []etCase{
		{"None", "None", nil, nil},
		{"True", "True", true, nil},
		{"False", "False", false, nil},
		{"0", "0", int64(0), nil},
		{"1 int", "1", 1, int64(1)},
		{"255", "255", int64(255), nil},
		{"256", "256", int64(256), nil},
		{"65535 uint16", "65535", uint16(65535), int64(65535)},
		{"65536", "65536", int64(65536), nil},
		{"-1 int8", "-1", int8(-1), int64(-1)},
		{"-256", "-256", int64(-256), nil},
		{"-2**31", "-2**31", int32(math.MinInt32), int64(math.MinInt32)},
		{"2**31-1", "2**31-1", int64(math.MaxInt32), nil},
		{"2**31", "2**31", int64(1 << 31), nil},
		{"-2**31-1", "-2**31-1", int64(math.MinInt32 - 1), nil},
		{"2**32 uint32 max+1", "2**32", uint64(1 << 32), int64(1 << 32)},
		{"-128*2**48", "-128*2**48", int64(-128 << 48), nil},
		{"2**63-1", "2**63-1", int64(math.MaxInt64), nil},
		{"-2**63", "-2**63", int64(math.MinInt64), nil},
		{"2**63 uint64", "2**63", uint64(1 << 63), etBig("0x8000000000000000")},
		{"2**64-1 uint", "2**64-1", uint(math.MaxUint64), etBig("0xffffffffffffffff")},
		{"2**63", "2**63", etBig("0x8000000000000000"), nil},
		{"-2**63-1", "-2**63-1", etBig("-0x8000000000000001"), nil},
		{"-2**71", "-2**71", new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 71)), nil},
		{"-2**71-1", "-2**71-1", new(big.Int).Sub(new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 71)), big.NewInt(1)), nil},
		{"2**200", "2**200", new(big.Int).Lsh(big.NewInt(1), 200), nil},
		{"-(2**200)", "-(2**200)", new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 200)), nil},
		{"2**2040 (LONG4)", "2**2040", new(big.Int).Lsh(big.NewInt(1), 2040), nil},
		{"-(2**2039) (LONG1 of 255 bytes)", "-(2**2039)", new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 2039)), nil},
		{"-(2**2100)", "-(2**2100)", new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 2100)), nil},
		{"big that fits int64", "5", big.NewInt(5), int64(5)},
		{"0.0", "0.0", 0.0, nil},
		{"-0.0", "-0.0", math.Copysign(0, -1), nil},
		{"1.5 float32", "1.5", float32(1.5), 1.5},
		{"0.1", "0.1", 0.1, nil},
		{"1e300", "1e300", 1e300, nil},
		{"inf", "math.inf", math.Inf(1), nil},
		{"-inf", "-math.inf", math.Inf(-1), nil},
		{"nan", "math.nan", nan, nil},
		{"complex", "1+2j", complex(1, 2), nil},
		{"complex -0 inf", "complex(-0.0, math.inf)", complex(math.Copysign(0, -1), math.Inf(1)), nil},
		{"complex64", "0.5-1j", complex64(0.5 - 1i), complex(0.5, -1)},
		{"empty str", "''", "", nil},
		{"str", "'héllo wörld'", "héllo wörld", nil},
		{"str 255", "'a'*255", strings.Repeat("a", 255), nil},
		{"str 256", "'é'*128", strings.Repeat("é", 128), nil},
		{"str 70000", "'€'*23333 + 'x'", strings.Repeat("€", 23333) + "x", nil},
		{"str astral", "'\\U0001F600 \\x00'", "\U0001F600 \x00", nil},
		{"empty bytes", "b''", []byte{}, nil},
		{"bytes", "b'\\x00\\x01raw'", []byte("\x00\x01raw"), nil},
		{"bytes 255", "bytes(255)", make([]byte, 255), nil},
		{"bytes 256", "bytes(range(256))", func() []byte {
			b := make([]byte, 256)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}(), nil},
		{"bytes 70000", "b'z'*70000", bytes.Repeat([]byte("z"), 70000), nil},
		{"empty bytearray", "bytearray()", pyval.ByteArray{}, nil},
		{"bytearray", "bytearray(b'ab')", pyval.ByteArray("ab"), nil},
		{"bytearray 300", "bytearray(b'q'*300)", pyval.ByteArray(bytes.Repeat([]byte("q"), 300)), nil},
		{"empty list", "[]", []any{}, nil},
		{"nil list", "[]", []any(nil), []any{}},
		{"list 1", "[1]", []any{int64(1)}, nil},
		{"list 2", "[1, 'x']", []any{int64(1), "x"}, nil},
		{"list 1000", "list(range(1000))", etRange(1000), nil},
		{"list 1001", "list(range(1001))", etRange(1001), nil},
		{"list 2500", "list(range(2500))", etRange(2500), nil},
		{"list 2001", "list(range(2001))", etRange(2001), nil},
		{"list of ints", "[3, 2, 1]", []int{3, 2, 1}, []any{int64(3), int64(2), int64(1)}},
		{"list of strs", "['x', 'y']", []string{"x", "y"}, []any{"x", "y"}},
		{"array", "[1.5, 2.5]", [2]float64{1.5, 2.5}, []any{1.5, 2.5}},
		{"nested lists", "[[1, [2, [3]]], []]", []any{[]any{int64(1), []any{int64(2), []any{int64(3)}}}, []any{}}, nil},
		{"empty tuple", "()", pyval.Tuple{}, nil},
		{"tuple 1", "(1,)", pyval.Tuple{int64(1)}, nil},
		{"tuple 2", "(1, 2)", pyval.Tuple{int64(1), int64(2)}, nil},
		{"tuple 3", "(1, 2, 3)", pyval.Tuple{int64(1), int64(2), int64(3)}, nil},
		{"tuple 4", "(1, 2, 3, 4)", pyval.Tuple{int64(1), int64(2), int64(3), int64(4)}, nil},
		{"tuple 1500", "tuple(range(1500))", pyval.Tuple(etRange(1500)), nil},
		{"nested tuples", "(1, (2, 3), ((),))", pyval.Tuple{int64(1), pyval.Tuple{int64(2), int64(3)}, pyval.Tuple{pyval.Tuple{}}}, nil},
		{"empty dict", "{}", pyval.Dict{}, nil},
		{"dict 1", "{'a': 1}", pyval.Dict{{Key: "a", Value: int64(1)}}, nil},
		{"dict", "{'a': 1, 'b': [True, False]}", pyval.Dict{{Key: "a", Value: int64(1)}, {Key: "b", Value: []any{true, false}}}, nil},
		{"dict order kept", "{'b': 1, 'a': 2}", pyval.Dict{{Key: "b", Value: int64(1)}, {Key: "a", Value: int64(2)}}, nil},
		{"dict 1001", "{i: str(i) for i in range(1001)}", dict1001, nil},
		{"dict keys", "{None: 1, (1, 'k'): 2, frozenset({3}): 3, b'x': 4, 1.5: 5, True: 6}", pyval.Dict{
			{Key: nil, Value: int64(1)}, {Key: pyval.Tuple{int64(1), "k"}, Value: int64(2)}, {Key: pyval.FrozenSet{int64(3)}, Value: int64(3)}, {Key: []byte("x"), Value: int64(4)}, {Key: 1.5, Value: int64(5)}, {Key: true, Value: int64(6)}}, nil},
		{"nested dicts", "{'k': {'j': {'i': list(range(300))}}}", pyval.Dict{{Key: "k", Value: pyval.Dict{{Key: "j", Value: pyval.Dict{{Key: "i", Value: etRange(300)}}}}}}, nil},
		{"empty OrderedDict", "collections.OrderedDict()", pyval.OrderedDict{}, nil},
		{"OrderedDict", "collections.OrderedDict([('b', 1), ('a', [2])])", pyval.OrderedDict{{Key: "b", Value: int64(1)}, {Key: "a", Value: []any{int64(2)}}}, nil},
		{"map", "{'a': 1, 'b': None, 'c': 'x'}", map[string]any{"c": "x", "a": 1, "b": nil}, pyval.Dict{{Key: "a", Value: int64(1)}, {Key: "b", Value: nil}, {Key: "c", Value: "x"}}},
		{"map of ints", "{-1: 'a', 2: 'b', 10: 'c'}", map[int]string{10: "c", -1: "a", 2: "b"}, pyval.Dict{{Key: int64(-1), Value: "a"}, {Key: int64(2), Value: "b"}, {Key: int64(10), Value: "c"}}},
		{"empty set", "set()", pyval.Set{}, nil},
		{"set 1", "{5}", pyval.Set{int64(5)}, nil},
		{"set", "{1, 2, 3}", pyval.Set{int64(1), int64(2), int64(3)}, nil},
		{"set 1500", "set(range(1500))", pyval.Set(etRange(1500)), nil},
		{"empty frozenset", "frozenset()", pyval.FrozenSet{}, nil},
		{"frozenset", "frozenset({1, 2, 3})", pyval.FrozenSet{int64(1), int64(2), int64(3)}, nil},
		{"frozenset 1500", "frozenset(range(1500))", pyval.FrozenSet(etRange(1500)), nil},
		{"set in list", "[{7}, frozenset(), 1j]", []any{pyval.Set{int64(7)}, pyval.FrozenSet{}, complex(0, 1)}, nil},
		{"1000 nested lists", "functools.reduce(lambda a, _: [a], range(999), [])", etNest(1000), nil},
	}
}

func TestEncodeValueMatchesCPython(t *testing.T) {
	cases := etCases()
	exprs := map[string]string{}
	for _, c := range cases {
		exprs[c.name] = c.expr
	}
	const start = 7
	want := vtPickles(t, exprs, start)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := want[c.name]
			if w.end != start {
				t.Fatalf("CPython's pickle of %s shares objects (memo end %d): fix the test", c.expr, w.end)
			}
			var buf bytes.Buffer
			buf.WriteString("prefix")
			end, err := encodeValue(&buf, c.v, start)
			if err != nil {
				t.Fatal(err)
			}
			got := bytes.TrimPrefix(buf.Bytes(), []byte("prefix"))
			if end != start || !bytes.Equal(got, w.b) {
				t.Fatalf("memo end %d\n got %x\nwant %x", end, etShort(got), etShort(w.b))
			}
		})
	}
}

// etShort cuts long pickles for messages.
func etShort(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

func TestEncodeValueRoundTrip(t *testing.T) {
	for _, c := range etCases() {
		var buf bytes.Buffer
		if _, err := encodeValue(&buf, c.v, 1); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := vtDecode(buf.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := c.back
		if want == nil {
			want = c.v
		}
		if reflect.DeepEqual(want, got) { // cmp is slow on deep nesting
			continue
		}
		if diff := cmp.Diff(want, got, vtCmp...); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestEncodeValueObject(t *testing.T) {
	// The corpus value [[1, 2], [1, 2], [1, 2]] (one list, memo index 1).
	aliased := vtOps(opEmptyList, opMark, opEmptyList, opBinPut, 1, opMark, opBinInt1, 1, opBinInt1, 2, opAppends,
		opBinGet, 1, opBinGet, 1, opAppends)
	obj := pyval.Object{Module: "x", Name: "y", Pickle: framed(aliased)}
	for _, start := range []int64{1, 5, 255, 256, 1000} {
		var buf bytes.Buffer
		end, err := encodeValue(&buf, pyval.Tuple{obj, &obj}, start)
		if err != nil {
			t.Fatal(err)
		}
		if end != start+2 {
			t.Errorf("start %d: memo end %d", start, end)
		}
		v, err := vtDecode(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		l := []any{int64(1), int64(2)}
		want := pyval.Tuple{[]any{l, l, l}, []any{l, l, l}}
		if diff := cmp.Diff(want, v); diff != "" {
			t.Errorf("start %d (-want +got):\n%s", start, diff)
		}
	}
}

func TestEncodeValueErrors(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	for _, c := range []struct {
		name string
		v    any
	}{
		{"invalid UTF-8", "a\xffb"},
		{"invalid UTF-8 key", map[string]any{"\xc3": 1}},
		{"surrogate", "\xed\xa0\x80"},
		{"channel", make(chan int)},
		{"func in a list", []any{1, func() {}}},
		{"struct", struct{ A int }{1}},
		{"pointer", new(int)},
		{"nil big.Int", (*big.Int)(nil)},
		{"map with float keys", map[float64]int{1: 1}},
		{"1001 nested lists", etNest(1001)},
		{"a list holding itself", cyclic},
		{"list key", pyval.Dict{{Key: []any{}, Value: 1}}},
		{"dict key", pyval.Dict{{Key: pyval.Dict{}, Value: 1}}},
		{"set key", pyval.Dict{{Key: pyval.Set{}, Value: 1}}},
		{"bytearray key", pyval.Dict{{Key: pyval.ByteArray("a"), Value: 1}}},
		{"tuple of list key", pyval.Dict{{Key: pyval.Tuple{1, []any{}}, Value: 1}}},
		{"map key", pyval.Dict{{Key: map[string]any{}, Value: 1}}},
		{"slice key", pyval.Dict{{Key: []int{1}, Value: 1}}},
		{"list in a set", pyval.Set{[]any{}}},
		{"list in a frozenset", pyval.FrozenSet{[]any{}}},
	} {
		var buf bytes.Buffer
		buf.WriteString("keep")
		_, err := encodeValue(&buf, c.v, 3)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v", c.name, err)
		}
		if buf.String() != "keep" {
			t.Errorf("%s: buffer changed to %q", c.name, buf.Bytes())
		}
	}
	// A broken Object pickle.
	var buf bytes.Buffer
	if _, err := encodeValue(&buf, pyval.Object{Pickle: []byte{opBinGet, 0}}, 1); err == nil {
		t.Error("an Object reading an unwritten memo index was encoded")
	}
}
