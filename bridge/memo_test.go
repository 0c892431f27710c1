package bridge

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
)

// mtStarts returns the memo index each entry of a reference file starts
// from: the largest trailer of the entries before it, at least 1.
func mtStarts(data []byte) map[int64]int32 {
	starts := map[int64]int32{}
	memo := int32(1)
	for pos := int64(headerSize); pos+9 <= int64(len(data))-terminatorSize && data[pos] == opFrame; {
		n := int64(vtLE32(data[pos+1:]))
		starts[pos] = memo
		memo = max(memo, int32(vtLE32(data[pos+9+n-7:])))
		pos += 9 + n
	}
	return starts
}

// mtOp is an opcode of a value pickle with its memo index, if any.
type mtOp struct {
	code byte
	memo int64
	raw  string
}

func mtOps(t *testing.T, b []byte) []mtOp {
	t.Helper()
	src := &source{data: b, size: int64(len(b))}
	sc := src.scanner(0, src.size)
	var out []mtOp
	for !sc.done() {
		o, err := sc.next()
		if err != nil {
			t.Fatal(err)
		}
		m := mtOp{code: o.Code, memo: -1, raw: string(b[o.Off:o.End])}
		switch o.Code {
		case opBinPut, opLongBinPut, opBinGet, opLongBinGet:
			m.memo, m.raw = o.Int, ""
		}
		out = append(out, m)
	}
	return out
}

func TestRenumberMemoCorpus(t *testing.T) {
	var pairs [][2]string // original and renumbered pickles, for Python
	var reprs []string
	for _, e := range vtCorpus(t) {
		// The start a value has is that of its first memo write; with none,
		// that of the entries before it (vacuum moves values and keeps
		// their memo indices, so after it only the first holds).
		start := mtStarts(e.data)[e.off-11-int64(len(e.key))]
		if start == 0 {
			t.Fatalf("%s %q: entry not found", e.file, e.key)
		}
		for _, o := range mtOps(t, e.raw()) {
			if o.code == opBinPut || o.code == opLongBinPut {
				start = int32(o.memo)
				break
			}
		}
		out, end, err := renumberMemo(e.raw(), e.off, 0, int64(start))
		if err != nil {
			t.Fatalf("%s %q: %v", e.file, e.key, err)
		}
		if !bytes.Equal(out, e.raw()) {
			t.Errorf("%s %q: renumbered from its own start %d:\n got %x\nwant %x", e.file, e.key, start, etShort(out), etShort(e.raw()))
		}
		// mmappickle's array encoding stores 0 whatever the memo.
		if end != int64(e.trailer) && !(e.trailer == 0 && strings.HasPrefix(e.file, "mmappickle/")) {
			t.Errorf("%s %q: memo end %d, the file stores %d", e.file, e.key, end, e.trailer)
		}
		if !strings.HasSuffix(e.file, "/memo.mmpkl") {
			continue
		}
		for _, other := range []int32{0, 2, 255, 256, 70000} {
			out, end, err := renumberMemo(e.raw(), e.off, 0, int64(other))
			if err != nil {
				t.Fatal(err)
			}
			a, b := mtOps(t, e.raw()), mtOps(t, out)
			puts := int32(0)
			for i := range a {
				if a[i].memo < 0 && a[i] != b[i] || a[i].memo >= 0 && b[i].memo-a[i].memo != int64(other-start) {
					t.Fatalf("%s %q from %d: opcode %d: %+v became %+v", e.file, e.key, other, i, a[i], b[i])
				}
				if a[i].code == opBinPut || a[i].code == opLongBinPut {
					puts++
				}
			}
			if len(a) != len(b) || end != int64(other+puts) {
				t.Fatalf("%s %q from %d: %d opcodes became %d, memo end %d", e.file, e.key, other, len(a), len(b), end)
			}
			pairs = append(pairs, [2]string{hex.EncodeToString(e.raw()), hex.EncodeToString(out)})
			reprs = append(reprs, e.repr)
		}
	}
	if len(pairs) < 30 {
		t.Fatalf("%d renumbered values", len(pairs))
	}
	// CPython reads the renumbered values back to the same.
	env := pyrun.Numpy1(t)
	in := filepath.Join(t.TempDir(), "pairs.json")
	b, _ := json.Marshal(pairs)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := env.Run(t, `
import json, pickle, sys, warnings
warnings.simplefilter("ignore")
res = []
for a, b in json.load(open(sys.argv[1])):
    load = lambda h: repr(pickle.loads(b"\x80\x04" + bytes.fromhex(h) + b"."))
    res.append([load(a), load(b)])
print(json.dumps(res))
`, in)
	var got [][2]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		if g[0] != g[1] || reprs[i] != "" && g[1] != reprs[i] {
			t.Errorf("value %d: original %s, renumbered %s, manifest %s", i, g[0], g[1], reprs[i])
		}
	}
}

