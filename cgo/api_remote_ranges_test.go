package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/bridge"
)

// TestRemoteReadRanges: triples land at their buffer offsets; triples
// outside the file or the buffer, overlapping destinations and a bad
// handle are refused before any request.
func TestRemoteReadRanges(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f.mmpkl")
	f, err := bridge.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	dt, _ := bridge.ParseDType("<u1")
	arr := make([]byte, 300000)
	for i := range arr {
		arr[i] = byte(i * 13)
	}
	f.PutArray("a", bridge.ArrayHeader{DType: dt, Shape: []int{len(arr)}}, bytes.NewReader(arr))
	f.Close()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	h, err := openRemote(srv.URL + "/f.mmpkl")
	if err != nil {
		t.Fatal(err)
	}
	defer closeRemote(h)
	end := int64(len(data))
	buf := make([]byte, 100)
	if err := remoteReadRanges(context.Background(), h, []int64{10, 5, 0, 200000, 7, 50}, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:5], data[10:15]) || !bytes.Equal(buf[50:57], data[200000:200007]) {
		t.Error("ranges landed elsewhere")
	}
	for _, tc := range []struct {
		triples []int64
		want    string
	}{
		{[]int64{0, 5, 96}, "outside the buffer"},
		{[]int64{0, 5, -1}, "outside the buffer"},
		{[]int64{end - 1, 2, 0}, "outside the file"},
		{[]int64{-1, 1, 0}, "outside the file"},
		{[]int64{0, -1, 0}, "outside the file"},
		{[]int64{0, 10, 0, 100, 10, 9}, "overlap"},
		{[]int64{0, 10}, "triples"},
	} {
		if err := remoteReadRanges(context.Background(), h, tc.triples, buf); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.triples, err, tc.want)
		}
	}
	if err := remoteReadRanges(context.Background(), h+1000, []int64{0, 1, 0}, buf); err == nil {
		t.Error("a bad handle read")
	}
}
