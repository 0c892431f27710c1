package convert

import (
	"archive/zip"
	"bytes"
	stdflate "compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrun"
)

// readMembers returns the members of an archive as name -> bytes, and the
// names in order.
func readMembers(t *testing.T, path string) (map[string][]byte, []string) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	m := map[string][]byte{}
	var names []string
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("%s %s: %v", path, f.Name, err)
		}
		m[f.Name] = b
		names = append(names, f.Name)
	}
	return m, names
}

func TestNpzToMmpklAndBack(t *testing.T) {
	dir, desc := generate(t)
	ctx := context.Background()
	var checks []pyCheck
	for _, archive := range []string{"stored", "compressed"} {
		src := filepath.Join(dir, archive+".npz")
		origMembers, _ := readMembers(t, src)
		for _, prof := range profiles {
			mid := filepath.Join(dir, archive+"-"+prof.String()+".mmpkl")
			var pc progressCheck
			if err := File(ctx, src, mid, "", "", Options{Profile: prof, Progress: pc.fn}); err != nil {
				t.Fatalf("%s %s: %v", archive, prof, err)
			}
			if pc.last != pc.total || pc.calls == 0 {
				t.Errorf("%s %s: progress ended at %d of %d", archive, prof, pc.last, pc.total)
			}
			f, err := bridge.Open(mid)
			if err != nil {
				t.Fatal(err)
			}
			if keys, _ := f.Keys(); !slices.Equal(keys, npzOrder) {
				t.Errorf("%s %s: keys %q, want %q", archive, prof, keys, npzOrder)
			}
			for _, k := range npzOrder {
				a, err := f.Array(k)
				if err != nil {
					t.Fatalf("%s %s %s: %v", archive, prof, k, err)
				}
				checkArray(t, archive+" "+prof.String()+" "+k, a, inProfile(desc.Npz[k], prof))
			}
			f.Close()
			// A file reopened lists the keys in archive order too (entry
			// order); the bridge's in-process order follows commits.
			for _, compress := range []bool{false, true} {
				back := filepath.Join(dir, fmt.Sprintf("%s-%s-%v.npz", archive, prof, compress))
				if err := File(ctx, mid, back, "", "", Options{Compress: compress}); err != nil {
					t.Fatalf("%s %s back: %v", archive, prof, err)
				}
				got, names := readMembers(t, back)
				want := make([]string, len(npzOrder))
				expect := map[string]arrayDesc{}
				for i, k := range npzOrder {
					want[i] = k + ".npy"
					e := inProfile(desc.Npz[k], prof)
					e.Name = k
					expect[k] = e
					if prof == bridge.Portable && !bytes.Equal(got[k+".npy"], origMembers[k+".npy"]) {
						t.Errorf("%s: member %s differs from numpy's", back, k)
					}
				}
				if !slices.Equal(names, want) {
					t.Errorf("%s: members %q, want %q", back, names, want)
				}
				checks = append(checks, pyCheck{Path: back, Members: npzOrder, Expect: expect})
			}
		}
	}
	numpyCheck(t, checks)
	noTemp(t, dir)
}

func TestNpzRefused(t *testing.T) {
	dir, desc := generate(t)
	ctx := context.Background()
	for _, archive := range []string{"mixed_stored", "mixed_compressed"} {
		src := filepath.Join(dir, archive+".npz")
		dst := filepath.Join(dir, archive+".mmpkl")
		err := File(ctx, src, dst, "", "", Options{})
		var u *UnsupportedError
		if !errors.As(err, &u) || u.Member != `member "obj.npy"` {
			t.Fatalf("%s: got %v, want the object member refused", archive, err)
		}
		if want := src + `: member "obj.npy": object arrays cannot be converted`; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %q, want %q", archive, err, want)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("%s: refused conversion left its destination", archive)
		}
		var skipped []string
		opt := Options{SkipUnsupported: true, Skipped: func(n, r string) { skipped = append(skipped, n+": "+r) }}
		if err := File(ctx, src, dst, "", "", opt); err != nil {
			t.Fatalf("%s with SkipUnsupported: %v", archive, err)
		}
		want := []string{
			`member "obj.npy": object arrays cannot be converted (they need allow_pickle)`,
			`member "rec.npy": structured dtypes with object fields cannot be converted (they need allow_pickle)`,
			`member "README.txt": not an .npy member`,
		}
		if !slices.Equal(skipped, want) {
			t.Errorf("%s: skipped %q, want %q", archive, skipped, want)
		}
		f, err := bridge.Open(dst)
		if err != nil {
			t.Fatal(err)
		}
		if keys, _ := f.Keys(); !slices.Equal(keys, []string{"first", "names"}) {
			t.Errorf("%s: keys %q", archive, keys)
		}
		for k, d := range desc.Mixed {
			a, err := f.Array(k)
			if err != nil {
				t.Fatal(err)
			}
			checkArray(t, archive+" "+k, a, d)
		}
		f.Close()
	}
	noTemp(t, dir)
}

