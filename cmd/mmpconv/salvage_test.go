package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mmpbridge/bridge"
)

// TestSalvageCommand: mmpconv salvage of a file with one damaged entry
// saves the others into OUT, lists the damaged key with its offset and
// cause (table and JSON), exits 1; OUT appears whole or not at all and is
// not replaced without --force.
func TestSalvageCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.mmpkl")
	f, err := bridge.Create(good)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"a", "b", "c"} {
		if err := f.Put(k, strings.Repeat(k, 10+i)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := f.Reader()
	if err != nil {
		t.Fatal(err)
	}
	eb, err := r.Entry("b")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.mmpkl")
	d := append([]byte(nil), b...)
	d[eb.Offset+eb.Size-8] = 0x00 // b's trailer: no longer BININT
	if err := os.WriteFile(bad, d, 0o644); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.bin")
	os.WriteFile(junk, []byte(strings.Repeat("not a pickle ", 100)), 0o644)
	out := filepath.Join(dir, "out.mmpkl")

	code, stdout, stderr := mmpconv(t, "salvage", bad, out)
	if code != 1 || !strings.Contains(stdout, `"b"`) || !strings.Contains(stdout, strconv.FormatInt(eb.Offset, 10)) ||
		!strings.Contains(stdout, "saved 2 entries") || !strings.Contains(stderr, "1 could not be saved") {
		t.Fatalf("salvage: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ := mmpconv(t, "ls", out); code != 0 || !strings.Contains(stdout, "a ") || !strings.Contains(stdout, "c ") || strings.Contains(stdout, "b ") {
		t.Errorf("ls OUT: exit %d\n%s", code, stdout)
	}
	if code, _, _ := mmpconv(t, "verify", "-q", out); code != 0 {
		t.Errorf("verify OUT: exit %d", code)
	}
	before, _ := os.ReadFile(out)
	if code, _, stderr := mmpconv(t, "salvage", good, out); code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("salvage over an existing OUT: exit %d, %q", code, stderr)
	}
	if after, _ := os.ReadFile(out); string(after) != string(before) {
		t.Error("salvage without --force changed OUT")
	}
	code, stdout, _ = mmpconv(t, "salvage", "--json", "--force", bad, out)
	var rep struct {
		OK    bool
		Saved []struct{ Key string }
		Lost  []struct {
			Key    *string
			Offset int64
			Cause  string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 1 || rep.OK || len(rep.Saved) != 2 ||
		len(rep.Lost) != 1 || rep.Lost[0].Key == nil || *rep.Lost[0].Key != "b" || rep.Lost[0].Offset != eb.Offset || rep.Lost[0].Cause == "" {
		t.Errorf("salvage --json: exit %d, %v\n%s", code, err, stdout)
	}
	if code, stdout, _ := mmpconv(t, "salvage", "--force", good, out); code != 0 || !strings.Contains(stdout, "nothing lost") {
		t.Errorf("salvage of an intact file: exit %d\n%s", code, stdout)
	}
	gone := filepath.Join(dir, "never.mmpkl")
	if code, _, stderr := mmpconv(t, "salvage", junk, gone); code != 1 || !strings.Contains(stderr, "junk.bin") {
		t.Errorf("salvage of a file that is no mmappickle: exit %d, %q", code, stderr)
	}
	if _, err := os.Lstat(gone); err == nil {
		t.Error("a refused salvage left its output")
	}
	for _, args := range [][]string{{"salvage", bad}, {"salvage", "--profile", "nope", bad, gone}, {"salvage", bad, bad}} {
		if code, _, _ := mmpconv(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("salvage left files behind: %v", ents)
	}
}

// TestSalvageInterrupted: a salvage cancelled (Ctrl-C) part way exits 130
// and leaves no OUT.
func TestSalvageInterrupted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "many.mmpkl")
	manyEntries(t, bad, 200_000)
	out := filepath.Join(dir, "out.mmpkl")
	ctx, cancel := context.WithCancel(context.Background())
	var o, e bytes.Buffer
	go func() {
		// Part way through, most likely (200,000 entries take longer);
		// cancelled before it starts or after it ends, the assertions
		// below hold or the test skips.
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	code := Main(ctx, []string{"salvage", bad, out}, &o, &e)
	if code == 0 {
		t.Skip("salvage finished before the cancellation")
	}
	if code != 130 || !strings.Contains(e.String(), "interrupted") {
		t.Errorf("cancelled salvage: exit %d, %q", code, e.String())
	}
	if _, err := os.Lstat(out); err == nil {
		t.Error("a cancelled salvage left OUT")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("a cancelled salvage left files: %v", ents)
	}
}

// TestSalvageAlign: salvage --align places the saved arrays' data on that
// alignment (as convert --align does); a value that is no power of two is
// a usage error, nothing written.
func TestSalvageAlign(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mmpkl")
	f, err := bridge.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"x", "y"} {
		dt, err := bridge.ParseDType("<f8")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Put(k, &bridge.NDArray{DType: dt, Shape: []int{3, 5}, Data: make([]byte, 120)}); err != nil {
			t.Fatal(err)
		}
		if err := f.Put(k+"-note", strings.Repeat("n", 37)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	for _, align := range []int{4096, 256} {
		out := filepath.Join(dir, fmt.Sprintf("out-%d.mmpkl", align))
		if code, stdout, stderr := mmpconv(t, "salvage", "--align", strconv.Itoa(align), src, out); code != 0 {
			t.Fatalf("salvage --align %d: exit %d\n%s\n%s", align, code, stdout, stderr)
		}
		o, err := bridge.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"x", "y"} {
			a, err := o.Array(k)
			if err != nil {
				t.Fatal(err)
			}
			if a.Offset%int64(align) != 0 {
				t.Errorf("--align %d: %q's data at offset %d", align, k, a.Offset)
			}
		}
		o.Close()
	}
	out := filepath.Join(dir, "bad-align.mmpkl")
	if code, _, stderr := mmpconv(t, "salvage", "--align", "3", src, out); code != 2 || !strings.Contains(stderr, "align") {
		t.Errorf("salvage --align 3: exit %d, %s: want a usage error naming align", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("salvage --align 3 left %s", out)
	}
}
