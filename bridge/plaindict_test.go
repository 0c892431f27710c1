package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mmpbridge/pyval"
)

// plainDict is PROTO 4, a dict built from EMPTY_DICT by SETITEMS of the
// given key/value opcodes, STOP.
func plainDict(items ...[]byte) []byte {
	b := pkl(opProto, 4, opEmptyDict, opMark)
	for _, it := range items {
		b = append(b, it...)
	}
	return append(b, opSetItems, opStop)
}

func TestDecodePlainDictRefuses(t *testing.T) {
	t.Parallel()
	_, hostile := proofValues()
	sg := func(module, name string) []byte { return pkl(module, name, opStackGlobal) }
	list2 := pkl(opEmptyList, opMemoize, opPop, opEmptyList, opBinGet, 0, opAppend, opBinGet, 0, opAppend)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"os.system value", plainDict(pkl("k"), hostile["os.system"]), ErrNotPlain},
		{"numpy object scalar", plainDict(pkl("k"), hostile["numpy object dtype"]), ErrNotPlain},
		{"numpy 2 object scalar", plainDict(pkl("k"), hostile["numpy 2 scalar"]), ErrNotPlain},
		{"eval", plainDict(pkl("k"), hostile["builtins.eval"]), ErrNotPlain},
		{"import as key", plainDict(sg("os", "system"), pkl(opBinInt1, 1)), ErrNotPlain},
		{"import in a list", plainDict(pkl("k", opEmptyList, opMark), sg("subprocess", "Popen"), pkl(opAppends)), ErrNotPlain},
		{"persistent id", plainDict(pkl("k", "x", opBinPersID)), ErrNotPlain},
		{"extension code", plainDict(pkl("k", opExt1, 1)), ErrNotPlain},
		{"no STOP", plainDict(pkl("k", opNone))[:len(plainDict(pkl("k", opNone)))-1], ErrNotPlain},
		{"two items at STOP", pkl(opProto, 4, opEmptyDict, opEmptyDict, opStop), ErrNotPlain},
		{"open MARK at STOP", pkl(opProto, 4, opMark, opEmptyDict, opStop), ErrNotPlain},
		{"protocol 6", pkl(opProto, 6, opEmptyDict, opStop), ErrNotPlain},
		{"empty", nil, ErrNotPlain},
		{"garbage", []byte("not a pickle at all"), ErrNotPlain},
		{"a list", pkl(opProto, 4, opEmptyList, opStop), ErrNotPlainDict},
		{"a str", pkl(opProto, 4, "dict", opStop), ErrNotPlainDict},
		{"an int key", plainDict(pkl(opBinInt1, 1, opNone)), ErrNotPlainDict},
		{"a bytes key", plainDict(pkl(opShortBinBytes, 1, 'k', opNone)), ErrNotPlainDict},
		{"an empty key", plainDict(pkl("", opNone)), ErrNotPlainDict},
		{"an OrderedDict", pkl(opProto, 4, sg("collections", "OrderedDict"), opEmptyTuple, opReduce, opStop), ErrNotPlainDict},
		{"a list used twice", plainDict(pkl("k"), list2), ErrNotPlainDict},
		{"a tuple holding a list used twice", plainDict(pkl("k", opEmptyList, opTuple1, opMemoize, opPop, opEmptyList, opBinGet, 0, opAppend, opBinGet, 0, opAppend)), ErrNotPlainDict},
		{"a range", plainDict(pkl("k"), sg("builtins", "range"), pkl(opBinInt1, 3, opTuple1, opReduce)), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := DecodePlainDict(tc.data)
			if tc.want == nil {
				// Plain, but not storable as pickle.load gives it: refused
				// one way or the other.
				if err == nil {
					t.Fatalf("DecodePlainDict = %v, want an error", d)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("DecodePlainDict = %v, %v; want %v", d, err, tc.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%v: not a FormatError (no offset)", err)
			}
		})
	}
}

func TestDecodePlainDictLimits(t *testing.T) {
	t.Parallel()
	data := plainDict(pkl("a", opBinInt1, 1), pkl("b", opBinInt1, 2), pkl("c", opBinInt1, 3))
	if _, err := DecodePlainDict(data, WithLimits(Limits{MaxOps: 5, MaxValueBytes: 1 << 20, MaxDepth: 10, MaxKeys: 10})); !errors.Is(err, ErrLimit) {
		t.Fatalf("5 opcodes allowed: %v, want ErrLimit", err)
	}
}

