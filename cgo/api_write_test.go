package main

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/bridge"
)

// Tests of what the Python package calls: opening by descriptor, writing
// from memory, reserving, pickles, maintenance, error codes.

func f64bytes(vals ...float64) []byte {
	b := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(int64(v)))
	}
	return b
}

func TestWritePaths(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.mmpkl")
	h, err := openEx(path, -1, openWritable|openCreate, `{"profile":"portable","align":64}`)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFile(h)
	data := f64bytes(1, 2, 3, 4, 5, 6)
	if err := putArray(h, "a", `{"dtype":"<i8","shape":[2,3],"order":"F"}`, data); err != nil {
		t.Fatal(err)
	}
	var info struct {
		Kind   string `json:"kind"`
		DType  string `json:"dtype"`
		Shape  []int  `json:"shape"`
		Order  string `json:"order"`
		Offset int64  `json:"offset"`
		NBytes int64  `json:"nbytes"`
	}
	b, err := entryInfo(h, "a")
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &info)
	if info.Kind != "array" || info.DType != "<i8" || info.Order != "F" || info.NBytes != 48 || info.Offset%64 != 0 {
		t.Errorf("info %s", b)
	}
	raw, _ := os.ReadFile(path)
	if string(raw[info.Offset:info.Offset+48]) != string(data) {
		t.Error("array bytes not at the offset entryInfo gives")
	}
	// Bad headers and sizes are errors of the caller's arguments.
	for _, hdr := range []string{`{"dtype":"<i8","shape":[2]}`, `{"dtype":"nope","shape":[6]}`, `{"dtype":"<i8","shape":[6],"order":"X"}`, `not json`, `{"dtype":"<i8","shape":[6],"extra":1}`} {
		err := putArray(h, "bad", hdr, data)
		if err == nil || errCode(err) != codeInvalid && errCode(err) != codeUnsupported {
			t.Errorf("header %s: %v (code %d)", hdr, err, errCode(err))
		}
	}
	// Masked, with a fill value.
	fill := f64bytes(-1)
	if err := putMasked(h, "m", `{"dtype":"<i8","shape":[3]}`, f64bytes(1, 2, 3), []byte{0, 1, 0}, fill); err != nil {
		t.Fatal(err)
	}
	b, _ = entryInfo(h, "m")
	var mi struct {
		Kind string  `json:"kind"`
		Fill *string `json:"fill"`
	}
	json.Unmarshal(b, &mi)
	if mi.Kind != "masked" || mi.Fill == nil || *mi.Fill != hex.EncodeToString(fill) {
		t.Errorf("masked info %s", b)
	}
	if err := putMasked(h, "m2", `{"dtype":"<i8","shape":[3]}`, f64bytes(1, 2, 3), []byte{0, 1}, nil); errCode(err) != codeInvalid {
		t.Errorf("short mask: %v", err)
	}
	// Reserve, uncommitted then committed; a slot is used once.
	slot, off, err := reserve(h, "r", `{"dtype":"<f4","shape":[4]}`, false)
	if err != nil || slot <= 0 || off <= 0 {
		t.Fatalf("reserve: %d %d %v", slot, off, err)
	}
	if ok, _ := hasKey(h, "r"); ok {
		t.Error("an uncommitted reservation is a key")
	}
	if err := slotDone(slot, true); err != nil {
		t.Fatal(err)
	}
	if err := slotDone(slot, true); !errors.Is(err, errBadHandle) {
		t.Errorf("slot used twice: %v", err)
	}
	if ok, _ := hasKey(h, "r"); !ok {
		t.Error("a committed reservation is not a key")
	}
	// Pickles: plain data and an object.
	plain := []byte{0x80, 4, 0x95, 5, 0, 0, 0, 0, 0, 0, 0, 'K', 7, 0x94, '.'} // PROTO 4, FRAME, BININT1 7, MEMOIZE, STOP
	plain = append(plain[:11], 'K', 7, 0x94, '.')
	if err := putPickle(h, "v", plain); err != nil {
		t.Fatal(err)
	}
	p, err := valuePickle(h, "v", false)
	if err != nil || string(p) != "\x80\x04K\x07q\x00." {
		t.Errorf("value pickle %q %v", p, err)
	}
	obj := []byte("\x80\x04\x8c\x02os\x8c\x06getcwd\x93)R.")
	if err := putPickle(h, "o", obj); err != nil {
		t.Fatal(err)
	}
	if _, err := valuePickle(h, "o", false); errCode(err) != codeNotPlain {
		t.Errorf("object, untrusted: %v (code %d)", err, errCode(err))
	}
	if _, err := valuePickle(h, "o", true); err != nil {
		t.Errorf("object, trusted: %v", err)
	}
	if _, err := valuePickle(h, "missing", true); errCode(err) != codeNoKey {
		t.Errorf("missing key: %v", err)
	}
	// Delete (all or none), vacuum (nothing to reclaim: a no-op), fsck.
	if err := deleteKeys(h, `["v","nope"]`); errCode(err) != codeNoKey {
		t.Errorf("delete with a missing key: %v", err)
	}
	if ok, _ := hasKey(h, "v"); !ok {
		t.Error("a refused delete deleted")
	}
	if err := setCommitNumber(h, 143); err != nil {
		t.Fatal(err)
	}
	if err := vacuum(h); err != nil {
		t.Fatal(err)
	}
	if n, _ := commitNumber(h); n != 143 {
		t.Errorf("a vacuum with nothing to reclaim changed the commit number to %d", n)
	}
	if err := deleteKeys(h, `["v"]`); err != nil {
		t.Fatal(err)
	}
	if err := vacuum(h); err != nil {
		t.Fatal(err)
	}
	if n, _ := commitNumber(h); n != 0 {
		t.Errorf("commit number after vacuum %d, want 0", n)
	}
	if n, _ := keyCount(h); n != 4 {
		t.Errorf("%d keys after vacuum, want 4", n)
	}
	rep, err := fsck(h)
	var fr struct{ Repaired bool }
	if err != nil || json.Unmarshal(rep, &fr) != nil || fr.Repaired {
		t.Errorf("fsck of an intact file repaired it: %s", rep)
	}
	v, err := verifyFile(path, `["os.getcwd"]`)
	var vr struct{ OK bool }
	if err != nil || json.Unmarshal(v, &vr) != nil || !vr.OK {
		t.Errorf("verify trusting os.getcwd: %s %v", v, err)
	}
	if _, err := verifyFile(path, `["nodot"]`); errCode(err) != codeInvalid {
		t.Errorf("bad trust: %v", err)
	}
}

