package render

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"math/rand"
	"runtime"
	"strings"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/pyval"
)

// gen makes random decoded values of every kind the renderers know, with
// strings and containers reused (as the memo shares them).
type gen struct {
	r      *rand.Rand
	shared []any
	dtypes []bridge.DType
}

func newGen(seed int64) *gen {
	g := &gen{r: rand.New(rand.NewSource(seed))}
	for _, s := range []string{"|b1", "<i4", ">i8", "<u8", "<f2", "<f4", ">f8", "<f16", "<c8", "<c16", "|S5", "|S1", "<U3", ">U2", "|V4", "<M8[D]", "<M8[s]", "<M8", "<m8[ms]"} {
		d, err := bridge.ParseDType(s)
		if err != nil {
			panic(s + ": " + err.Error())
		}
		g.dtypes = append(g.dtypes, d)
	}
	return g
}

var runePool = []rune{'a', 'Z', '0', ' ', '\'', '"', '\\', '\n', '\r', '\t', 0, 1, 0x1f, 0x7f, 0x80, 0xa0, 0xe9, 0x2028, 0x300, 0xfeff, 0xffff, 0x1f600, 0x10ffff, 0xd800, 0xdfff}

func (g *gen) str() string {
	var b []byte
	for range g.r.Intn(12) {
		r := runePool[g.r.Intn(len(runePool))]
		switch {
		case r >= 0xd800 && r <= 0xdfff: // a lone surrogate in the bridge's canonical form
			b = append(b, 0xed, byte(0x80|(r>>6)&0x3f), byte(0x80|r&0x3f))
		case g.r.Intn(30) == 0:
			b = append(b, 0xff) // not UTF-8
		default:
			b = append(b, string(r)...)
		}
	}
	if g.r.Intn(8) == 0 { // long enough to be remembered (leaf)
		b = bytes.Repeat(b, 20)
	}
	return string(b)
}

func (g *gen) scalar() bridge.Scalar {
	d := g.dtypes[g.r.Intn(len(g.dtypes))]
	if g.r.Intn(6) == 0 { // a long one, remembered (leaf)
		n := map[byte]string{'U': "<U40", 'S': "|S300", 'V': "|V100"}[d.Kind]
		if n != "" {
			d, _ = bridge.ParseDType(n)
		}
	}
	raw := make([]byte, d.ItemSize)
	g.r.Read(raw)
	switch d.Kind {
	case 'U':
		for i := 0; i+4 <= len(raw); i += 4 {
			c := uint32(runePool[g.r.Intn(len(runePool))])
			if d.ByteOrder == '>' {
				binary.BigEndian.PutUint32(raw[i:], c)
			} else {
				binary.LittleEndian.PutUint32(raw[i:], c)
			}
		}
	case 'b':
		raw[0] &= 1
	}
	if g.r.Intn(4) == 0 && len(raw) > 1 {
		raw[len(raw)-1] = 0 // trailing NULs, dropped for S and U
	}
	return bridge.Scalar{DType: d, Raw: raw}
}

func (g *gen) key(depth int) any {
	switch g.r.Intn(8) {
	case 0:
		return nil
	case 1:
		return g.r.Intn(2) == 0
	case 2:
		return int64(g.r.Intn(1000) - 500)
	case 3:
		return []float64{1.5, math.NaN(), math.Inf(1), math.Inf(-1), 1e16, -0.0}[g.r.Intn(6)]
	case 4:
		return new(big.Int).Lsh(big.NewInt(3), uint(64+g.r.Intn(100)))
	case 5:
		return pyval.Tuple{g.str(), int64(1)}
	case 6:
		return g.scalar()
	}
	return g.str()
}