func TestRenumberMemoForms(t *testing.T) {
	for _, c := range []struct {
		name     string
		in, want []byte
		start    int32
	}{
		{"MEMOIZE", vtOps(opEmptyList, opMemoize, opBinGet, 0, opAppend), vtOps(opEmptyList, opBinPut, 4, opBinGet, 4, opAppend), 4},
		{"text forms", vtOps(opEmptyList, "p12\n", "g12\n", opAppend), vtOps(opEmptyList, opBinPut, 4, opBinGet, 4, opAppend), 4},
		{"long forms made short", vtOps(opEmptyList, opLongBinPut, "\x00\x01\x00\x00", opLongBinGet, "\x00\x01\x00\x00", opAppend),
			vtOps(opEmptyList, opBinPut, 255, opBinGet, 255, opAppend), 255},
		{"short forms made long", vtOps(opEmptyList, opBinPut, 1, opBinGet, 1, opAppend),
			vtOps(opEmptyList, opLongBinPut, "\x00\x01\x00\x00", opLongBinGet, "\x00\x01\x00\x00", opAppend), 256},
		{"unread writes kept", vtOps(opEmptyList, opBinPut, 9, opMark, opNone, opBinPut, 3, opAppends),
			vtOps(opEmptyList, opBinPut, 1, opMark, opNone, opBinPut, 2, opAppends), 1},
		{"index written twice", vtOps(opNone, opBinPut, 0, opNone, opBinPut, 0, opBinGet, 0, opTuple3),
			vtOps(opNone, opBinPut, 1, opNone, opBinPut, 2, opBinGet, 2, opTuple3), 1},
		{"MEMOIZE after PUT", vtOps(opNone, opBinPut, 5, opNone, opMemoize, opBinGet, 1, opBinGet, 5, opTuple2, opTuple3),
			vtOps(opNone, opBinPut, 0, opNone, opBinPut, 1, opBinGet, 1, opBinGet, 0, opTuple2, opTuple3), 0},
		{"payloads untouched", vtOps(opShortBinBytes, 2, "q\x01", opBinPut, 0, opPop, opBinUnicode, "\x01\x00\x00\x00h", opBinGet, 0, opTuple2),
			vtOps(opShortBinBytes, 2, "q\x01", opBinPut, 7, opPop, opBinUnicode, "\x01\x00\x00\x00h", opBinGet, 7, opTuple2), 7},
		{"no memo", nil, []byte{}, 3},
	} {
		out, end, err := renumberMemo(c.in, 50, 0, int64(c.start))
		puts := int32(0)
		for _, o := range mtOps(t, c.want) {
			if o.code == opBinPut || o.code == opLongBinPut {
				puts++
			}
		}
		if err != nil || !bytes.Equal(out, c.want) || end != int64(c.start+puts) {
			t.Errorf("%s: got %x, %d, %v; want %x, %d", c.name, out, end, err, c.want, c.start+puts)
		}
	}
}

func TestRenumberMemoErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		at   int64 // offset of the error in the input
	}{
		{"GET before PUT", vtOps(opNone, opBinGet, 0), 1},
		{"GET of another index", vtOps(opNone, opBinPut, 1, opBinGet, 2), 3},
		{"text GET before PUT", vtOps(opNone, "g3\n"), 1},
		{"bad text index", vtOps(opNone, "px\n"), 1},
		{"opcode 0xff", vtOps(opNone, 0xff), 1},
		{"STOP", vtOps(opNone, opStop), 1},
		{"FRAME", vtOps(opFrame, "\x01\x00\x00\x00\x00\x00\x00\x00", opNone), 0},
		{"PROTO", vtOps(opProto, 4, opNone), 0},
		{"truncated", vtOps(opNone, opBinBytes, "\x05\x00\x00\x00ab"), 1},
	} {
		_, _, err := renumberMemo(c.in, 1000, 0, 1)
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Offset != 1000+c.at {
			t.Errorf("%s: %v, want an error at offset %d", c.name, err, 1000+c.at)
		}
	}
	if _, _, err := renumberMemo(nil, 0, 0, -1); err == nil {
		t.Error("a negative memo start was accepted")
	}
}
