package bridge_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
	"mmpbridge/pyval"
)

// sharedList is a protocol 2 pickle of ["abc", "abc"], one str through the
// memo (BINPUT 1, BINGET 1).
var sharedList = []byte{0x80, 2, ']', 'q', 0, '(', 'X', 3, 0, 0, 0, 'a', 'b', 'c', 'q', 1, 'h', 1, 'e', '.'}

// salvageOriginal writes a file of varied entries: arrays (one reserved,
// one big), plain values, a value sharing objects through its memo, a
// replaced key and a deleted one.
func salvageOriginal(t *testing.T, name string, opts ...bridge.Option) {
	t.Helper()
	f, err := bridge.Create(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	i64 := bridge.DType{ByteOrder: '<', Kind: 'i', ItemSize: 8}
	f32 := bridge.DType{ByteOrder: '<', Kind: 'f', ItemSize: 4}
	arr := func(key string, dt bridge.DType, n int, fill func(b []byte)) {
		b := make([]byte, n*dt.ItemSize)
		fill(b)
		if err := f.PutArray(key, bridge.ArrayHeader{DType: dt, Shape: []int{n}}, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	put := func(key string, v any) {
		if err := f.Put(key, v); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	arr("ints", i64, 1000, func(b []byte) {
		for i := range 1000 {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(i*i))
		}
	})
	put("small", int64(7))
	put("text", "hello, "+string(bytes.Repeat([]byte("abc"), 50)))
	put("meta", map[string]any{"name": "x", "n": int64(3), "xs": []any{1.5, true, nil}})
	put("gone", "bye")
	blob := make([]byte, 3000)
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	put("blob", blob)
	arr("f32", f32, 5000, func(b []byte) {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	})
	put("shared", pyval.Object{Pickle: sharedList})
	put("small", int64(8)) // replaces 7
	if err := f.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	put("u", "unicode ✓ 🐍")
	put("nested", []any{map[string]any{"a": []any{int64(1), int64(2)}}, "s", int64(-5), 2.25})
	s, err := f.Reserve("r", bridge.ArrayHeader{DType: f32, Shape: []int{20000}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteAt([]byte("reserved but written"), 4000); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	arr("big", i64, 4000, func(b []byte) {
		for i := range b {
			b[i] = byte(i * 31)
		}
	})
	put("last", int64(42))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// valueText is a value as one comparable string: an array's dtype, shape and
// bytes; another value's Python repr.
func valueText(t *testing.T, r *bridge.Reader, key string) string {
	t.Helper()
	v, err := r.Get(key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	arrText := func(a *bridge.Array) string {
		b, err := io.ReadAll(a.Section())
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%v %v %v %x", a.DType, a.Shape, a.Fortran, b)
	}
	switch v := v.(type) {
	case *bridge.Array:
		return arrText(v)
	case *bridge.Masked:
		return arrText(v.Data) + " mask " + arrText(v.Mask)
	}
	return render.Repr(v, 1<<20)
}

type entrySpan struct {
	key      string
	off, end int64
}

// damage is one way of damaging a file, with what it did: the original
// byte range it touched and how offsets after it move.
type damage struct {
	name     string
	from, to int64 // original bytes touched: [from, to)
	shift    int64 // offsets at or after to move by this much (inserted - deleted)
	cut      int64 // the file was cut here (-1: not cut)
}

// toOriginal maps an offset of the damaged file back to the original.
func (d damage) toOriginal(off int64) int64 {
	if d.shift != 0 && off >= d.to+d.shift {
		return off - d.shift
	}
	return off
}

func (d damage) touches(s entrySpan) bool {
	if d.cut >= 0 && s.end > d.cut {
		return true
	}
	return s.off < d.to && d.from < s.end || d.from == d.to && s.off < d.from && d.from < s.end
}

// damageFile applies a seeded damage of kind k to b.
func damageFile(rng *rand.Rand, k int, b []byte, spans []entrySpan) ([]byte, damage) {
	out := bytes.Clone(b)
	n := int64(len(b))
	pos := func() int64 {
		// Half the time where the structure is: an entry's head or
		// trailer; else anywhere.
		if rng.IntN(2) == 0 {
			s := spans[rng.IntN(len(spans))]
			if rng.IntN(2) == 0 {
				return s.off + rng.Int64N(min(48, s.end-s.off))
			}
			return s.end - 1 - rng.Int64N(min(12, s.end-s.off))
		}
		return rng.Int64N(n)
	}
	switch k {
	case 0: // flip a few bytes close together
		at := pos()
		d := damage{name: "flip", from: at, to: at, cut: -1}
		for range 1 + rng.IntN(4) {
			i := min(n-1, at+rng.Int64N(64))
			out[i] ^= byte(1 + rng.IntN(255))
			d.to = max(d.to, i+1)
		}
		return out, d
	case 1: // cut
		at := max(24, pos())
		return out[:at], damage{name: "truncate", from: at, to: n, cut: at}
	case 2: // overwrite a range with random bytes
		at, l := pos(), 1+rng.Int64N(300)
		l = min(l, n-at)
		for i := at; i < at+l; i++ {
			out[i] = byte(rng.Uint32())
		}
		return out, damage{name: "overwrite", from: at, to: at + l, cut: -1}
	case 3: // zero a 512-byte sector
		at := pos() &^ 511
		l := min(512, n-at)
		clear(out[at : at+l])
		return out, damage{name: "zero sector", from: at, to: at + l, cut: -1}
	case 4: // delete an entry's frame header (9 bytes)
		s := spans[rng.IntN(len(spans))]
		out = append(out[:s.off:s.off], b[s.off+9:]...)
		return out, damage{name: "delete frame header", from: s.off, to: s.off + 9, shift: -9, cut: -1}
	default: // insert random bytes
		at, l := max(24, pos()), 1+rng.Int64N(40)
		ins := make([]byte, l)
		for i := range ins {
			ins[i] = byte(rng.Uint32())
		}
		out = append(append(out[:at:at], ins...), b[at:]...)
		return out, damage{name: "insert", from: at, to: at, shift: l, cut: -1}
	}
}

// TestSalvageDamaged damages a file at random places, in many seeded ways,
// and salvages it: salvage never fails but on a file with neither header
// nor entry, never saves a value other than the original's under that key
// (unless the damage touched that entry's bytes: array data and string
// bytes have no checksum), saves every live entry the damage left
// untouched, and its output verifies and reads.
func TestSalvageDamaged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seeds := 60
	if testing.Short() {
		seeds = 15
	}
	for _, prof := range []bridge.Profile{bridge.Portable, bridge.Mmappickle} {
		orig := filepath.Join(dir, fmt.Sprintf("orig-%v.mmpkl", prof))
		salvageOriginal(t, orig, bridge.WithProfile(prof))
		b, err := os.ReadFile(orig)
		if err != nil {
			t.Fatal(err)
		}
		r, err := bridge.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		var spans []entrySpan
		for _, k := range r.Keys() {
			want[k] = valueText(t, r, k)
			e, _ := r.Entry(k)
			spans = append(spans, entrySpan{k, e.Offset, e.Offset + e.Size})
		}
		var all []entrySpan // every entry, deleted ones too
		for _, e := range r.Entries() {
			all = append(all, entrySpan{e.Key, e.Offset, e.Offset + e.Size})
		}
		stats := map[string][2]int{}
		for kind := range 6 {
			for seed := range seeds {
				rng := rand.New(rand.NewPCG(uint64(kind), uint64(seed)))
				bad, d := damageFile(rng, kind, b, all)
				label := fmt.Sprintf("%v/%s/seed %d (bytes %d-%d)", prof, d.name, seed, d.from, d.to)
				out := filepath.Join(dir, fmt.Sprintf("out-%v-%d-%d.mmpkl", prof, kind, seed))
				dst, err := bridge.Create(out)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := bridge.Salvage(context.Background(), bytes.NewReader(bad), int64(len(bad)), dst)
				if err != nil {
					dst.Close()
					if errors.Is(err, bridge.ErrNotMmappickle) && d.from < 24 {
						continue
					}
					t.Fatalf("%s: salvage: %v", label, err)
				}
				if err := dst.Close(); err != nil {
					t.Fatalf("%s: %v", label, err)
				}
				got, err := bridge.Open(out)
				if err != nil {
					t.Fatalf("%s: the salvaged file does not open: %v", label, err)
				}
				gr, err := got.Reader()
				if err != nil {
					t.Fatal(err)
				}
				if vr, err := bridge.VerifyFile(out, nil); err != nil || !vr.OK() {
					t.Errorf("%s: the salvaged file does not verify: %v %+v", label, err, vr)
				}
				saved := map[string]bool{}
				for _, s := range rep.Saved {
					saved[s.Key] = true
					w, ok := want[s.Key]
					if !ok {
						t.Errorf("%s: saved key %q, which the original does not have live", label, s.Key)
						continue
					}
					span := entrySpan{s.Key, d.toOriginal(s.Offset), d.toOriginal(s.Offset) + s.Size}
					if g := valueText(t, gr, s.Key); g != w && !d.touches(span) {
						t.Errorf("%s: key %q (entry at %d, untouched) saved with another value:\n%.200s\nwant\n%.200s", label, s.Key, s.Offset, g, w)
					}
				}
				if keys := gr.Keys(); len(keys) != len(rep.Saved) {
					t.Errorf("%s: the report lists %d saved entries, the file holds %d keys", label, len(rep.Saved), len(keys))
				}
				for _, s := range spans {
					if !d.touches(s) && !saved[s.key] {
						t.Errorf("%s: key %q (entry at %d-%d) untouched but not saved; report: %+v", label, s.key, s.off, s.end, rep.Lost)
					}
				}
				for _, l := range rep.Lost {
					if l.Err == nil || l.Offset < 0 || l.Offset > int64(len(bad)) {
						t.Errorf("%s: lost entry without a cause or offset: %+v", label, l)
					}
				}
				got.Close()
				os.Remove(out)
				st := stats[d.name]
				st[0] += len(rep.Saved)
				st[1] += len(rep.Lost)
				stats[d.name] = st
			}
		}
		t.Logf("%v: saved/lost by damage: %v", prof, stats)
	}
}

// TestSalvageRefuses: entries whose value is not plain data, or reads
// another entry's memo slots, are reported lost with their key and the
// cause; the others are saved.
func TestSalvageRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "f.mmpkl")
	f, err := bridge.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []struct {
		key string
		p   []byte
	}{
		{"ok", []byte{0x80, 3, 'K', 5, '.'}},
		// os.system('true'): GLOBAL, then a call.
		{"evil", append(append([]byte{0x80, 3, 'c'}, "os\nsystem\n"...), 'X', 4, 0, 0, 0, 't', 'r', 'u', 'e', 0x85, 'R', '.')},
		{"after", []byte{0x80, 3, 'K', 6, '.'}},
	} {
		if err := f.Put(kv.key, pyval.Object{Pickle: kv.p}); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	// A hand-made entry that reads memo slot 1 without writing it
	// (BINGET 1), appended before the terminator.
	value := []byte{'h', 1}
	entry := []byte{0x95}
	entry = binary.LittleEndian.AppendUint64(entry, uint64(2+4+len(value)+8))
	entry = append(entry, 0x8c, 4, 'm', 'e', 'm', 'o')
	entry = append(entry, value...)
	entry = append(entry, 'J', 9, 0, 0, 0, '0', 0x88, '0')
	b = append(append(b[:len(b)-11:len(b)-11], entry...), b[len(b)-11:]...)
	dst, err := bridge.Create(filepath.Join(dir, "out.mmpkl"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	rep, err := bridge.Salvage(context.Background(), bytes.NewReader(b), int64(len(b)), dst)
	if err != nil {
		t.Fatal(err)
	}
	var saved []string
	for _, s := range rep.Saved {
		saved = append(saved, s.Key)
	}
	if fmt.Sprint(saved) != "[ok after]" {
		t.Errorf("saved %q, want ok and after", saved)
	}
	lost := map[string]error{}
	for _, l := range rep.Lost {
		lost[l.Key] = l.Err
	}
	if err := lost["evil"]; !errors.Is(err, bridge.ErrNotPlain) {
		t.Errorf("evil: lost with %v, want ErrNotPlain", err)
	}
	if err := lost["memo"]; !errors.Is(err, bridge.ErrSharedMemo) {
		t.Errorf("memo: lost with %v, want ErrSharedMemo", err)
	}
	if len(rep.Lost) != 2 {
		t.Errorf("lost %+v", rep.Lost)
	}
}

// TestSalvageNestedFramesBounded: a file of entry frames nested in
// entry frames (each parses and ends where all end; each value skips the
// frames inside it as one BINBYTES and fails only at its end) would cost
// salvage the square of its size in work: its budget stops it, and it
// reports the rest lost as a limit.
func TestSalvageNestedFramesBounded(t *testing.T) {
	t.Parallel()
	const depth = 5000
	const level = 9 + 3 + 5 // FRAME n, SHORT_BINUNICODE "k", BINBYTES len
	var b bytes.Buffer
	b.Write([]byte{0x80, 4, 0x95, 13, 0, 0, 0, 0, 0, 0, 0, 'J', 1, 0, 0, 0, '0', 'J', 0, 0, 0, 0, '0', '('})
	tail := int64(24 + level*depth) // the bad opcode, then one trailer ends every frame
	for i := range depth {
		p := int64(24 + level*i)
		b.WriteByte(0x95)
		b.Write(binary.LittleEndian.AppendUint64(nil, uint64(tail+1+8-p-9)))
		b.Write([]byte{0x8c, 1, 'k', 'B'})
		b.Write(binary.LittleEndian.AppendUint32(nil, uint32(tail-(p+level))))
	}
	b.WriteByte(0xff)
	b.Write([]byte{'J', 0, 0, 0, 0, '0', 0x88, '0'})
	b.Write([]byte{0x95, 2, 0, 0, 0, 0, 0, 0, 0, '}', '.'})
	data := b.Bytes()
	dst, err := bridge.Create(filepath.Join(t.TempDir(), "out.mmpkl"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	rep, err := bridge.Salvage(context.Background(), bytes.NewReader(data), int64(len(data)), dst)
	runtime.ReadMemStats(&ms1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Saved) != 0 || len(rep.Lost) == 0 || !errors.Is(rep.Lost[len(rep.Lost)-1].Err, bridge.ErrLimit) {
		t.Errorf("saved %d, lost %+v; want nothing saved and the last loss a limit", len(rep.Saved), rep.Lost)
	}
	if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 64<<20 {
		t.Errorf("salvage of a %d-byte file allocated %d bytes", len(data), alloc)
	}
}

// TestSalvageDuplicateKeys: of two live entries of one key (a replace
// interrupted between its two flag writes), the later is saved, as
// pickle.load keeps it; when the later cannot be saved, neither is (the
// earlier is not the value the file holds under that key).
func TestSalvageDuplicateKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "f.mmpkl")
	f, err := bridge.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []struct {
		k string
		v int64
	}{{"k", 1}, {"other", 5}, {"k", 2}} {
		if err := f.Put(kv.k, kv.v); err != nil {
			t.Fatal(err)
		}
	}
	r, err := f.Reader()
	if err != nil {
		t.Fatal(err)
	}
	var ks []bridge.Entry
	for _, e := range r.Entries() {
		if e.Key == "k" {
			ks = append(ks, e)
		}
	}
	f.Close()
	if len(ks) != 2 || ks[0].Live || !ks[1].Live {
		t.Fatalf("entries of k: %+v", ks)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[ks[0].Offset+ks[0].Size-2] = 0x88 // the old one live again
	for _, tc := range []struct {
		name    string
		damage  bool
		want    string
		wantErr int
	}{
		{"both intact", false, "[other k]", 0},
		{"the later damaged", true, "[other]", 2},
	} {
		d := bytes.Clone(b)
		if tc.damage {
			d[ks[1].Offset+ks[1].Size-8] = 0 // its trailer
		}
		dst, err := bridge.Create(filepath.Join(dir, tc.name+".mmpkl"))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := bridge.Salvage(context.Background(), bytes.NewReader(d), int64(len(d)), dst)
		if err != nil {
			t.Fatal(err)
		}
		var saved []string
		for _, s := range rep.Saved {
			saved = append(saved, s.Key)
		}
		keys, _ := dst.Keys()
		if fmt.Sprint(saved) != tc.want || fmt.Sprint(keys) != tc.want || len(rep.Lost) != tc.wantErr {
			t.Errorf("%s: saved %q, file holds %q, lost %+v; want %s", tc.name, saved, keys, rep.Lost, tc.want)
		}
		if !tc.damage {
			g, _ := dst.Get("k")
			if g != int64(2) {
				t.Errorf("%s: k = %v, want the later value 2", tc.name, g)
			}
		}
		dst.Close()
	}
}

// TestSalvageBigArray: an array too big to be read into memory (a 64 MiB
// reservation with 1 MiB written) is decoded from the file and its data
// copied, holes kept holes, bit for bit, next to a damaged entry.
func TestSalvageBigArray(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "f.mmpkl")
	f, err := bridge.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Put("small", "x"); err != nil {
		t.Fatal(err)
	}
	const n = 64 << 20
	s, err := f.Reserve("r", bridge.ArrayHeader{DType: bridge.DType{ByteOrder: '|', Kind: 'u', ItemSize: 1}, Shape: []int{n}})
	if err != nil {
		t.Fatal(err)
	}
	patch := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	if _, err := s.WriteAt(patch, 33_333_333); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := f.Reader()
	if err != nil {
		t.Fatal(err)
	}
	es, _ := r.Entry("small")
	f.Close()
	// Damage small's trailer in place (the file keeps its holes).
	osf, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer osf.Close()
	if _, err := osf.WriteAt([]byte{0}, es.Offset+es.Size-8); err != nil {
		t.Fatal(err)
	}
	st, _ := osf.Stat()
	out := filepath.Join(dir, "out.mmpkl")
	dst, err := bridge.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	rep, err := bridge.Salvage(context.Background(), osf, st.Size(), dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Saved) != 1 || rep.Saved[0].Key != "r" || len(rep.Lost) != 1 || rep.Lost[0].Key != "small" {
		t.Fatalf("saved %+v, lost %+v", rep.Saved, rep.Lost)
	}
	v, err := dst.Get("r")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(v.(*bridge.Array).Section())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, n)
	copy(want[33_333_333:], patch)
	if !bytes.Equal(got, want) {
		t.Error("the salvaged array differs")
	}
	ost, _ := os.Stat(out)
	if sys, ok := ost.Sys().(*syscall.Stat_t); ok {
		probe := filepath.Join(dir, "probe")
		pf, _ := os.Create(probe)
		pf.WriteAt(make([]byte, 4096), 16<<20)
		pst, _ := pf.Stat()
		pf.Close()
		if pst.Sys().(*syscall.Stat_t).Blocks*512 < 8<<20 && sys.Blocks*512 > 4<<20 {
			t.Errorf("the salvaged file allocates %d bytes for a 64 MiB reservation holding 1 MiB", sys.Blocks*512)
		}
	}
}
