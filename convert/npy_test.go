package convert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrun"
)

// The .npy/.npz tests build their inputs with numpy (testdata/npy/gen.py,
// in the numpy1 environment of internal/pyrun) and check the outputs with it.

// arrayDesc describes an array as gen.py does.
type arrayDesc struct {
	DType   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Fortran bool   `json:"fortran"`
	SHA     string `json:"sha"`   // raw bytes in storage order
	SHAC    string `json:"sha_c"` // raw bytes in C order
	Name    string `json:"name,omitempty"`
}

type genDesc struct {
	Npy   map[string]arrayDesc `json:"npy"`
	Npz   map[string]arrayDesc `json:"npz"`
	Mixed map[string]arrayDesc `json:"mixed"`
}

// npzOrder is the archive order of stored.npz and compressed.npz.
var npzOrder = []string{"first", "large", "fort", "fbig", "names", "zero", "none", "sub/dir.x"}

// needNumpy skips the test when there is no numpy, except on CI.
func needNumpy(t testing.TB) { t.Helper(); pyrun.Numpy1(t) }

// pyCommand runs the numpy1 interpreter with args.
func pyCommand(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	return pyrun.Numpy1(t).Command(args...)
}

// generated is gen.py's output, made once for the package's tests (8 of
// them use it: 41 MB, 1.6 s of numpy each time otherwise).
var generated struct {
	once sync.Once
	dir  string
	desc genDesc
	err  error
}

