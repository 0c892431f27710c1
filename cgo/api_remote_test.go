package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/pyval"
)

// TestRemoteHandles: a remote handle lists, describes and reads what a
// local one does, and refuses what is not a URL.
func TestRemoteHandles(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f.mmpkl")
	f, err := bridge.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	dt, _ := bridge.ParseDType("<u2")
	data := make([]byte, 2000)
	for i := range data {
		data[i] = byte(i * 3)
	}
	f.PutArray("a", bridge.ArrayHeader{DType: dt, Shape: []int{1000}}, bytes.NewReader(data))
	f.Put("v", pyval.Dict{{Key: "x", Value: int64(1)}})
	f.Close()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()

	if _, err := openRemote(name); err == nil {
		t.Error("a path opened as a remote handle")
	}
	h, err := openRemote(srv.URL + "/f.mmpkl")
	if err != nil {
		t.Fatal(err)
	}
	defer closeRemote(h)
	lh, err := openFile(name, false)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFile(lh)
	rk, _ := remoteKeysJSON(h)
	lk, _ := keysJSON(lh)
	if string(rk) != string(lk) {
		t.Errorf("keys %s, local %s", rk, lk)
	}
	ri, err := remoteEntryInfo(h, "a")
	li, _ := entryInfo(lh, "a")
	if err != nil || string(ri) != string(li) {
		t.Fatalf("entry info %s (%v), local %s", ri, err, li)
	}
	var info struct{ Offset, NBytes int64 }
	json.Unmarshal(ri, &info)
	buf := make([]byte, info.NBytes)
	if err := remoteRead(h, info.Offset, buf); err != nil || !bytes.Equal(buf, data) {
		t.Errorf("read: %v, equal %v", err, bytes.Equal(buf, data))
	}
	if err := remoteRead(h, info.Offset, make([]byte, 1<<20)); err == nil {
		t.Error("a read past the end succeeded")
	}
	rp, err := remoteValuePickle(h, "v", false)
	lp, _ := valuePickle(lh, "v", false)
	if err != nil || !bytes.Equal(rp, lp) {
		t.Errorf("value pickle %x (%v), local %x", rp, err, lp)
	}
	if st, err := remoteStats(h); err != nil || !bytes.Contains(st, []byte(`"requests"`)) {
		t.Errorf("stats %s %v", st, err)
	}
	if err := closeRemote(h); err != nil {
		t.Fatal(err)
	}
	if _, err := remoteKeysJSON(h); err == nil {
		t.Error("a closed remote handle still answers")
	}
}
