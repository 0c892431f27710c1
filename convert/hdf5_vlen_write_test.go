//go:build !nohdf5

package convert

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrun"
	"mmpbridge/pyval"
)

// utf32 encodes strings as numpy's U<n> elements (NUL-padded code points).
func utf32(n int, be bool, strs ...string) []byte {
	var b []byte
	for _, s := range strs {
		rs := []rune(s)
		for i := range n {
			var c uint32
			if i < len(rs) {
				c = uint32(rs[i])
			}
			if be {
				b = binary.BigEndian.AppendUint32(b, c)
			} else {
				b = binary.LittleEndian.AppendUint32(b, c)
			}
		}
	}
	return b
}

// TestHDF5VlenWrite: h5py's variable-length string datasets (UTF-8 and
// ASCII, 1-d, 2-d, scalar, empty, chunked) go to mmpkl as '<U' and back
// to HDF5 as h5py.string_dtype() datasets with the same strings; diff
// finds nothing. Blocks are made small to write in many H5Dwrite calls.
func TestHDF5VlenWrite(t *testing.T) {
	needH5py(t)
	defer func(b, e int64) { hdf5BlockBytes, vlenBlockElems = b, e }(hdf5BlockBytes, vlenBlockElems)
	hdf5BlockBytes, vlenBlockElems = 1000, 7
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	pyrun.Numpy2(t).Run(t, `import sys, numpy as np, h5py
d = sys.argv[1]
s = h5py.string_dtype()
with h5py.File(f"{d}/v.h5", "w") as f:
    f.create_dataset("s", data=np.array(["température", "", "日本", "🎉", "a b"], dtype=object), dtype=s)
    f.create_dataset("s2d", data=np.array([["x", "yy", "é"], ["", "zzzz", "😀😀"]], dtype=object), dtype=s)
    f.create_dataset("scalar", data="héé", dtype=s)
    f.create_dataset("empty", shape=(0, 3), dtype=s)
    f.create_dataset("ascii", data=np.array([b"ab", b"", b"c"], dtype=object), dtype=h5py.string_dtype("ascii"))
    big = np.array([f"s{i}é" * (i % 4) for i in range(1000)], dtype=object).reshape(40, 25)
    f.create_dataset("big", data=big, dtype=s)
    f.create_dataset("chunked", data=big, dtype=s, chunks=(8, 5), compression="gzip", shuffle=True)
    f["s"].attrs["units"] = "none"
`, dir)
	ctx := context.Background()
	same := func(a, b string) {
		t.Helper()
		var got []Difference
		n, err := Diff(ctx, a, b, "", "", DiffOptions{Report: func(d Difference) { got = append(got, d) }})
		if err != nil || n != 0 {
			t.Errorf("diff %s %s: %d %+v %v", filepath.Base(a), filepath.Base(b), n, got, err)
		}
	}
	for _, s := range [][2]string{{"v.h5", "v.mmpkl"}, {"v.mmpkl", "back.h5"}, {"back.h5", "back.mmpkl"}} {
		var skipped skipLog
		if err := File(ctx, p(s[0]), p(s[1]), "", "", Options{Skipped: skipped.add}); err != nil {
			t.Fatalf("%s -> %s: %v", s[0], s[1], err)
		}
		if len(skipped.names) != 0 {
			t.Errorf("%s -> %s skipped %q (%q)", s[0], s[1], skipped.names, skipped.reasons)
		}
		same(p(s[0]), p(s[1]))
	}
	same(p("v.h5"), p("back.h5"))
	out := pyrun.Numpy1(t).Run(t, `import sys, numpy as np, h5py
d = sys.argv[1]
with h5py.File(f"{d}/v.h5") as f, h5py.File(f"{d}/back.h5") as b:
    assert sorted(f) == sorted(b), (list(f), list(b))
    for k in f:
        got = b[k]
        info = h5py.check_string_dtype(got.dtype)
        assert info is not None and info.encoding == "utf-8" and info.length is None, (k, got.dtype, info)
        assert got.shape == f[k].shape, (k, got.shape)
        assert got.id.get_type() == f["s"].id.get_type(), k  # h5py.string_dtype()'s HDF5 type (H5Tequal)
        w = f[k].asstr()[()] if f[k].shape != (0, 3) else np.zeros((0, 3), object)
        g = got.asstr()[()] if got.shape != (0, 3) else np.zeros((0, 3), object)
        assert np.array_equal(np.asarray(w, dtype=object), np.asarray(g, dtype=object)), (k, w, g)
    assert b["chunked"].chunks == (8, 5) and b["chunked"].compression == "gzip" and b["chunked"].shuffle, b["chunked"].chunks
    assert b["big"].chunks is None
    assert b["s"].attrs["units"] == "none"
    assert b["s"].asstr()[3] == "🎉" and b["s"][0] == "température".encode()
print("ok")
`, dir)
	if strings.TrimSpace(out) != "ok" {
		t.Errorf("h5py: %s", out)
	}
}