// TestPlainDictToFile decodes a plain pickled dict and stores it in a new
// file: every value reads back as decoded, shared values and arrays
// included.
func TestPlainDictToFile(t *testing.T) {
	t.Parallel()
	shared := pkl("shared", opMemoize)
	data := plainDict(
		pkl("n", opNone),
		pkl("l", opEmptyList, opMark, opBinInt1, 1, "x", opNewTrue, opAppends),
		pkl("t", opBinInt1, 7), shared, pkl(opTuple2),
		pkl("u", opBinGet, 0),
		pkl("d", opEmptyDict, "k", opBinFloat, []byte{0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, opSetItem),
	)
	d, err := DecodePlainDict(data)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"n", "l", "t", "u", "d"}
	if !reflect.DeepEqual(d.Keys, wantKeys) {
		t.Fatalf("keys %q, want %q", d.Keys, wantKeys)
	}
	want := []any{nil, []any{int64(1), "x", true}, pyval.Tuple{int64(7), "shared"}, "shared", pyval.Dict{{Key: "k", Value: 1.5}}}
	if !reflect.DeepEqual(d.Values, want) {
		t.Fatalf("values %#v, want %#v", d.Values, want)
	}
	name := filepath.Join(t.TempDir(), "out.mmpkl")
	mf, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := mf.PutPlainDict(d); err != nil {
		t.Fatal(err)
	}
	if err := mf.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, err := f.Keys()
	if err != nil || !reflect.DeepEqual(keys, wantKeys) {
		t.Fatalf("file keys %q, %v", keys, err)
	}
	for i, k := range wantKeys {
		v, err := f.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(v, want[i]) {
			t.Errorf("%s: read back %#v, want %#v", k, v, want[i])
		}
		if _, err := f.PlainPickle(k); err != nil {
			t.Errorf("%s: stored value is not plain: %v", k, err)
		}
	}
}

// FuzzDecodePlainDict: whatever the bytes, DecodePlainDict returns a dict
// or a typed error (never an internal error: no panic, no unchecked
// length), and what it returns can be stored.
func FuzzDecodePlainDict(f *testing.F) {
	_, hostile := proofValues()
	f.Add(plainDict(pkl("a", opBinInt1, 1), pkl("b", opEmptyList, opMark, "x", opNone, opAppends)))
	f.Add(plainDict(pkl("k"), hostile["numpy object dtype"]))
	f.Add(plainDict(pkl("t", opBinInt1, 7, "s", opMemoize, opTuple2, "u", opBinGet, 0)))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodePlainDict(data, WithLimits(Limits{MaxKeys: 100, MaxValueBytes: 1 << 20, MaxDepth: 50, MaxOps: 10_000}))
		if err != nil {
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("%q: %v", data, err)
			}
			return
		}
		if len(d.Keys) != len(d.Values) {
			t.Fatalf("%d keys, %d values", len(d.Keys), len(d.Values))
		}
		for i, v := range d.Values {
			switch v.(type) {
			case *Array, *Masked:
				continue
			}
			var buf bytes.Buffer
			if _, err := encodeValue(&buf, v, 0); err != nil && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("key %q: %v", d.Keys[i], err)
			}
		}
	})
}

// TestDecodePlainDictSharedArray: one array used by many keys is stored
// once per key; past the bound (the file's size and the decode limit)
// the dict is refused before anything is written.
func TestDecodePlainDictSharedArray(t *testing.T) {
	t.Parallel()
	// numpy's own pickle of a 64 KiB uint8 array, memoized, then used by
	// 300 more keys: about 19 MiB to store from a 66 KB pickle.
	sg := func(module, name string) []byte { return pkl(module, name, opStackGlobal) }
	arr := pkl(sg("numpy.core.multiarray", "_reconstruct"), sg("numpy", "ndarray"), opBinInt1, 0, opTuple1, opShortBinBytes, 1, 'b', opTuple3, opReduce,
		opMark, opBinInt1, 1, opBinInt, le32(65536), opTuple1,
		sg("numpy", "dtype"), "u1", opNewFalse, opNewTrue, opTuple3, opReduce,
		opMark, opBinInt1, 3, "|", opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0, opTuple, opBuild,
		opNewFalse, opBinBytes, le32(65536), make([]byte, 65536), opTuple, opBuild)
	items := [][]byte{pkl("k0", arr, opBinPut, 200)}
	for i := 1; i <= 300; i++ {
		items = append(items, pkl(fmt.Sprintf("k%d", i), opBinGet, 200))
	}
	data := plainDict(items...)
	d, err := DecodePlainDict(data)
	if err != nil {
		t.Fatalf("default limits: %v", err)
	}
	if len(d.Keys) != 301 {
		t.Fatalf("%d keys, want 301", len(d.Keys))
	}
	if _, ok := d.Values[5].(*Array); !ok {
		t.Fatalf("value is a %T, not an array", d.Values[5])
	}
	_, err = DecodePlainDict(data, WithLimits(Limits{MaxKeys: 1000, MaxValueBytes: 1 << 20, MaxDepth: 100, MaxOps: 1 << 20}))
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "used by many keys") {
		t.Fatalf("1 MiB decode limit: %v, want ErrLimit for the arrays stored", err)
	}
}
