package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFlags runs the flags no other test names, each through the command
// line, and checks its effect.
func TestFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	npy := filepath.Join(dir, "a.npy")
	writeNpy(t, npy, "<i8", []int{3}, false, i64s(1, 2, 3))
	info := func(f, key string) map[string]any {
		t.Helper()
		code, out, errs := mmpconv(t, "inspect", "--json", f)
		if code != 0 {
			t.Fatalf("inspect %s: %s", f, errs)
		}
		var doc struct{ Keys map[string]map[string]any }
		json.Unmarshal([]byte(out), &doc)
		return doc.Keys[key]
	}

	// convert --from / --to: formats the extensions do not tell.
	raw := filepath.Join(dir, "a.dat")
	b, _ := os.ReadFile(npy)
	os.WriteFile(raw, b, 0o644)
	out := filepath.Join(dir, "out.bin")
	if code, _, errs := mmpconv(t, "convert", "--quiet", "--key", "a", "--from", "npy", "--to", "mmpkl", raw, out); code != 0 {
		t.Fatalf("convert --from npy --to mmpkl: %s", errs)
	}
	if code, got, _ := mmpconv(t, "get", out, "a"); code != 0 || !strings.Contains(got, "<i8") {
		t.Errorf("the converted file: exit %d %q", code, got)
	}
	if code, _, errs := mmpconv(t, "convert", "--quiet", "--from", "npy", raw, filepath.Join(dir, "x.mmpkl")); code != 0 {
		t.Errorf("--from alone: %s", errs)
	}
	if code, _, errs := mmpconv(t, "convert", "--to", "zip", raw, out); code != 2 || !strings.Contains(errs, "unknown format") {
		t.Errorf("--to zip: exit %d %q", code, errs)
	}

	// put --profile / --align: the array's encoding and data offset.
	f := filepath.Join(dir, "p.mmpkl")
	if code, _, errs := mmpconv(t, "put", "--profile", "mmappickle", "--align", "4096", f, "a", npy); code != 0 {
		t.Fatalf("put: %s", errs)
	}
	e := info(f, "a")
	if e["encoding"] != "mmappickle" || int64(e["data_offset"].(float64))%4096 != 0 {
		t.Errorf("put --profile mmappickle --align 4096 gave %v", e)
	}
	if code, _, _ := mmpconv(t, "put", "--align", "3", f, "b", npy); code != 2 {
		t.Errorf("put --align 3: exit %d, want 2", code)
	}
	if code, _, _ := mmpconv(t, "put", "--profile", "zip", f, "b", npy); code != 2 {
		t.Errorf("put --profile zip: exit %d, want 2", code)
	}

	// vacuum --align: re-aligned as asked (1: packed, as mmappickle does).
	mmpconv(t, "put", f, "gone", "--json", "1")
	mmpconv(t, "rm", f, "gone")
	if code, _, errs := mmpconv(t, "vacuum", "--align", "1", f); code != 0 {
		t.Fatalf("vacuum --align 1: %s", errs)
	}
	if off := int64(info(f, "a")["data_offset"].(float64)); off%4096 == 0 {
		t.Errorf("vacuum --align 1 left the data at %d (still page-aligned)", off)
	}
	if code, _, errs := mmpconv(t, "vacuum", "--align", "4096", "--force", f); code != 0 || int64(info(f, "a")["data_offset"].(float64))%4096 != 0 {
		t.Errorf("vacuum --align 4096 --force: exit %d %s, data at %v", code, errs, info(f, "a")["data_offset"])
	}

	// verify --allow: a trusted callable passes, untrusted it fails.
	bad := filepath.Join(dir, "bad.mmpkl")
	os.WriteFile(bad, vFile(vEntry("ok", []byte{'N'}, true), vEntry("x", vStackGlobal("os", "system"), true)), 0o644)
	if code, _, _ := mmpconv(t, "verify", bad); code != 1 {
		t.Errorf("verify of os.system: exit %d, want 1", code)
	}
	if code, out, _ := mmpconv(t, "verify", "--allow", "os.system", bad); code != 0 || !strings.Contains(out, "os.system at offset") {
		t.Errorf("verify --allow os.system: exit %d %q", code, out)
	}

	// serve --max-requests: 0 is a usage error; 1 serves requests one at a time.
	if code, _, errs := mmpconv(t, "serve", "--max-requests", "0", dir); code != 2 || !strings.Contains(errs, "--max-requests") {
		t.Errorf("serve --max-requests 0: exit %d %q", code, errs)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve", dir, "--addr", "127.0.0.1:0", "--max-requests", "1"}, io.Discard, pw)
		pw.Close()
	}()
	buf := make([]byte, 200)
	n, _ := pr.Read(buf)
	line := string(buf[:n])
	go io.Copy(io.Discard, pr)
	url := strings.TrimSpace(line[strings.Index(line, "http://"):])
	for range 3 {
		if code, _, _ := get(t, url+"p.mmpkl"); code != 200 {
			t.Errorf("GET with --max-requests 1: %d", code)
		}
	}
	cancel(interrupted{2})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
