package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"mmpbridge/internal/render"
)

// cheapFiles are files under 1 MB that build a lot: amplification through
// the memo, huge ints, memo floods, deep nesting, big containers. Each is
// one entry "x" (a deleted entry where the value breaks a live one).
func cheapFiles() map[string][]byte {
	le32 := func(v int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
	str := func(s string) []byte { return append([]byte{0x8c, byte(len(s))}, s...) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	rep := func(b []byte, n int) []byte { return bytes.Repeat(b, n) }
	const k500 = 500 << 10
	bigBytes := cat([]byte{'B'}, le32(k500), make([]byte, k500))
	bigStr := cat([]byte{'X'}, le32(k500), rep([]byte("a"), k500))
	var memoPuts, intLines, floats, dictItems, tuples []byte
	for i := range 190_000 {
		memoPuts = append(memoPuts, cat([]byte{'r'}, le32(i+1))...)
	}
	for range 30_000 {
		intLines = append(intLines, "I123456789012345678901234567890\n"...)
	}
	for range 80_000 {
		floats = append(floats, 'G', 0x7f, 0xf8, 0, 0, 0, 0, 0, 0)
	}
	for i := range 100_000 {
		dictItems = append(dictItems, cat([]byte{'J'}, le32(i), []byte{'N'})...)
	}
	for i := range 50_000 {
		tuples = append(tuples, cat([]byte{'J'}, le32(i), []byte{'N', 0x88, 0x87})...)
	}
	escaped := cat([]byte("S'"), rep([]byte(`\x41\101`), 110_000), []byte("'\n"))
	return map[string][]byte{
		"bytearray of one 500 KB bytes 3,000 times": cat(str("builtins"), str("bytearray"), []byte{0x93, 'q', 0, '0'},
			bigBytes, []byte{'q', 1, '0', ']', '('}, rep([]byte{'h', 0, 'h', 1, 0x85, 'R'}, 3000), []byte{'e'}),
		"one 500 KB str 3,000 times":       cat(bigStr, []byte{'q', 1, '('}, rep([]byte{'h', 1}, 3000), []byte{'l', 0x86}),
		"a LONG4 of 1 MB":                  cat([]byte{0x8b}, le32(1000_000), rep([]byte{0x5a}, 1000_000)),
		"190,000 memo writes":              cat([]byte{'N'}, memoPuts),
		"950,000 MEMOIZEs":                 cat([]byte{'N'}, rep([]byte{0x94}, 950_000)),
		"tuples nested 900,000 deep":       cat([]byte{'N'}, rep([]byte{0x85}, 900_000)),
		"900,000 items under the value":    cat(rep([]byte{'N'}, 450_000), rep([]byte{'0'}, 449_999)),
		"30,000 INT lines past int64":      cat([]byte{'('}, intLines, []byte{'l'}),
		"a dict of 100,000 int keys":       cat([]byte{'}', '('}, dictItems, []byte{'u'}),
		"a set of 80,000 NaNs":             cat([]byte{0x8f, '('}, floats, []byte{0x90}),
		"a frozenset of 50,000 tuples":     cat([]byte{'('}, tuples, []byte{0x91}),
		"a STRING of 880,000 escapes":      escaped,
		"110,000 MARKs":                    cat(rep([]byte{'('}, 110_000), []byte{'N'}),
		"os.system named 40,000 times":     cat(rep(cat(str("os"), str("system"), []byte{0x93, '0'}), 40_000), []byte{'N'}),
		"SETITEMS of 100,000 equal keys":   cat([]byte{'}', '('}, rep([]byte{'K', 1, 'N'}, 100_000), []byte{'u'}),
		"LONG lines at the digit limit":    cat([]byte{'('}, rep(cat([]byte{'L'}, rep([]byte("9"), 4300), []byte("L\n")), 200), []byte{'l'}),
		"dtype objects built 20,000 times": cat([]byte{'('}, rep(cat(str("numpy"), str("dtype"), []byte{0x93}, str("f8"), []byte{0x89, 0x88, 0x87, 'R', '(', 'K', 3}, str("<"), []byte("NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")), 7000), []byte{'l'}),
	}
}

// hostileFiles are files under 1 MB that make the commands render, key or
// walk much more than they hold: escape-heavy strings shared through the
// memo (a byte decoded is up to 6 bytes of JSON or 10 of repr), big numpy
// scalars as keys used many times, tuple keys holding them, deep and wide
// structures, memo floods. Each is one entry "x"; the memo slots it writes
// are in its trailer.
func hostileFiles() map[string]cheapValue {
	le32 := func(v int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
	str := func(s string) []byte { return append([]byte{0x8c, byte(len(s))}, s...) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	rep := func(b []byte, n int) []byte { return bytes.Repeat(b, n) }
	binUni := func(s []byte) []byte { return cat([]byte{'X'}, le32(len(s)), s) }
	put1 := []byte{'q', 1, '0'}                                                                  // BINPUT 1, POP
	list := func(use []byte, n int) []byte { return cat([]byte{'('}, rep(use, n), []byte{'l'}) } // MARK uses LIST
	dtype := func(descr string, order string, size, align, flags int) []byte {
		return cat(str("numpy"), str("dtype"), []byte{0x93}, str(descr), []byte{0x89, 0x88, 0x87, 'R'},
			[]byte{'(', 'K', 3}, str(order), []byte("NNNJ"), le32(size), []byte{'J'}, le32(align), []byte{'K', byte(flags), 't', 'b'})
	}
	scalar := func(dt, raw []byte) []byte {
		return cat(str("numpy.core.multiarray"), str("scalar"), []byte{0x93}, dt, []byte{'B'}, le32(len(raw)), raw, []byte{0x86, 'R'})
	}
	dtNew := cat(str("numpy"), str("dtype"), []byte{0x93}, str("f8"), []byte{0x89, 0x88, 0x87, 'R'})
	ctrl := func(n int) []byte { // n control characters, U+0001 to U+001F
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(1 + i%31)
		}
		return b
	}
	surrogates := rep([]byte{0xed, 0xa0, 0x80}, 3000) // lone U+D800, as surrogatepass writes it
	ucs4 := func(n int, c uint32) []byte {
		var b []byte
		for range n {
			b = binary.LittleEndian.AppendUint32(b, c)
		}
		return b
	}
	const big = 500_000
	bigS := func(fill byte) []byte { return scalar(dtype("S500000", "|", big, 1, 0), rep([]byte{fill}, big)) }
	ints := cat([]byte{'('}, rep([]byte{'K', 7}, 10_000))
	// nested is lists nested depth deep, each holding the one below twice
	// (through the memo) and a string.
	nested := func(depth int, s []byte) []byte {
		b := cat(binUni(s), put1)
		for range depth {
			b = cat(b, []byte{'(', 'h', 1, 'h', 1, 'l', 'q', 1, '0'})
		}
		return cat(b, []byte{'h', 1})
	}
	return map[string]cheapValue{
		"10,000 control characters 26,000 times":                {cat(binUni(ctrl(10_000)), put1, list([]byte{'h', 1}, 26_000)), 1},
		"5,000 control characters 50,000 times":                 {cat(binUni(ctrl(5_000)), put1, list([]byte{'h', 1}, 50_000)), 1},
		"1,000 quotes and backslashes 250,000 times":            {cat(binUni(rep([]byte(`'"\`), 333)), put1, list([]byte{'h', 1}, 250_000)), 1},
		"3,000 lone surrogates 40,000 times":                    {cat(binUni(surrogates), put1, list([]byte{'h', 1}, 40_000)), 1},
		"10,000 bytes 0xff 25,000 times":                        {cat([]byte{'B'}, le32(10_000), rep([]byte{0xff}, 10_000), put1, list([]byte{'h', 1}, 25_000)), 1},
		"a dict of a 10,000-character key 20,000 times":         {cat(binUni(ctrl(10_000)), put1, list([]byte{'}', 'h', 1, 'N', 's'}, 20_000)), 1},
		"a str_ scalar of 60,000 controls 1,000 times":          {cat(scalar(dtype("U60000", "<", 240_000, 4, 8), ucs4(60_000, 7)), put1, list([]byte{'h', 1}, 1_000)), 1},
		"a bytes_ scalar of 100,000 0xff 2,000 times":           {cat(scalar(dtype("S100000", "|", 100_000, 1, 0), rep([]byte{0xff}, 100_000)), put1, list([]byte{'h', 1}, 2_000)), 1},
		"a void scalar of 100,000 bytes 2,000 times":            {cat(scalar(dtype("V100000", "|", 100_000, 1, 0), make([]byte, 100_000)), put1, list([]byte{'h', 1}, 2_000)), 1},
		"an S500000 scalar of NULs as a dict key 150,000 times": {cat(bigS(0), put1, []byte{'}', '('}, rep([]byte{'h', 1, 'N'}, 150_000), []byte{'u'}), 1},
		"an S500000 scalar as a dict key 150,000 times":         {cat(bigS('k'), put1, []byte{'}', '('}, rep([]byte{'h', 1, 'N'}, 150_000), []byte{'u'}), 1},
		"an S500000 scalar as a key of 90,000 dicts":            {cat(bigS('k'), put1, list([]byte{'}', 'h', 1, 'N', 's'}, 90_000)), 1},
		"a tuple of an S500000 scalar and a dtype as a key 100,000 times": {cat(bigS('k'), []byte{'q', 2}, dtNew, []byte{0x86, 'q', 1, '0'},
			[]byte{'}', '('}, rep([]byte{'h', 1, 'N'}, 100_000), []byte{'u'}), 2},
		"new 1-tuples of an S500000 scalar as keys 100,000 times": {cat(bigS('k'), put1, []byte{'}', '('}, rep([]byte{'h', 1, 0x85, 'N'}, 100_000), []byte{'u'}), 1},
		"a tuple of 10,000 ints and a dtype as a key 100,000 times": {cat(ints, dtNew, []byte{'t', 'q', 1, '0'},
			[]byte{'}', '('}, rep([]byte{'h', 1, 'N'}, 100_000), []byte{'u'}), 1},
		"lists nested 25 deep, each holding the one below twice": {nested(25, ctrl(100)), 1},
		"lists nested 20 deep, each holding the one below twice": {nested(20, ctrl(100)), 1},
		"lists nested 16 deep, each holding the one below twice": {nested(16, ctrl(1000)), 1},
		"frozenset() of one list of 50,000 items 30,000 times": {cat([]byte{'('}, rep([]byte{'K', 7}, 50_000), []byte{'l', 'q', 1, '0'},
			str("builtins"), str("frozenset"), []byte{0x93, 'q', 2, '0'}, list([]byte{'h', 2, 'h', 1, 0x85, 'R'}, 30_000)), 2},
		"lists nested 990 deep":                       {cat(rep([]byte{']'}, 990), rep([]byte{'a'}, 989)), 0},
		"dicts nested 990 deep":                       {cat([]byte{'}'}, rep([]byte{'K', 1, '}'}, 989), rep([]byte{'s'}, 989)), 0},
		"a list of 300,000 uses of a 1,000-item list": {cat([]byte{'('}, rep([]byte{'N'}, 1000), []byte{'l', 'q', 1, '0'}, list([]byte{'h', 1}, 300_000)), 1},
		"300,000 MEMOIZEs of a 10,000-control str":    {cat(binUni(ctrl(10_000)), rep([]byte{0x94}, 300_000)), 300_000},
	}
}

type cheapValue struct {
	value []byte
	memo  int // memo slots written (the entry's trailer)
}

// cheapFile wraps a value as the one live entry of a file.
func cheapFile(value []byte) []byte { return cheapFileMemo(value, 0) }

func cheapFileMemo(value []byte, memo int) []byte {
	body := append([]byte{0x8c, 1, 'x'}, value...)
	body = append(body, 'J')
	body = binary.LittleEndian.AppendUint32(body, uint32(memo))
	body = append(body, '0', 0x88, '0')
	b := append([]byte(nil), vHeader...)
	b = append(b, 0x95)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(body)))
	b = append(b, body...)
	return append(b, vTerminator...)
}

// countWriter counts what a command prints, keeping nothing.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// cheapBound is the goal for every file under 1 MB: each command
// allocates at most 256 MiB, or refuses at a limit.
const cheapBound = 256 << 20

// TestSmallFilesStayCheap: every file under 1 MB lists, inspects, gets and
// verifies in little memory, whatever it builds, or is refused at a limit.
// The commands run in this process (Main), so that what they allocate is
// measured (runtime.MemStats.TotalAlloc): a deterministic bound, unlike
// time on a shared machine. Not parallel: allocation counts are
// process-wide.
func TestSmallFilesStayCheap(t *testing.T) {
	dir := t.TempDir()
	files := map[string]cheapValue{}
	for name, v := range cheapFiles() {
		files[name] = cheapValue{v, 0}
	}
	hostile := hostileFiles()
	for name, v := range hostile {
		files[name] = v
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := files[name]
		file := cheapFileMemo(v.value, v.memo)
		if len(file) >= 1<<20 {
			t.Fatalf("%s: %d bytes", name, len(file))
		}
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".mmpkl")
		if err := os.WriteFile(p, file, 0o644); err != nil {
			t.Fatal(err)
		}
		commands := [][]string{{"ls", p}, {"inspect", "--json", p}, {"inspect", p}, {"get", p, "x"}, {"verify", "-q", p}}
		if testing.Short() {
			commands = [][]string{{"inspect", "--json", p}, {"get", p, "x"}} // the costliest
		}
		for _, args := range commands {
			var out countWriter
			var stderr bytes.Buffer
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			code := Main(context.Background(), args, &out, &stderr)
			runtime.ReadMemStats(&after)
			alloc := int64(after.TotalAlloc - before.TotalAlloc)
			msg := firstLine(stderr.String())
			refused := code == 1 && strings.Contains(msg, "more than") // a limit, named
			_, isHostile := hostile[name]
			switch {
			case strings.Contains(stderr.String(), "internal error") || code != 0 && code != 1:
				t.Errorf("%s: %s: exit %d: %s", name, args[0], code, stderr.String())
			case isHostile && code == 1 && !refused && args[0] != "verify":
				t.Errorf("%s: %s: exit 1 without naming a limit: %s", name, args[0], msg)
			}
			// What a command prints is bounded by the render limit
			// (plus its keys and headers).
			if out.n > render.DefaultMaxBytes+int64(len(file)) {
				t.Errorf("%s: %s printed %d bytes (limit %d)", name, args[0], out.n, render.DefaultMaxBytes)
			}
			if alloc > cheapBound {
				t.Errorf("%s: %s allocated %d MiB (bound %d MiB), printed %d bytes", name, strings.Join(args[:len(args)-1], " "), alloc>>20, cheapBound>>20, out.n)
			}
			t.Logf("%-60s %-14s %5d MiB %9d B out, exit %d %.150s", name, strings.Join(args[:1], " "), alloc>>20, out.n, code, msg)
		}
	}
}

func lastLine(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// TestRefusedRenderPrintsNothing: a value too big to render refuses the
// command before anything is printed — inspect --json's document is whole
// or none, even when the refused key comes after keys that render.
func TestRefusedRenderPrintsNothing(t *testing.T) {
	dir := t.TempDir()
	hostile := hostileFiles()["10,000 control characters 26,000 times"]
	entry := func(key string, value []byte, memo int) []byte {
		body := append([]byte{0x8c, byte(len(key))}, key...)
		body = append(body, value...)
		body = append(body, 'J')
		body = binary.LittleEndian.AppendUint32(body, uint32(memo))
		body = append(body, '0', 0x88, '0')
		b := binary.LittleEndian.AppendUint64([]byte{0x95}, uint64(len(body)))
		return append(b, body...)
	}
	file := append([]byte(nil), vHeader...)
	file = append(file, entry("a", []byte{'K', 1}, 0)...)
	file = append(file, entry("x", hostile.value, hostile.memo)...)
	file = append(file, vTerminator...)
	p := filepath.Join(dir, "late.mmpkl")
	if err := os.WriteFile(p, file, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := mmpconv(t, "get", p, "a"); code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("get a: exit %d, %q: the premise (key a renders) fails", code, out)
	}
	for _, args := range [][]string{{"inspect", "--json", p}, {"inspect", "--json", "--hash", p}, {"get", p, "x"}} {
		code, out, stderr := mmpconv(t, args...)
		if code != 1 || !strings.Contains(stderr, "more than") || !strings.Contains(stderr, `key "x"`) {
			t.Errorf("%v: exit %d, %s: want exit 1 naming key \"x\" and the limit", args, code, firstLine(stderr))
		}
		if out != "" {
			t.Errorf("%v printed %d bytes before refusing: %.80q", args, len(out), out)
		}
	}
}
