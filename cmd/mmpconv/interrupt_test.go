package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mmpbridge/bridge"
)

// manyEntries writes a file of n entries holding None, by hand (fast).
func manyEntries(t *testing.T, name string, n int) {
	t.Helper()
	var b bytes.Buffer
	b.Write([]byte{0x80, 4, 0x95, 13, 0, 0, 0, 0, 0, 0, 0, 'J', 1, 0, 0, 0, '0', 'J', 1, 0, 0, 0, '0', '('})
	for i := range n {
		key := []byte(fmt.Sprintf("k%07d", i))
		body := append([]byte{0x8c, byte(len(key))}, key...)
		body = append(body, 'N', 'J', 1, 0, 0, 0, '0', 0x88, '0')
		b.Write(binary.LittleEndian.AppendUint64([]byte{0x95}, uint64(len(body))))
		b.Write(body)
	}
	b.Write([]byte{0x95, 2, 0, 0, 0, 0, 0, 0, 0, 'd', '.'})
	if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestInterrupt: ls, inspect, verify and get stop within half a second of
// SIGINT or SIGTERM and exit 130 or 143, saying "mmpconv: interrupted".
func TestInterrupt(t *testing.T) {
	t.Parallel()
	bin := sharedMmpconv(t)
	dir := t.TempDir()
	many := filepath.Join(dir, "many.mmpkl")
	n := 3_000_000
	if testing.Short() {
		n = 1_000_000
	}
	manyEntries(t, many, n)
	big := filepath.Join(dir, "big.mmpkl")
	f, err := bridge.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// 8 GiB that hashes for seconds and takes no disk: a hole.
	s, err := f.Reserve("cube", bridge.ArrayHeader{DType: bridge.DType{ByteOrder: '<', Kind: 'f', ItemSize: 8}, Shape: []int{1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, c := range []struct {
		args []string
		sig  syscall.Signal
	}{
		{[]string{"ls", many}, syscall.SIGINT},
		{[]string{"inspect", "--json", many}, syscall.SIGINT},
		{[]string{"verify", many}, syscall.SIGTERM},
		{[]string{"get", many, "k0000005"}, syscall.SIGINT},
		{[]string{"inspect", "--json", "--hash", big}, syscall.SIGINT},
		{[]string{"get", "--quiet", big, "cube", "-o", filepath.Join(dir, "cube.npy")}, syscall.SIGINT},
	} {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, c.args...)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		cmd.Process.Signal(c.sig)
		err := cmd.Wait()
		took := time.Since(start)
		var xe *exec.ExitError
		want := 128 + int(c.sig)
		switch {
		case !errors.As(err, &xe):
			t.Errorf("%q: finished before the signal (%v): make the input bigger", c.args[0], err)
			continue
		case xe.ExitCode() != want:
			t.Errorf("%q: exit %d, want %d; stderr %q", c.args, xe.ExitCode(), want, stderr.String())
		case !strings.HasSuffix(stderr.String(), "mmpconv: interrupted\n"):
			t.Errorf("%q: stderr %q", c.args, stderr.String())
		}
		if took > 2*time.Second { // the goal is 0.5 s: generous on a loaded machine
			t.Errorf("%q: took %v to stop", c.args, took)
		}
		t.Logf("%s: stopped %v after the signal", c.args[0], took)
	}
	// The interrupted get -o left nothing.
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("left behind: %v", entries)
	}
}