func (g *gen) value(depth int) any {
	if len(g.shared) > 0 && g.r.Intn(6) == 0 {
		return g.shared[g.r.Intn(len(g.shared))]
	}
	n := 14
	if depth > 4 {
		n = 10 // leaves only
	}
	var v any
	switch g.r.Intn(n) {
	case 0:
		v = nil
	case 1:
		v = g.r.Intn(2) == 0
	case 2:
		v = g.r.Int63() - g.r.Int63()
	case 3:
		v = []float64{0, -0.0, 1.5, 1e16, 1e-5, 123456789.125, math.NaN(), math.Inf(1), math.Inf(-1), 5e-324}[g.r.Intn(10)]
	case 4:
		v = new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(7), uint(g.r.Intn(300))))
	case 5:
		v = g.str()
	case 6:
		b := make([]byte, g.r.Intn(10)+g.r.Intn(2)*100)
		g.r.Read(b)
		if g.r.Intn(2) == 0 {
			v = pyval.ByteArray(b)
		} else {
			v = b
		}
	case 7:
		v = g.scalar()
	case 8:
		v = g.dtypes[g.r.Intn(len(g.dtypes))]
	case 9:
		v = []any{complex(1, 2), pyval.Object{Module: "os", Name: "system", Why: "not allowed"}}[g.r.Intn(2)]
	default:
		items := make([]any, g.r.Intn(5))
		for i := range items {
			items[i] = g.value(depth + 1)
		}
		switch g.r.Intn(6) {
		case 0:
			v = pyval.Tuple(items)
		case 1:
			v = pyval.Set(items)
		case 2:
			v = pyval.FrozenSet(items)
		case 3, 4:
			d := pyval.Dict{}
			for _, x := range items {
				d = append(d, pyval.DictItem{Key: g.key(depth), Value: x})
			}
			if g.r.Intn(3) == 0 {
				v = pyval.OrderedDict(d)
			} else {
				v = d
			}
		default:
			v = items
		}
	}
	if g.r.Intn(4) == 0 {
		g.shared = append(g.shared, v)
	}
	return v
}

// TestRenderSameAsBefore: the budgeted renderers write byte for byte what
// the renderers before them wrote (legacy_test.go), on random values of
// every kind.
func TestRenderSameAsBefore(t *testing.T) {
	t.Parallel()
	g := newGen(1)
	for i := range 3000 {
		v := g.value(0)
		if got, want := Repr(v, 0), legacyRepr(v, 0); got != want {
			t.Fatalf("value %d: Repr\n got %s\nwant %s", i, got, want)
		}
		for _, max := range []int{1, 7, 60} {
			if got, want := Repr(v, max), legacyRepr(v, max); got != want && len(want) <= max {
				t.Fatalf("value %d: Repr(%d)\n got %s\nwant %s", i, max, got, want)
			}
		}
		j, exact := JSONValue(v)
		lj, lexact := legacyJSONValue(v)
		lb, err := legacyMarshal(lj)
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		jb, _ := j.(json.RawMessage)
		if !bytes.Equal(jb, lb) || exact != lexact {
			t.Fatalf("value %d (%s): JSON\n got %s %v\nwant %s %v", i, legacyRepr(v, 0), jb, exact, lb, lexact)
		}
	}
}

// TestRenderBounded: whatever the value and the budget, what is written
// fits the budget, or nothing is written and the error is a *LimitError
// (ErrLimit); Repr(v, max) is at most max bytes and "...".
func TestRenderBounded(t *testing.T) {
	t.Parallel()
	g := newGen(2)
	for i := range 3000 {
		v := g.value(0)
		max := int64(1 + g.r.Intn(300))
		for _, how := range []string{"repr", "describe"} {
			var w bytes.Buffer
			b := NewBudget(context.Background(), max)
			var err error
			if how == "repr" {
				err = WriteRepr(b, &w, v)
			} else {
				err = WriteDescribe(b, &w, "", v, false)
			}
			var le *LimitError
			switch {
			case err == nil && (int64(w.Len()) > max || int64(w.Len()) != b.Used()):
				t.Fatalf("value %d: %s wrote %d bytes (budget %d, used %d)", i, how, w.Len(), max, b.Used())
			case err != nil && (!errors.As(err, &le) || !errors.Is(err, bridge.ErrLimit) || w.Len() != 0 || le.Max != max):
				t.Fatalf("value %d: %s: %v after %d bytes (budget %d)", i, how, err, w.Len(), max)
			}
		}
		if s := Repr(v, int(max)); len(s) > int(max)+3 {
			t.Fatalf("value %d: Repr(%d) is %d bytes", i, max, len(s))
		}
	}
}