// TestMmpklUnicodeToHDF5: Go-made '<U3' C and Fortran arrays, a '>U2'
// array, a scalar and a masked '<U2' array become HDF5 strings h5py reads
// in index order; a surrogate or an inner NUL refuses its key (skipped
// under SkipUnsupported).
func TestMmpklUnicodeToHDF5(t *testing.T) {
	needH5py(t)
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "u.mmpkl")
	f, err := bridge.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	put := func(k, dt string, shape []int, fortran bool, data []byte) {
		t.Helper()
		if err := f.PutArray(k, bridge.ArrayHeader{DType: mustDType(t, dt), Shape: shape, Fortran: fortran}, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	// Index order: [["a", "bb", "ccc"], ["é", "日本", "🎉x"]].
	put("c", "<U3", []int{2, 3}, false, utf32(3, false, "a", "bb", "ccc", "é", "日本", "🎉x"))
	put("f", "<U3", []int{2, 3}, true, utf32(3, false, "a", "é", "bb", "日本", "ccc", "🎉x"))
	put("be", ">U2", []int{3}, false, utf32(2, true, "ab", "ü", ""))
	put("bef", ">U2", []int{2, 2}, true, utf32(2, true, "p", "r", "q", "ß"))
	put("sc", "<U4", []int{}, false, utf32(4, false, "ça"))
	put("chunked", "<U2", []int{10}, false, utf32(2, false, "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"))
	if err := f.PutMasked("m", bridge.ArrayHeader{DType: mustDType(t, "<U2"), Shape: []int{3}}, bytes.NewReader(utf32(2, false, "x", "yz", "")), bytes.NewReader([]byte{0, 1, 0}), utf32(2, false, "NA")); err != nil {
		t.Fatal(err)
	}
	bad := utf32(1, false, "a", "b", "c", "d")
	binary.LittleEndian.PutUint32(bad[8:], 0xD800) // element (1, 0)
	put("bad", "<U1", []int{2, 2}, false, bad)
	put("nul", "<U3", []int{2}, false, append(utf32(3, false, "ok"), 'a', 0, 0, 0, 0, 0, 0, 0, 'b', 0, 0, 0))
	if err := f.Put("__attrs__", pyval.Dict{{Key: "/chunked", Value: pyval.Dict{{Key: "__layout__", Value: pyval.Dict{{Key: "chunks", Value: []any{int64(4)}}, {Key: "compression", Value: "gzip"}}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	dst := filepath.Join(dir, "u.h5")
	err = File(ctx, src, dst, "", "", Options{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Member != `key "bad"` || !strings.Contains(ue.Reason, "element at (1, 0) is not a valid Unicode code point") {
		t.Fatalf("got %v, want key \"bad\" refused for its element (1, 0)", err)
	}
	var skipped skipLog
	if err := File(ctx, src, dst, "", "", Options{SkipUnsupported: true, Skipped: skipped.add}); err != nil {
		t.Fatal(err)
	}
	wantSkipped := []string{`key "m"`, `key "bad"`, `key "nul"`}
	if !slices.Equal(skipped.names, wantSkipped) {
		t.Errorf("skipped %q (%q), want %q", skipped.names, skipped.reasons, wantSkipped)
	}
	if len(skipped.reasons) == 3 && (!strings.Contains(skipped.reasons[0], "fill value") || !strings.Contains(skipped.reasons[1], "U+D800") || !strings.Contains(skipped.reasons[2], "element at (1,) holds a NUL")) {
		t.Errorf("reasons %q", skipped.reasons)
	}
	out := pyrun.Numpy2(t).Run(t, `import sys, numpy as np, h5py
with h5py.File(sys.argv[1]) as f:
    assert sorted(f) == ["be", "bef", "c", "chunked", "f", "m", "m.mask", "sc"], list(f)
    for k in ["be", "bef", "c", "chunked", "f", "m", "sc"]:
        info = h5py.check_string_dtype(f[k].dtype)
        assert info is not None and info.encoding == "utf-8" and info.length is None, (k, f[k].dtype)
    want = [["a", "bb", "ccc"], ["é", "日本", "🎉x"]]
    assert f["c"].asstr()[()].tolist() == want, f["c"].asstr()[()]
    assert f["f"].asstr()[()].tolist() == want, f["f"].asstr()[()]
    assert f["be"].asstr()[()].tolist() == ["ab", "ü", ""], f["be"].asstr()[()]
    assert f["bef"].asstr()[()].tolist() == [["p", "q"], ["r", "ß"]], f["bef"].asstr()[()]
    assert f["sc"].asstr()[()] == "ça", f["sc"][()]
    assert f["chunked"].chunks == (4,) and f["chunked"].compression == "gzip"
    assert f["chunked"].asstr()[()].tolist() == [str(i) for i in range(10)]
    assert f["m"].asstr()[()].tolist() == ["x", "yz", ""] and f["m.mask"][()].tolist() == [False, True, False]
print("ok")
`, dst)
	if strings.TrimSpace(out) != "ok" {
		t.Errorf("h5py: %s", out)
	}
}