// generate gives the test a new directory holding every input gen.py
// writes, as hard links to the files made once (copies where links fail):
// the tests read the inputs and write their outputs beside them.
func generate(t *testing.T) (string, genDesc) {
	t.Helper()
	needNumpy(t)
	g := &generated
	g.once.Do(func() {
		if g.dir, g.err = os.MkdirTemp("", "convert-gen-"); g.err != nil {
			return
		}
		var stderr bytes.Buffer
		cmd := pyCommand(t, filepath.Join("testdata", "npy", "gen.py"), "gen", g.dir)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			g.err = fmt.Errorf("gen.py: %v\n%s", err, stderr.String())
			return
		}
		g.err = json.Unmarshal(out, &g.desc)
	})
	if g.err != nil {
		t.Fatal(g.err)
	}
	dir := t.TempDir()
	ents, err := os.ReadDir(g.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		from, to := filepath.Join(g.dir, e.Name()), filepath.Join(dir, e.Name())
		if os.Link(from, to) != nil {
			b, err := os.ReadFile(from)
			if err == nil {
				err = os.WriteFile(to, b, 0o444)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir, g.desc
}

// TestMain removes the inputs made once.
func TestMain(m *testing.M) {
	code := m.Run()
	if generated.dir != "" {
		os.RemoveAll(generated.dir)
	}
	os.Exit(code)
}

// pyCheck is one file for gen.py check.
type pyCheck struct {
	Path    string               `json:"path"`
	Members []string             `json:"members"`
	Expect  map[string]arrayDesc `json:"expect"`
}

// numpyCheck loads every file with numpy (one Python run) and compares.
func numpyCheck(t *testing.T, checks []pyCheck) {
	t.Helper()
	in, _ := json.Marshal(checks)
	cmd := pyCommand(t, filepath.Join("testdata", "npy", "gen.py"), "check")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("numpy check of %d files: %v\n%s", len(checks), err, out)
	}
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// inProfile is the description of an array once stored in profile p: the
// mmappickle encoding holds C-order data.
func inProfile(d arrayDesc, p bridge.Profile) arrayDesc {
	if p == bridge.Mmappickle && d.Fortran {
		d.Fortran, d.SHA = false, d.SHAC
	}
	return d
}

// checkArray compares an array of an mmappickle file with its description.
func checkArray(t *testing.T, where string, a *bridge.Array, want arrayDesc) {
	t.Helper()
	shape := a.Shape
	if shape == nil {
		shape = []int{}
	}
	if a.DType.String() != want.DType || !slices.Equal(shape, want.Shape) || a.Fortran != want.Fortran {
		t.Errorf("%s: %s %v fortran=%v, want %s %v fortran=%v", where, a.DType, shape, a.Fortran, want.DType, want.Shape, want.Fortran)
	}
	if got := hexSHA(a.Bytes()); got != want.SHA {
		t.Errorf("%s: data differ (sha256 %s, want %s)", where, got[:12], want.SHA[:12])
	}
}

var profiles = []bridge.Profile{bridge.Portable, bridge.Mmappickle}

// progressCheck records progress calls, which may come from several
// goroutines at once: last is the most done reported.
type progressCheck struct {
	mu                 sync.Mutex
	calls, last, total int64
}

func (pc *progressCheck) fn(d, tot int64) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.calls++
	pc.last, pc.total = max(pc.last, d), tot
}

func TestNpyToMmpklAndBack(t *testing.T) {
	dir, desc := generate(t)
	ctx := context.Background()
	var checks []pyCheck
	for _, prof := range profiles {
		for name, want := range desc.Npy {
			src := filepath.Join(dir, name+".npy")
			mid := filepath.Join(dir, prof.String()+"-"+name+".mmpkl")
			var pc progressCheck
			if err := File(ctx, src, mid, "", "", Options{Profile: prof, Progress: pc.fn}); err != nil {
				t.Fatalf("%s %s: %v", prof, name, err)
			}
			if pc.last != pc.total || (pc.total > 0 && pc.calls == 0) {
				t.Errorf("%s %s: progress ended at %d of %d", prof, name, pc.last, pc.total)
			}
			f, err := bridge.Open(mid)
			if err != nil {
				t.Fatal(err)
			}
			if keys, _ := f.Keys(); !slices.Equal(keys, []string{name}) {
				t.Errorf("%s %s: keys %q", prof, name, keys)
			}
			a, err := f.Array(name)
			if err != nil {
				t.Fatalf("%s %s: %v", prof, name, err)
			}
			if a.Profile != prof {
				t.Errorf("%s %s: encoding %s", prof, name, a.Profile)
			}
			checkArray(t, prof.String()+" "+name, a, inProfile(want, prof))
			f.Close()

			back := filepath.Join(dir, prof.String()+"-"+name+".npy")
			if err := File(ctx, mid, back, "", "", Options{}); err != nil {
				t.Fatalf("%s %s back: %v", prof, name, err)
			}
			if prof == bridge.Portable || !want.Fortran {
				// The same file np.save wrote, byte for byte.
				orig, _ := os.ReadFile(src)
				got, _ := os.ReadFile(back)
				if !bytes.Equal(orig, got) {
					t.Errorf("%s %s: .npy differs from numpy's (%d vs %d bytes)\n got %q\nwant %q", prof, name, len(got), len(orig), got[:min(len(got), 128)], orig[:min(len(orig), 128)])
				}
			}
			w := inProfile(want, prof)
			w.Name = name
			checks = append(checks, pyCheck{Path: back, Members: []string{name}, Expect: map[string]arrayDesc{name: w}})
		}
	}
	numpyCheck(t, checks)
	noTemp(t, dir)
}

func TestNpyKey(t *testing.T) {
	dir, desc := generate(t)
	dst := filepath.Join(dir, "k.mmpkl")
	if err := File(context.Background(), filepath.Join(dir, "fortran3.npy"), dst, "", "", Options{Key: "renamed"}); err != nil {
		t.Fatal(err)
	}
	f, err := bridge.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := f.Array("renamed")
	if err != nil {
		t.Fatal(err)
	}
	checkArray(t, "renamed", a, desc.Npy["fortran3"])
}

func TestNpyRefused(t *testing.T) {
	dir, _ := generate(t)
	for name, reason := range map[string]string{
		"object":     "object arrays cannot be converted (they need allow_pickle)",
		"structured": "structured dtypes with object fields cannot be converted (they need allow_pickle)",
	} {
		src := filepath.Join(dir, name+".npy")
		dst := filepath.Join(dir, name+".mmpkl")
		err := File(context.Background(), src, dst, "", "", Options{})
		var u *UnsupportedError
		if !errors.As(err, &u) || u.File != src || u.Member != "array" || u.Reason != reason {
			t.Errorf("%s: got %v, want UnsupportedError %q", name, err, reason)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("%s: refused conversion left its destination", name)
		}
		var skipped []string
		opt := Options{SkipUnsupported: true, Skipped: func(n, r string) { skipped = append(skipped, n+": "+r) }}
		if err := File(context.Background(), src, dst, "", "", opt); err != nil {
			t.Errorf("%s with SkipUnsupported: %v", name, err)
		}
		if !slices.Equal(skipped, []string{"array: " + reason}) {
			t.Errorf("%s: skipped %q", name, skipped)
		}
	}
	noTemp(t, dir)
}

func TestNpyTruncated(t *testing.T) {
	dir, _ := generate(t)
	for _, c := range []struct {
		name string
		cut  int
		want string
	}{
		{"big", 1000, "the array data has 16776216 bytes, the header says 16777216"},
		{"num_f8", 8, "the array data has 232 bytes, the header says 240"},
		{"scalar", 100, "truncated .npy header"},
	} {
		b, _ := os.ReadFile(filepath.Join(dir, c.name+".npy"))
		src := filepath.Join(dir, "cut-"+c.name+".npy")
		os.WriteFile(src, b[:len(b)-c.cut], 0o644)
		dst := filepath.Join(dir, "cut-"+c.name+".mmpkl")
		err := File(context.Background(), src, dst, "", "", Options{})
		if err == nil || !strings.Contains(err.Error(), src) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming the file and %q", c.name, err, c.want)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("%s: failed conversion left its destination", c.name)
		}
	}
	noTemp(t, dir)
}