func TestOpenExModes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.mmpkl")
	if _, err := openEx(path, -1, 0, ""); errCode(err) != codeNoFile {
		t.Errorf("missing file, read-only: %v (code %d)", err, errCode(err))
	}
	if _, err := openEx(path, -1, openWritable, ""); errCode(err) != codeNoFile {
		t.Errorf("missing file, no create: %v", err)
	}
	if _, err := openEx(path, -1, 8, ""); err == nil {
		t.Error("unknown flag accepted")
	}
	if _, err := openEx(path, -1, openWritable|openCreate, `{"align":3}`); !errors.Is(err, bridge.ErrInvalidOption) || errCode(err) != codeInvalid {
		t.Errorf("align 3: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a refused open created the file")
	}
	h, err := openEx(path, -1, openWritable|openCreate, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := putArray(h, "a", `{"dtype":"|u1","shape":[3]}`, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	closeFile(h)
	// By descriptor: the caller's offset is never moved.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Seek(5, 0)
	h, err = openEx("shown name", int(f.Fd()), openWritable, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := putPickle(h, "b", []byte("\x80\x04N.")); err != nil {
		t.Fatal(err)
	}
	if err := vacuum(h); err != nil {
		t.Fatal(err)
	}
	if pos, _ := f.Seek(0, 1); pos != 5 {
		t.Errorf("caller's offset moved to %d", pos)
	}
	if _, err := valuePickle(h, "zz", false); err == nil || !strings.Contains(err.Error(), "shown name") {
		t.Errorf("errors name the file as given: %v", err)
	}
	closeFile(h)
	// A torn file: refused, or opened for fsck.
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, raw[:len(raw)-3], 0o644)
	if _, err := openEx(path, -1, openWritable, ""); errCode(err) != codeTorn {
		t.Errorf("torn: %v", err)
	}
	h, err = openEx(path, -1, openWritable|openAllowTorn, "")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFile(h)
	if _, err := keysJSON(h); errCode(err) != codeTorn {
		t.Errorf("keys of a torn file: %v", err)
	}
	if _, err := fsck(h); err != nil {
		t.Fatal(err)
	}
	if ks, err := keysJSON(h); err != nil || string(ks) != `["a","b"]` {
		t.Errorf("after fsck: %s %v", ks, err)
	}
}