// cancelOnWrite cancels its context at the first write.
type cancelOnWrite struct {
	cancel context.CancelFunc
	n      int
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	c.cancel()
	c.n += len(p)
	return len(p), nil
}

// TestRenderStopsWhenCancelled: a cancelled render stops within a piece;
// one cancelled before starts nothing.
func TestRenderStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	s := strings.Repeat("a\x01", 5000)
	v := make([]any, 20_000) // 600 MB of repr: one shared str
	for i := range v {
		v[i] = s
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelOnWrite{cancel: cancel}
	err := WriteRepr(NewBudget(ctx, 1<<40), w, v)
	if !errors.Is(err, context.Canceled) || w.n > 2*outPiece {
		t.Errorf("cancelled while writing: %v after %d bytes", err, w.n)
	}
	var buf bytes.Buffer
	if err := WriteDescribe(NewBudget(ctx, 0), &buf, "", v, false); !errors.Is(err, context.Canceled) || buf.Len() != 0 {
		t.Errorf("cancelled before: %v after %d bytes", err, buf.Len())
	}
}

// TestRenderSharedCostsOnce: the value (one str of 10,000 control
// characters used 26,000 times: 1.5 GB of JSON) and others like it are
// refused at the limit while allocating little, and what fits is
// written once. Not parallel: it measures the process's allocations.
func TestRenderSharedCostsOnce(t *testing.T) {
	ctrl := make([]byte, 10_000)
	for i := range ctrl {
		ctrl[i] = byte(1 + i%31)
	}
	uses := func(x any, n int) []any {
		v := make([]any, n)
		for i := range v {
			v[i] = x
		}
		return v
	}
	big := bridge.Scalar{Raw: make([]byte, 240_000)}
	big.DType, _ = bridge.ParseDType("<U60000")
	for i := 0; i < len(big.Raw); i += 4 {
		big.Raw[i] = 7
	}
	bytesS := bridge.Scalar{Raw: bytes.Repeat([]byte{0xff}, 100_000)}
	bytesS.DType, _ = bridge.ParseDType("|S100000")
	cases := []struct {
		name string
		v    any
	}{
		{"a 10,000-control str 26,000 times", uses(string(ctrl), 26_000)},
		{"a 10,000-byte bytes 30,000 times", uses(bytes.Repeat([]byte{0xff}, 10_000), 30_000)},
		{"dicts of a 10,000-control key 26,000 times", uses(pyval.Dict{{Key: string(ctrl), Value: nil}}, 26_000)},
		{"a str_ scalar of 60,000 controls 2,000 times", uses(big, 2_000)},
		{"a bytes_ scalar of 100,000 0xff 1,000 times", uses(bytesS, 1_000)},
		{"lists 30 deep holding the one below twice", func() any {
			var v any = string(ctrl[:100])
			for range 30 {
				v = []any{v, v}
			}
			return v
		}()},
	}
	for _, c := range cases {
		for _, how := range []string{"repr", "describe"} {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			b := NewBudget(context.Background(), 0)
			var err error
			if how == "repr" {
				err = WriteRepr(b, io.Discard, c.v)
			} else {
				err = WriteDescribe(b, io.Discard, "", c.v, false)
			}
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			// Bytes are null in JSON: their description fits.
			if !errors.Is(err, bridge.ErrLimit) && (how == "repr" || err != nil) {
				t.Errorf("%s: %s: %v, want ErrLimit", c.name, how, err)
			}
			if alloc > 8<<20 {
				t.Errorf("%s: %s allocated %d bytes refusing it", c.name, how, alloc)
			}
			t.Logf("%-45s %-8s %8d B allocated: %v", c.name, how, alloc, err)
		}
	}
}