// npyFile builds an .npy file with a hand-written header.
func npyFile(major byte, dict string, data []byte) []byte {
	b := []byte(npyMagic)
	b = append(b, major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(dict)))
	}
	return append(append(b, dict...), data...)
}

func TestNpyHeaderParse(t *testing.T) {
	ok := []struct {
		major   byte
		dict    string
		dtype   string
		shape   []int
		fortran bool
	}{
		{1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }\n", "<f8", []int{2, 3}, false},
		// Any key order, no trailing comma, double quotes, odd spacing.
		{1, "{\"shape\":(3,),'fortran_order':True,'descr':'>i4'}   \n", ">i4", []int{3}, true},
		{2, "{'descr': '|b1', 'fortran_order': False, 'shape': (), }\n", "|b1", []int{}, false},
		{3, "{'descr': '<U3', 'fortran_order': False, 'shape': (1, 0, 2), }\n", "<U3", []int{1, 0, 2}, false},
		// Python 2's longs, as numpy accepts them in versions 1 and 2.
		{1, "{'descr': '<M8[D]', 'fortran_order': False, 'shape': (4L, 5L), }\n", "<M8[D]", []int{4, 5}, false},
		{1, "{'descr': 'float32', 'fortran_order': False, 'shape': ((7),), }\n", "<f4", []int{7}, false},
	}
	for _, c := range ok {
		b := npyFile(c.major, c.dict, nil)
		h, err := readNpyHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Errorf("%q: %v", c.dict, err)
			continue
		}
		if h.DType.String() != c.dtype || !slices.Equal(h.Shape, c.shape) || h.Fortran != c.fortran || h.DataOff != int64(len(b)) {
			t.Errorf("%q: got %s %v %v at %d", c.dict, h.DType, h.Shape, h.Fortran, h.DataOff)
		}
	}
	bad := []struct {
		b    []byte
		want string
	}{
		{[]byte("\x93NUMPY\x01"), "not an .npy file"},
		{[]byte("\x93NUMPX\x01\x00\x10\x00" + strings.Repeat(" ", 16)), "bad magic"},
		{npyFile(4, "{}\n", nil), "version 4.0 is not supported"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", make([]byte, 16)), "does not end with a newline"},
		{append([]byte("\x93NUMPY\x02\x00\xff\xff\xff\x7f"), make([]byte, 100)...), "exceeds the limit"},
		{append([]byte("\x93NUMPY\x01\x00\xff\xff"), make([]byte, 100)...), "truncated .npy header"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }\n", nil), "negative"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': 0, 'shape': (2,), }\n", nil), "not a bool"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': 2, }\n", nil), "not a tuple"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2.5,), }\n", nil), "decimal integers"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': False, }\n", nil), "want descr, fortran_order and shape"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}\n", nil), "want descr, fortran_order and shape"},
		{npyFile(1, "{'descr': '<f8', 'descr': '<f8', 'shape': (2,), }\n", nil), "appears twice"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), } x\n", nil), "after the dict"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", nil), "out of range"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n", nil), "too large"},
		{npyFile(1, strings.Repeat("(", 100)+"\n", nil), "nested"},
		{npyFile(1, "{'descr': '<f8', 'fortran_order': Flase, 'shape': (2,), }\n", nil), "unexpected name"},
		{npyFile(1, "{'descr': '<f8\n', 'fortran_order': False, 'shape': (2,), }\n", nil), "newline in string"},
		{npyFile(1, "{'descr': 8, 'fortran_order': False, 'shape': (2,), }\n", nil), "descr is an int"},
		{npyFile(3, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\xff\n", nil), "not UTF-8"},
	}
	for _, c := range bad {
		h, err := readNpyHeader(bytes.NewReader(c.b), int64(len(c.b)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v (%+v), want an error with %q", c.b, err, h, c.want)
		}
	}
	unsupported := map[string]string{
		"'|O'":                        "object arrays cannot be converted",
		"[('a', '<i4'), ('o', '|O')]": "structured dtypes with object fields cannot be converted",
		"[(('t', 'a'), '<i4')]":       "field titles",
		"('<f8', (2, 3))":             "a subarray dtype as the array's dtype",
		"'<q7'":                       `dtype "<q7"`,
		"'<U0'":                       `dtype "<U0"`,
	}
	for descr, want := range unsupported {
		b := npyFile(1, "{'descr': "+descr+", 'fortran_order': False, 'shape': (2,), }\n", nil)
		_, err := readNpyHeader(bytes.NewReader(b), int64(len(b)))
		var u *npyUnsupported
		if !errors.As(err, &u) || !strings.Contains(u.reason, want) {
			t.Errorf("descr %s: got %v, want unsupported %q", descr, err, want)
		}
	}
}

func TestNpyHeaderBytes(t *testing.T) {
	// As numpy 1.24 writes them (checked against np.save by
	// TestNpyToMmpklAndBack too).
	d, _ := bridge.ParseDType("<f8")
	got := npyHeaderBytes(d, []int{2, 3}, false)
	want := "\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }" + strings.Repeat(" ", 128-11-len("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }")) + "\n"
	if string(got) != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if len(got)%64 != 0 {
		t.Errorf("header of %d bytes", len(got))
	}
	// A shape with the largest dimensions still fits version 1.0.
	shape := make([]int, 64)
	for i := range shape {
		shape[i] = 1 << 62
	}
	if b := npyHeaderBytes(d, shape, true); b[6] != 1 || len(b)%64 != 0 {
		t.Errorf("64 dimensions: version %d, %d bytes", b[6], len(b))
	}
	h, err := readNpyHeader(bytes.NewReader(got), int64(len(got)))
	if err != nil || h.DataOff != int64(len(got)) {
		t.Errorf("reading our header back: %v", err)
	}
}

func TestMmpklToNpyChoosesKey(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "many.mmpkl")
	f, err := bridge.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	f8, _ := bridge.ParseDType("<f8")
	h := bridge.ArrayHeader{DType: f8, Shape: []int{2}}
	put := func(k string) {
		if err := f.PutArray(k, h, bytes.NewReader(make([]byte, 16))); err != nil {
			t.Fatal(err)
		}
	}
	put("a")
	if err := f.Put("v", int64(3)); err != nil {
		t.Fatal(err)
	}
	if err := f.PutMasked("m", h, bytes.NewReader(make([]byte, 16)), bytes.NewReader([]byte{0, 1}), nil); err != nil {
		t.Fatal(err)
	}
	put("b")
	f.Close()
	ctx := context.Background()
	for _, c := range []struct {
		key, want string
	}{
		{"", `holds 3 arrays ("a", "m", "b"): name the one to write`},
		{"m", `key "m" is a masked array`},
		{"v", `key "v" holds a value, not an array`},
		{"zz", `key "zz": key not found (arrays: "a", "m", "b")`},
	} {
		dst := filepath.Join(dir, "out.npy")
		err := File(ctx, src, dst, "", "", Options{Key: c.key})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("key %q: got %v, want %q", c.key, err, c.want)
		}
	}
	dst := filepath.Join(dir, "b.npy")
	if err := File(ctx, src, dst, "", "", Options{Key: "b"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(dst)
	if len(b) != 128+16 || !bytes.HasPrefix(b, []byte("\x93NUMPY\x01\x00\x76\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }")) {
		t.Errorf("b.npy: %q", b)
	}

	// One array among values: chosen without --key.
	one := filepath.Join(dir, "one.mmpkl")
	f, _ = bridge.Create(one)
	f.Put("v", "text")
	if err := f.PutArray("only", h, bytes.NewReader(make([]byte, 16))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := File(ctx, one, filepath.Join(dir, "only.npy"), "", "", Options{}); err != nil {
		t.Error(err)
	}
	noTemp(t, dir)
}

func TestNpyWriteFToC(t *testing.T) {
	for _, c := range []struct {
		shape []int
		size  int
	}{
		{[]int{3, 4}, 8}, {[]int{2, 3, 5}, 2}, {[]int{4, 1, 3}, 1}, {[]int{3, 2}, 4}, {[]int{2, 2, 2, 2}, 16}, {[]int{5, 7}, 3},
	} {
		n := c.size
		for _, d := range c.shape {
			n *= d
		}
		// Element k (in Fortran order) holds bytes derived from its C index.
		src := make([]byte, n)
		want := make([]byte, n)
		nd := len(c.shape)
		idx := make([]int, nd)
		for k := 0; k < n/c.size; k++ {
			// idx is the multi-index of Fortran-order element k.
			ci := 0
			for ax := 0; ax < nd; ax++ {
				ci = ci*c.shape[ax] + idx[ax]
			}
			for b := range c.size {
				v := byte(ci*7 + b)
				src[k*c.size+b] = v
				want[ci*c.size+b] = v
			}
			for ax := 0; ax < nd; ax++ {
				idx[ax]++
				if idx[ax] < c.shape[ax] {
					break
				}
				idx[ax] = 0
			}
		}
		var w writerAtBuf
		p := &progress{ctx: context.Background()}
		if err := writeFToC(context.Background(), &w, src, c.shape, c.size, p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.b, want) || p.done.Load() != int64(n) {
			t.Errorf("shape %v size %d: transposed wrongly", c.shape, c.size)
		}
	}
}

type writerAtBuf struct{ b []byte }

func (w *writerAtBuf) WriteAt(p []byte, off int64) (int, error) {
	if int(off)+len(p) > len(w.b) {
		w.b = append(w.b, make([]byte, int(off)+len(p)-len(w.b))...)
	}
	return copy(w.b[off:], p), nil
}

var _ io.WriterAt = (*writerAtBuf)(nil)
