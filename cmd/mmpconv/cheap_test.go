package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// cheapFile wraps a value as the one live entry of a file.
func cheapFile(value []byte) []byte {
	body := append([]byte{0x8c, 1, 'x'}, value...)
	body = append(body, 'J', 0, 0, 0, 0, '0', 0x88, '0')
	b := append([]byte(nil), vHeader...)
	b = append(b, 0x95)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(body)))
	b = append(b, body...)
	return append(b, vTerminator...)
}

// TestSmallFilesStayCheap: every file under 1 MB lists, inspects and
// verifies fast and in little memory, whatever it builds. The goal is 1 s
// and 256 MiB; the bounds here are generous (a shared, loaded machine).
func TestSmallFilesStayCheap(t *testing.T) {
	t.Parallel()
	bin := sharedMmpconv(t)
	dir := t.TempDir()
	for name, value := range cheapFiles() {
		if len(value) == 0 {
			continue
		}
		file := cheapFile(value)
		if len(file) >= 1<<20 {
			t.Fatalf("%s: %d bytes", name, len(file))
		}
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".mmpkl")
		if err := os.WriteFile(p, file, 0o644); err != nil {
			t.Fatal(err)
		}
		commands := [][]string{{"ls"}, {"inspect", "--json", "--hash"}, {"verify", "-q"}}
		if testing.Short() {
			commands = commands[1:2] // the costliest; the test command runs all three
		}
		for _, args := range commands {
			// Through GNU time: Linux carries a process's peak RSS into the
			// children it forks, so this test's own would show in mmpconv's.
			rssFile := filepath.Join(dir, "rss")
			cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", rssFile, bin}, append(args, p)...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			kb, rerr := os.ReadFile(rssFile)
			if rerr != nil {
				t.Fatalf("GNU time (scripts/setup.sh installs it): %v", rerr)
			}
			var rss int64
			fmt.Sscan(lastLine(string(kb)), &rss)
			rss <<= 10
			code := cmd.ProcessState.ExitCode()
			if code != 0 && code != 1 || strings.Contains(stderr.String(), "internal error") {
				t.Errorf("%s: %s: %v: %s", name, args[0], err, stderr.String())
			}
			if took > 5*time.Second || rss > 512<<20 {
				t.Errorf("%s: %s took %v and %d MiB", name, args[0], took, rss>>20)
			}
			t.Logf("%-40s %-8s %4d ms %4d MiB exit %d %.120s", name, args[0], took.Milliseconds(), rss>>20, code, firstLine(stderr.String()))
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