func TestNpzCorrupt(t *testing.T) {
	dir, _ := generate(t)
	ctx := context.Background()
	for _, c := range []struct {
		archive, member string
		prof            bridge.Profile
		at              int64 // offset in the member's data
	}{
		{"stored", "large.npy", bridge.Portable, 5 << 20},
		{"stored", "fbig.npy", bridge.Mmappickle, 4 << 20}, // the transposing path
		{"stored", "first.npy", bridge.Portable, 150},
		{"compressed", "large.npy", bridge.Portable, 1 << 20},
	} {
		src := filepath.Join(dir, "corrupt-"+c.archive+"-"+strings.TrimSuffix(c.member, ".npy")+".npz")
		b, _ := os.ReadFile(filepath.Join(dir, c.archive+".npz"))
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			if f.Name == c.member {
				off, _ := f.DataOffset()
				b[off+c.at] ^= 0x10
			}
		}
		os.WriteFile(src, b, 0o644)
		dst := filepath.Join(dir, "corrupt.mmpkl")
		err = File(ctx, src, dst, "", "", Options{Profile: c.prof})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("member %q", c.member)) {
			t.Errorf("%s %s: got %v, want an error naming the member", c.archive, c.member, err)
		} else if c.archive == "stored" && !errors.Is(err, zip.ErrChecksum) {
			t.Errorf("%s %s: got %v, want a checksum error", c.archive, c.member, err)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("%s %s: failed conversion left its destination", c.archive, c.member)
		}
	}
	noTemp(t, dir)
}

func TestNpzCancel(t *testing.T) {
	dir, _ := generate(t)
	for _, archive := range []string{"stored", "compressed"} {
		ctx, cancel := context.WithCancel(context.Background())
		dst := filepath.Join(dir, archive+".mmpkl")
		err := File(ctx, filepath.Join(dir, archive+".npz"), dst, "", "", Options{Progress: func(d, tot int64) { cancel() }})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: got %v, want context.Canceled", archive, err)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("%s: cancelled conversion left its destination", archive)
		}
	}
	noTemp(t, dir)
}

