package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"mmpbridge/internal/pyrun"

	"github.com/google/go-cmp/cmp"
)

func i64Header(n int) ArrayHeader {
	return ArrayHeader{DType: DType{ByteOrder: '<', Kind: 'i', ItemSize: 8}, Shape: []int{n}}
}

func i64Bytes(vals ...int64) []byte {
	b := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return b
}

func putI64(t testing.TB, f *File, key string, vals ...int64) {
	t.Helper()
	if err := f.PutArray(key, i64Header(len(vals)), bytes.NewReader(i64Bytes(vals...))); err != nil {
		t.Fatal(err)
	}
}

func getI64(t testing.TB, f *File, key string) []int64 {
	t.Helper()
	a, err := f.Array(key)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, a.NBytes)
	if _, err := a.Section().ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(b)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	if v, err := View[int64](a); err == nil && !cmp.Equal(v, out) {
		t.Fatalf("%s: view %v, bytes %v", key, v, out)
	}
	return out
}

func newFile(t testing.TB, opts ...Option) (*File, string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "f.mmpkl")
	f, err := Create(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, name
}

func TestEditCycle(t *testing.T) {
	for _, p := range []Profile{Portable, Mmappickle} {
		t.Run(p.String(), func(t *testing.T) {
			f, name := newFile(t, WithProfile(p))
			putI64(t, f, "a", 1, 2, 3)
			putI64(t, f, "b", 4)
			putI64(t, f, "c", 5, 6)
			if cn, _ := f.CommitNumber(); cn != 3 {
				t.Errorf("commit number %d after 3 puts", cn)
			}
			old, _ := f.Array("a")
			putI64(t, f, "a", 7, 8) // replace
			if err := f.Delete("b"); err != nil {
				t.Fatal(err)
			}
			if err := f.Delete("b"); !errors.Is(err, ErrKeyNotFound) {
				t.Errorf("second delete: %v", err)
			}
			keys, _ := f.Keys()
			if !cmp.Equal(keys, []string{"c", "a"}) {
				t.Errorf("keys %q", keys)
			}
			// Replace never moves live data: the old view still reads 1 2 3.
			if v, _ := View[int64](old); !cmp.Equal(v, []int64{1, 2, 3}) {
				t.Errorf("old view %v", v)
			}
			if cn, _ := f.CommitNumber(); cn != 5 {
				t.Errorf("commit number %d after 5 changes", cn)
			}
			// Another handle sees the same state.
			g, err := Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if got := getI64(t, g, "a"); !cmp.Equal(got, []int64{7, 8}) {
				t.Errorf("a = %v", got)
			}
			// And follows later changes of f.
			putI64(t, f, "d", 9)
			if got := getI64(t, g, "d"); !cmp.Equal(got, []int64{9}) {
				t.Errorf("d = %v", got)
			}
			before, _ := os.Stat(name)
			if err := f.Vacuum(); err != nil {
				t.Fatal(err)
			}
			after, _ := os.Stat(name)
			if after.Size() >= before.Size() {
				t.Errorf("vacuum did not shrink the file: %d -> %d", before.Size(), after.Size())
			}
			es, _ := f.Entries()
			for _, e := range es {
				if !e.Live && e.Key != "" {
					t.Errorf("dead entry %q survived vacuum", e.Key)
				}
			}
			for k, want := range map[string][]int64{"a": {7, 8}, "c": {5, 6}, "d": {9}} {
				if got := getI64(t, f, k); !cmp.Equal(got, want) {
					t.Errorf("after vacuum %s = %v", k, got)
				}
				if a, _ := f.Array(k); a.Offset%64 != 0 {
					t.Errorf("after vacuum %s at unaligned offset %d", k, a.Offset)
				}
			}
			if cn, _ := f.CommitNumber(); cn != 0 {
				t.Errorf("commit number after vacuum %d, want 0 as mmappickle", cn)
			}
			rep, err := f.Repair()
			if err != nil || rep.Repaired {
				t.Errorf("fsck of an intact file: %+v %v", rep, err)
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	_, name := newFile(t)
	f, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.PutArray("x", i64Header(1), bytes.NewReader(i64Bytes(1))); !errors.Is(err, ErrReadOnly) {
		t.Errorf("put on read-only file: %v", err)
	}
	if err := f.Delete("x"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("delete on read-only file: %v", err)
	}
	f.Close()
	if err := f.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second close: %v", err)
	}
	if _, err := f.Keys(); !errors.Is(err, ErrClosed) {
		t.Errorf("keys after close: %v", err)
	}
}

func TestBadKeys(t *testing.T) {
	f, _ := newFile(t)
	for _, k := range []string{"", string(bytes.Repeat([]byte("k"), 256)), "\xff"} {
		if err := f.PutArray(k, i64Header(1), bytes.NewReader(i64Bytes(1))); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	long := string(bytes.Repeat([]byte("k"), 255))
	putI64(t, f, long, 1)
	putI64(t, f, "键", 2)
	if got := getI64(t, f, long); got[0] != 1 {
		t.Error(got)
	}
}

func TestShortData(t *testing.T) {
	f, name := newFile(t)
	putI64(t, f, "a", 1)
	size0, _ := os.Stat(name)
	err := f.PutArray("b", i64Header(4), bytes.NewReader(i64Bytes(1, 2)))
	if err == nil {
		t.Fatal("short data accepted")
	}
	size1, _ := os.Stat(name)
	if size0.Size() != size1.Size() {
		t.Errorf("failed put left %d bytes behind", size1.Size()-size0.Size())
	}
	if keys, _ := f.Keys(); !cmp.Equal(keys, []string{"a"}) {
		t.Errorf("keys %q", keys)
	}
	if _, err := newReaderBytes(mustRead(t, name)); err != nil {
		t.Errorf("file invalid after failed put: %v", err)
	}
}

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFsck cuts the file at every offset of its last entry and terminator:
// fsck keeps every entry committed before and restores a valid file.
func TestFsck(t *testing.T) {
	f, name := newFile(t, WithAlign(1))
	putI64(t, f, "a", 1, 2)
	putI64(t, f, "b", 3)
	es, _ := f.Entries()
	f.Close()
	full := mustRead(t, name)
	lastStart := es[len(es)-1].Offset
	for cut := lastStart; cut < int64(len(full)); cut++ {
		torn := filepath.Join(t.TempDir(), "torn.mmpkl")
		if err := os.WriteFile(torn, full[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := newReaderBytes(full[:cut]); !errors.Is(err, ErrTorn) {
			t.Fatalf("cut at %d: reader says %v, want ErrTorn", cut, err)
		}
		g, err := OpenFile(torn, os.O_RDWR, 0)
		if err == nil {
			t.Fatalf("cut at %d: opened a torn file", cut)
		}
		rep, err := repairFile(torn)
		if err != nil || !rep.Repaired {
			t.Fatalf("cut at %d: %+v %v", cut, rep, err)
		}
		if g, err = Open(torn); err != nil {
			t.Fatalf("cut at %d: after repair: %v", cut, err)
		}
		// Cut by up to 12 bytes (the terminator and the last entry's
		// final POP), the file comes back whole, as with mmappickle; by
		// 13, the entry's flag is gone and it is kept deleted.
		want := []string{"a"}
		if cut >= es[len(es)-1].end()-1 {
			want = []string{"a", "b"}
			if got := mustRead(t, torn); !bytes.Equal(got, full) {
				t.Errorf("cut at %d: repaired file differs from the original (%d bytes, want %d)", cut, len(got), len(full))
			}
		}
		if cut == es[len(es)-1].end()-2 && rep.Restored != 2 {
			t.Errorf("cut at %d: %+v, want 2 bytes restored", cut, rep)
		}
		if keys, _ := g.Keys(); !cmp.Equal(keys, want) {
			t.Errorf("cut at %d: keys %q, want %q", cut, keys, want)
		}
		if got := getI64(t, g, "a"); !cmp.Equal(got, []int64{1, 2}) {
			t.Errorf("cut at %d: a = %v", cut, got)
		}
		g.Close()
	}
}

func TestReserve(t *testing.T) {
	f, _ := newFile(t)
	putI64(t, f, "x", 1)
	s, err := f.Reserve("x", i64Header(1000))
	if err != nil {
		t.Fatal(err)
	}
	if s.Offset%64 != 0 {
		t.Errorf("slot at unaligned offset %d", s.Offset)
	}
	if got := getI64(t, f, "x"); !cmp.Equal(got, []int64{1}) {
		t.Errorf("before commit x = %v", got)
	}
	b, err := s.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 999 {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(i))
	}
	if _, err := s.WriteAt(i64Bytes(999), 8*999); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteAt(i64Bytes(1), 8*1000); err == nil {
		t.Error("write past the slot accepted")
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	got := getI64(t, f, "x")
	for i, v := range got {
		if v != int64(i) {
			t.Fatalf("x[%d] = %d", i, v)
		}
	}
	if keys, _ := f.Keys(); !cmp.Equal(keys, []string{"x"}) {
		t.Errorf("keys %q", keys)
	}
}

// TestHelperProcess is not a test: it appends keys when run as a child.
func TestHelperProcess(t *testing.T) {
	name, prefix := os.Getenv("MMP_HELPER_FILE"), os.Getenv("MMP_HELPER_PREFIX")
	if name == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv("MMP_HELPER_COUNT"))
	f, err := OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := range n {
		if err := f.PutArray(fmt.Sprintf("%s%d", prefix, i), i64Header(1), bytes.NewReader(i64Bytes(int64(i)))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
	f.Close()
	os.Exit(0)
}

func helperCmd(name, prefix string, n int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "MMP_HELPER_FILE="+name, "MMP_HELPER_PREFIX="+prefix, "MMP_HELPER_COUNT="+strconv.Itoa(n))
	return cmd
}

// TestConcurrentWriters: Go processes and an independent Python writer
// append to one file at once; no key is lost.
func TestConcurrentWriters(t *testing.T) {
	_, name := newFile(t)
	const n = 100
	cmds := []*exec.Cmd{helperCmd(name, "go1-", n), helperCmd(name, "go2-", n)}
	cmds = append(cmds, pyrun.Numpy1(t).Command("testdata/pywriter.py", name, "py-", strconv.Itoa(n)))
	var wg sync.WaitGroup
	errs := make([]error, len(cmds))
	for i, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("%v: %v\n%s", c.Args, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	f, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, _ := f.Keys()
	if len(keys) != n*len(cmds) {
		t.Fatalf("%d keys, want %d", len(keys), n*len(cmds))
	}
	for i := range n {
		for _, p := range []string{"go1-", "go2-"} {
			if got := getI64(t, f, fmt.Sprintf("%s%d", p, i)); got[0] != int64(i) {
				t.Errorf("%s%d = %v", p, i, got)
			}
		}
	}
	if cn, _ := f.CommitNumber(); cn != int32(n*len(cmds)) {
		t.Errorf("commit number %d, want %d", cn, n*len(cmds))
	}
}

// TestConcurrentMmappickle: a Go process and mmappickle itself (the
// reference environment of internal/pyrun) append to one file at once.
func TestConcurrentMmappickle(t *testing.T) {
	ref := pyrun.Reference(t)
	_, name := newFile(t)
	const n = 100
	script := `
import sys, numpy
import mmappickle
d = mmappickle.mmapdict(sys.argv[2])
for i in range(int(sys.argv[3])):
    d["mm-%d" % i] = {"i": i}
print(len(d.keys()))
`
	py := ref.Command("-c", script, "", name, strconv.Itoa(n))
	gocmd := helperCmd(name, "go-", n)
	var wg sync.WaitGroup
	var pyOut, goOut []byte
	var pyErr, goErr error
	wg.Add(2)
	go func() { defer wg.Done(); pyOut, pyErr = py.CombinedOutput() }()
	go func() { defer wg.Done(); goOut, goErr = gocmd.CombinedOutput() }()
	wg.Wait()
	if pyErr != nil || goErr != nil {
		t.Fatalf("python: %v %s\ngo: %v %s", pyErr, pyOut, goErr, goOut)
	}
	f, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, _ := f.Keys()
	if len(keys) != 2*n {
		t.Fatalf("%d keys, want %d", len(keys), 2*n)
	}
	for i := range n {
		if got := getI64(t, f, fmt.Sprintf("go-%d", i)); got[0] != int64(i) {
			t.Errorf("go-%d = %v", i, got)
		}
		if _, err := f.Entry(fmt.Sprintf("mm-%d", i)); err != nil {
			t.Error(err)
		}
	}
	// And mmappickle reads every key back.
	check := `
import sys, numpy
import mmappickle
d = mmappickle.mmapdict(sys.argv[2], readonly=True)
n = int(sys.argv[3])
assert all(d["mm-%d" % i] == {"i": i} for i in range(n))
assert all(int(d["go-%d" % i][0]) == i for i in range(n))
print("ok")
`
	out, err := ref.Command("-c", check, "", name, strconv.Itoa(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("mmappickle cannot read the result: %v\n%s", err, out)
	}
}

// repairFile opens name as torn and repairs it, as mmpconv fsck does.
func repairFile(name string) (RepairReport, error) {
	f, err := OpenFile(name, os.O_RDWR, 0, AllowTorn())
	if err != nil {
		return RepairReport{}, err
	}
	defer f.Close()
	return f.Repair()
}