func TestNpzFromMaskedAndValues(t *testing.T) {
	needNumpy(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "m.mmpkl")
	f, err := bridge.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	i4, _ := bridge.ParseDType(">i4")
	data := []byte{0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6}
	mask := []byte{0, 1, 0, 0, 0, 1}
	h := bridge.ArrayHeader{DType: i4, Shape: []int{2, 3}, Fortran: true}
	if err := f.PutMasked("m", h, bytes.NewReader(data), bytes.NewReader(mask), nil); err != nil {
		t.Fatal(err)
	}
	f.Put("note", "a generic value")
	if err := f.PutArray("plain", h, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, compress := range []bool{false, true} {
		dst := filepath.Join(dir, fmt.Sprintf("m-%v.npz", compress))
		var skipped []string
		opt := Options{Compress: compress, Skipped: func(n, r string) { skipped = append(skipped, n+": "+r) }}
		if err := File(context.Background(), src, dst, "", "", opt); err != nil {
			t.Fatal(err)
		}
		if want := []string{`key "note": generic values have no .npy form`}; !slices.Equal(skipped, want) {
			t.Errorf("skipped %q, want %q", skipped, want)
		}
		d := arrayDesc{DType: ">i4", Shape: []int{2, 3}, Fortran: true, SHA: hexSHA(data)}
		md := arrayDesc{DType: "|b1", Shape: []int{2, 3}, Fortran: true, SHA: hexSHA(mask)}
		numpyCheck(t, []pyCheck{{Path: dst, Members: []string{"m", "m.mask", "plain"}, Expect: map[string]arrayDesc{"m": d, "m.mask": md, "plain": d}}})
	}
	// A key named like a mask member collides.
	col := filepath.Join(dir, "col.mmpkl")
	f, _ = bridge.Create(col)
	f.PutMasked("x", h, bytes.NewReader(data), bytes.NewReader(mask), nil)
	f.PutArray("x.mask", h, bytes.NewReader(data))
	f.Close()
	err = File(context.Background(), col, filepath.Join(dir, "col.npz"), "", "", Options{})
	var u *UnsupportedError
	if !errors.As(err, &u) || !strings.Contains(u.Reason, `"x.mask.npy" would collide`) {
		t.Errorf("collision: got %v", err)
	}
	noTemp(t, dir)
}

func TestNpzParallelDeflater(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 1000, pieceSize - 1, pieceSize, pieceSize + 1, 7*pieceSize/2 + 17, 12 * pieceSize} {
		in := make([]byte, n)
		for i := range in {
			if i%3 == 0 {
				in[i] = byte(rng.IntN(256)) // some noise in compressible data
			} else {
				in[i] = byte(i / 1000)
			}
		}
		var out bytes.Buffer
		d := newParallelDeflater(context.Background(), &out)
		// Write in odd sizes.
		for rest := in; len(rest) > 0; {
			k := min(len(rest), 1+rng.IntN(3*pieceSize/2))
			if _, err := d.Write(rest[:k]); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(stdflate.NewReader(&out))
		if err != nil || !bytes.Equal(got, in) {
			t.Errorf("%d bytes: round trip failed: %v (%d bytes back)", n, err, len(got))
		}
		if n == 12*pieceSize && out.Len() > n/2 {
			t.Errorf("%d bytes compressed to %d", n, out.Len())
		}
	}
}

// benchNpz writes, once per benchmark, an archive of 4 float32 members of
// 16 MiB (a random walk quantized to 1/256: deflate takes it to about a
// fifth) with numpy's np.savez or np.savez_compressed (zlib level 6).
func benchNpz(b *testing.B, compress bool) (string, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.npz")
	save := "savez"
	if compress {
		save = "savez_compressed"
	}
	pyrun.Numpy1(b).Run(b, `import sys, numpy as np
rng = np.random.default_rng(3)
a = {f"a{m}": (np.cumsum(rng.integers(-3, 4, 4 << 20)) / 256).astype("<f4").reshape(1024, 4096) for m in range(4)}
np.`+save+`(sys.argv[1], **a)`, path)
	return path, 4 * 16 << 20
}

func benchNpzToMmpkl(b *testing.B, compress bool) {
	src, n := benchNpz(b, compress)
	dir := b.TempDir()
	b.SetBytes(n)
	for b.Loop() {
		dst := filepath.Join(dir, "out.mmpkl")
		if err := File(context.Background(), src, dst, "", "", Options{Force: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNpzStoredToMmpkl(b *testing.B)   { benchNpzToMmpkl(b, false) }
func BenchmarkNpzDeflatedToMmpkl(b *testing.B) { benchNpzToMmpkl(b, true) }

// BenchmarkNpzInflate compares the inflaters on one 16 MiB member (as
// numpy's zlib deflates it, level 6, when numpy is there): stdlib's
// compress/flate and the one npz.go uses.
func BenchmarkNpzInflate(b *testing.B) {
	src, _ := benchNpz(b, true)
	zr, err := zip.OpenReader(src)
	if err != nil {
		b.Fatal(err)
	}
	defer zr.Close()
	raw, err := zr.File[0].OpenRaw()
	if err != nil {
		b.Fatal(err)
	}
	comp, _ := io.ReadAll(raw)
	for _, c := range []struct {
		name string
		new  func(io.Reader) io.ReadCloser
	}{
		{"stdlib", stdflate.NewReader},
		{"npz.go", newInflater},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(zr.File[0].UncompressedSize64))
			buf := make([]byte, pieceSize)
			for b.Loop() {
				r := c.new(bytes.NewReader(comp))
				for {
					_, err := r.Read(buf)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkNpzDeflate deflates 16 MiB of noisy float32 (the kind of data
// that made klauspost's level 6 store pieces zlib still compresses) with
// the parallel deflater of --compress, and reports its size against
// zlib's level 6 (numpy's, via Python) as size/zlib.
func BenchmarkNpzDeflate(b *testing.B) {
	dir := b.TempDir()
	raw, zsize := filepath.Join(dir, "raw.bin"), filepath.Join(dir, "zlib.txt")
	pyrun.Numpy1(b).Run(b, `import sys, zlib, numpy as np
n = 4 << 20
rng = np.random.default_rng(0)
a = (np.sin(np.arange(n, dtype=np.float32) / 50) + rng.standard_normal(n, dtype=np.float32) * 0.01).astype(np.float32).tobytes()
open(sys.argv[1], "wb").write(a)
open(sys.argv[2], "w").write(str(len(zlib.compress(a, 6))))`, raw, zsize)
	data, _ := os.ReadFile(raw)
	zs, _ := os.ReadFile(zsize)
	zlibSize, _ := strconv.Atoi(string(zs))
	b.SetBytes(int64(len(data)))
	var n int
	for b.Loop() {
		var out countWriter
		d := newParallelDeflater(context.Background(), &out)
		d.Write(data)
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
		n = int(out)
	}
	b.ReportMetric(float64(n)/float64(zlibSize), "size/zlib")
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// TestParallelDeflaterSize: --compress comes within 2% of zlib level 6
// (np.savez_compressed) on data its fast matcher finds incompressible, and
// the stream inflates back to the input.
func TestParallelDeflaterSize(t *testing.T) {
	t.Parallel()
	n := 4 << 20
	data := make([]byte, 0, 4*n)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range n {
		v := float32(math.Sin(float64(i)/50) + rng.NormFloat64()*0.01)
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	var out bytes.Buffer
	d := newParallelDeflater(context.Background(), &out)
	d.Write(data)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw, _ := stdflate.NewWriter(&z, 6)
	zw.Write(data)
	zw.Close()
	if ratio := float64(out.Len()) / float64(z.Len()); ratio > 1.02 {
		t.Errorf("deflated to %d bytes, zlib level 6 to %d (%.3fx)", out.Len(), z.Len(), ratio)
	}
	back, err := io.ReadAll(stdflate.NewReader(&out))
	if err != nil || !bytes.Equal(back, data) {
		t.Errorf("inflating the stream: %v, equal %v", err, bytes.Equal(back, data))
	}
}

var errTruncated = errors.New("truncated")

// TestNpzDeflatedBadCRC: a deflated member that inflates cleanly but whose
// CRC-32 or size disagrees with the archive's is refused (the member is
// inflated by our reader, not archive/zip's, so the check is ours).
func TestNpzDeflatedBadCRC(t *testing.T) {
	t.Parallel()
	dt, _ := bridge.ParseDType("<i4")
	member := append(npyHeaderBytes(dt, []int{1000}, false), make([]byte, 4000)...)
	for i := range 1000 {
		binary.LittleEndian.PutUint32(member[len(member)-4000+4*i:], uint32(i))
	}
	for _, c := range []struct {
		name string
		crc  func(uint32) uint32
		size func(uint64) uint64
		want error
	}{
		{"crc", func(c uint32) uint32 { return c ^ 1 }, func(n uint64) uint64 { return n }, zip.ErrChecksum},
		{"shorter", func(c uint32) uint32 { return c }, func(n uint64) uint64 { return n - 4 }, errTruncated},
		{"longer", func(c uint32) uint32 { return c }, func(n uint64) uint64 { return n + 4 }, io.ErrUnexpectedEOF},
		{"ok", func(c uint32) uint32 { return c }, func(n uint64) uint64 { return n }, nil},
	} {
		dir := t.TempDir()
		src := filepath.Join(dir, "bad.npz")
		var comp bytes.Buffer
		fw, _ := stdflate.NewWriter(&comp, 6)
		fw.Write(member)
		fw.Close()
		var zb bytes.Buffer
		zw := zip.NewWriter(&zb)
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "x.npy", Method: zip.Deflate, CRC32: c.crc(crc32.ChecksumIEEE(member)),
			CompressedSize64: uint64(comp.Len()), UncompressedSize64: c.size(uint64(len(member)))})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(comp.Bytes())
		zw.Close()
		os.WriteFile(src, zb.Bytes(), 0o644)
		err = File(context.Background(), src, filepath.Join(dir, "out.mmpkl"), "", "", Options{})
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if c.want == errTruncated {
			if err == nil || !strings.Contains(err.Error(), `member "x.npy": truncated`) {
				t.Errorf("%s: got %v, want a truncated member", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), `member "x.npy"`) {
			t.Errorf("%s: got %v, want %v naming the member", c.name, err, c.want)
		}
	}
}
