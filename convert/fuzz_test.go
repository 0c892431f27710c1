package convert

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"mmpbridge/bridge"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// FuzzNpyHeader: readNpyHeader never panics, reads exactly the header, and
// what it accepts describes a consistent array whose header, as we write it,
// parses back the same.
func FuzzNpyHeader(f *testing.F) {
	for _, d := range []string{
		"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }\n",
		"{\"shape\":(3,),'fortran_order':True,'descr':'>i4'}   \n",
		"{'descr': '|b1', 'fortran_order': False, 'shape': (), }\n",
		"{'descr': '<M8[D]', 'fortran_order': False, 'shape': (4L, 5L), }\n",
		"{'descr': 'float32', 'fortran_order': False, 'shape': ((7),), }\n",
		"{'descr': [('a', '<i4'), ('b', '<f8')], 'fortran_order': False, 'shape': (2,), }\n",
		"{'descr': ('<f8', (2, 3)), 'fortran_order': False, 'shape': (2,), }\n",
		"{'descr': '<U3', 'fortran_order': False, 'shape': (1, 0, 2), }\n",
	} {
		for _, major := range []byte{1, 2, 3} {
			f.Add(npyFile(major, d, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
		}
	}
	for _, s := range []string{"<c16", ">u2", "|S5", "<m8[us]", "<f2"} {
		d, _ := bridge.ParseDType(s)
		f.Add(npyHeaderBytes(d, []int{3, 1, 2}, true))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		h, err := readNpyHeader(cr, int64(len(data)))
		if err != nil {
			if cr.n > int64(len(data)) {
				t.Fatalf("read %d bytes of %d", cr.n, len(data))
			}
			return
		}
		if cr.n != h.DataOff || h.DataOff > int64(len(data)) {
			t.Fatalf("read %d bytes, the header is %d, the input %d", cr.n, h.DataOff, len(data))
		}
		n := int64(h.DType.ItemSize)
		for _, d := range h.Shape {
			if d < 0 {
				t.Fatalf("negative dimension in %v", h.Shape)
			}
			n *= int64(d)
		}
		if h.DType.ItemSize <= 0 || n != h.NBytes {
			t.Fatalf("%s %v: NBytes %d, want %d", h.DType, h.Shape, h.NBytes, n)
		}
		b := npyHeaderBytes(h.DType, h.Shape, h.Fortran)
		if len(b)%64 != 0 {
			t.Fatalf("written header of %d bytes, not a multiple of 64", len(b))
		}
		h2, err := readNpyHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("the header written for %s %v fortran=%v does not parse: %v\n%q", h.DType, h.Shape, h.Fortran, err, b)
		}
		if h2.DType != h.DType || !slices.Equal(h2.Shape, h.Shape) || h2.Fortran != h.Fortran || h2.NBytes != h.NBytes || h2.DataOff != int64(len(b)) {
			t.Fatalf("round trip: %+v, want %+v", h2, h)
		}
	})
}

// fuzzSeedNpz writes .npz archives of the compat reference files (stored
// and deflated) as seeds.
func fuzzSeedNpz(f *testing.F) {
	dir := f.TempDir()
	for _, name := range []string{"mmappickle/dtypes.mmpkl", "portable/masked.mmpkl", "portable/bigendian.mmpkl", "mmappickle/unicode_keys.mmpkl", "portable/values.mmpkl"} {
		for _, compress := range []bool{false, true} {
			dst := filepath.Join(dir, "seed.npz")
			os.Remove(dst)
			if err := File(context.Background(), filepath.Join(corpus, name), dst, Mmpkl, Npz, Options{Compress: compress}); err != nil {
				f.Fatalf("%s: %v", name, err)
			}
			b, err := os.ReadFile(dst)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, compress) // the deflated ones with the mmappickle profile
		}
	}
}

// FuzzNpz: reading any archive into an mmappickle file never panics or
// hangs, never tears the file, and every key it commits holds the array of
// the member of that name, byte for byte (on success: the last member of
// that name). The second argument selects the mmappickle profile
// (Fortran-ordered members transposed). The reader writes into a plain
// bridge.Create'd file, not through convert.File's temporary file and
// fsync: the fuzzer runs this many times per second (writeAtomic is tested
// on its own, and under SIGKILL by cmd/mmpconv's TestCrashConvert).
func FuzzNpz(f *testing.F) {
	fuzzSeedNpz(f)
	f.Fuzz(func(t *testing.T, data []byte, mmappickle bool) {
		dir := fuzzDir(t)
		src, dst := filepath.Join(dir, "in.npz"), filepath.Join(dir, "out.mmpkl")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		opt := Options{SkipUnsupported: true}
		if mmappickle {
			opt.Profile = bridge.Mmappickle
		}
		out, err := bridge.Create(dst, bridge.WithProfile(opt.Profile))
		if err != nil {
			t.Fatal(err)
		}
		// The fuzzing engine gives an input 10 s.
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		err = npzToMmpkl(ctx, src, out, &opt, &progress{ctx: ctx})
		if ctx.Err() != nil {
			t.Fatalf("reading a %d-byte archive took more than 8 s", len(data))
		}
		if cerr := out.Close(); cerr != nil {
			t.Fatal(cerr)
		}
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if e.Name() != "in.npz" && e.Name() != "out.mmpkl" {
				t.Fatalf("reading the archive (error %v) left %s", err, e.Name())
			}
		}
		checkNpzConverted(t, data, dst, opt.Profile, err == nil)
	})
}

// checkNpzConverted compares the converted file with the archive's
// members: each key holds the data of a member of its name, the last one if
// the conversion completed.
func checkNpzConverted(t *testing.T, data []byte, dst string, p bridge.Profile, complete bool) {
	t.Helper()
	out, err := bridge.Open(dst)
	if err != nil {
		t.Fatalf("the file does not open after reading the archive: %v", err)
	}
	defer out.Close()
	keys, err := out.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		return
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		t.Fatalf("converted %d keys from an archive archive/zip refuses: %v", len(keys), err)
	}
	members := map[string][]*zip.File{}
	for _, m := range zr.File {
		members[m.Name] = append(members[m.Name], m)
	}
	check := func(k, name string, a *bridge.Array) {
		ms := members[name]
		if len(ms) == 0 {
			t.Fatalf("key %q: no member %q", k, name)
		}
		if a.NBytes > 16<<20 {
			return // checked by size only
		}
		if complete {
			ms = ms[len(ms)-1:]
		}
		var why string
		for _, m := range ms {
			if why = memberDiff(m, a, p); why == "" {
				break
			}
		}
		if why != "" {
			t.Fatalf("key %q: %s: %s", k, name, why)
		}
	}
	for _, k := range keys {
		if kind, _ := out.KindOf(k); kind == bridge.KindMasked {
			// KEY.npy and KEY.mask.npy (npz_masked.go).
			m, err := out.Masked(k)
			if err != nil {
				t.Fatalf("key %q: %v", k, err)
			}
			check(k, k+".npy", m.Data)
			check(k, k+".mask.npy", m.Mask)
			continue
		}
		a, err := out.Array(k)
		if err != nil {
			t.Fatalf("key %q: %v", k, err)
		}
		check(k, k+".npy", a)
	}
}

// memberDiff tells how the array a differs from the member m ("" if it
// does not). The member is read raw and inflated here, its CRC-32 checked
// against the central directory's, as numpy's zipfile does: archive/zip
// also checks a data descriptor, which zipfile and the converter's stored
// path ignore.
func memberDiff(m *zip.File, a *bridge.Array, p bridge.Profile) string {
	if m.Flags&0x20 != 0 {
		// numpy cannot load it either (zipfile: NotImplementedError).
		return "converted from a member of patched data (zip flag bit 5): the bytes are a patch, not the member"
	}
	raw, err := m.OpenRaw()
	if err != nil {
		return fmt.Sprintf("converted, but archive/zip cannot open the member: %v", err)
	}
	r := raw
	if m.Method == zip.Deflate {
		fr := flate.NewReader(raw)
		defer fr.Close()
		r = fr
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(min(m.UncompressedSize64, 1<<40))))
	if err != nil {
		return fmt.Sprintf("converted, but the member does not read: %v", err)
	}
	if crc32.ChecksumIEEE(b) != m.CRC32 || uint64(len(b)) != m.UncompressedSize64 {
		return fmt.Sprintf("converted from a member of %d bytes with CRC-32 %08x; the archive says %d bytes, %08x", len(b), crc32.ChecksumIEEE(b), m.UncompressedSize64, m.CRC32)
	}
	h, err := readNpyHeader(bytes.NewReader(b), int64(len(b)))
	if err != nil || h.DataOff+h.NBytes > int64(len(b)) {
		return fmt.Sprintf("converted from a member whose header says %v (%d bytes)", err, len(b))
	}
	want := b[h.DataOff : h.DataOff+h.NBytes]
	fortran := h.Fortran
	if p == bridge.Mmappickle && fortranFlag(h.Shape, h.Fortran) {
		want, fortran = fToC(want, h.Shape, h.DType.ItemSize), false
	}
	if a.DType != h.DType || !slices.Equal(a.Shape, h.Shape) || fortranFlag(a.Shape, a.Fortran) != fortranFlag(h.Shape, fortran) {
		return fmt.Sprintf("%s %v fortran=%v, the member says %s %v fortran=%v", a.DType, a.Shape, a.Fortran, h.DType, h.Shape, fortran)
	}
	if !bytes.Equal(a.Bytes(), want) {
		return "the data differ from the member's"
	}
	return ""
}

// fuzzDir is a new directory for one input's files, in memory (/dev/shm)
// where there is one: deleting files from a disk file system mounted with
// discard (as here) waits for the device, up to seconds per input. Its
// name carries the process id, so that directories left by killed fuzz
// workers are removed by the next run.
func fuzzDir(t *testing.T) string {
	fuzzDirsOnce.Do(removeStaleFuzzDirs)
	if d, err := os.MkdirTemp("/dev/shm", fmt.Sprintf("mmp-fuzz-%d-", os.Getpid())); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

var fuzzDirsOnce sync.Once

// removeStaleFuzzDirs removes the directories of processes that are gone.
func removeStaleFuzzDirs() {
	es, _ := os.ReadDir("/dev/shm")
	for _, e := range es {
		rest, ok := strings.CutPrefix(e.Name(), "mmp-fuzz-")
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if n, err := strconv.Atoi(pid); err == nil && syscall.Kill(n, 0) == syscall.ESRCH {
			os.RemoveAll(filepath.Join("/dev/shm", e.Name()))
		}
	}
}

// fToC transposes Fortran-ordered data to C order, element by element.
func fToC(b []byte, shape []int, size int) []byte {
	out := make([]byte, 0, len(b))
	idx := make([]int, len(shape))
	n := len(b) / max(size, 1)
	for range n {
		off, stride := 0, 1
		for d := range shape {
			off += idx[d] * stride
			stride *= shape[d]
		}
		out = append(out, b[off*size:(off+1)*size]...)
		for d := len(shape) - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out
}

// FuzzHDF5 converts mutated HDF5 files, each in a child process (the test
// binary, running TestHDF5FuzzChild).
//
// Why a child: libhdf5 does not survive malicious files, and a crash or an
// endless loop inside C takes the whole process with it, which no Go code
// can prevent. Debian's 1.10.8, on h5py files with a byte or two changed,
// dies of SIGSEGV in H5Aread (H5HG_read copying a global heap object whose
// length the file lies about: seed libhdf5-vlen-attr-global-heap-segv),
// loops forever in H5HG_read, and grows without bound in H5Dread on an
// inconsistent chunk layout (both found by this target; not kept as seeds,
// each would cost every test run the watchdog's 3 s). In process, such an
// input kills or wedges the fuzz worker and fails every fuzzing run for a
// bug that is not ours. So HDF5 input must be trusted by mmpconv and libmmp
// (as by h5py), and this target checks what is ours: the child converts
// with SkipUnsupported under a 64 MiB file-size limit (a few bytes can
// declare a dataset of terabytes, which the converter fills through the
// mapping: seed huge-unallocated-dataset), a 3 GiB address-space limit, a
// CPU-time limit and a 3 s watchdog, then opens the result and reads every
// key back. A Go panic, a Go-side fatal error, a failed check, a partial
// destination or a hang outside C fails the target; a signal that arrived
// during cgo execution, or a hang or memory exhaustion inside libhdf5, is
// libhdf5's and only logged. The child costs a process start per input
// (100-150 inputs/s on two cores) and gives the fuzzer no coverage of the
// child's Go code, a small part next to libhdf5's, uninstrumented anyway.
func FuzzHDF5(f *testing.F) {
	if !hdf5Available {
		f.Skip("built with -tags nohdf5")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := fuzzDir(t)
		if err := os.WriteFile(filepath.Join(dir, "in.h5"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		// The fuzzing engine gives an input 10 s; the child's watchdog
		// ends it after 3.
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHDF5FuzzChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MMP_FUZZ_HDF5_CHILD="+dir, "GOTRACEBACK=all")
		cmd.WaitDelay = time.Second
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		out, msg := stdout.String(), stderr.String()
		switch {
		case ctx.Err() != nil:
			t.Logf("the child was killed after 8 s (a busy machine?): %s", out)
			return
		case strings.Contains(out, "child: libhdf5 hangs"):
			t.Logf("libhdf5 hangs on this input (not ours)")
			return
		case err != nil && strings.Contains(msg, "signal arrived during cgo execution"):
			t.Logf("libhdf5 crashed on this input (not ours): %s", firstLine(msg))
			return
		case err != nil && strings.Contains(msg, "out of memory") && cgoHang(msg):
			t.Logf("libhdf5 took all the memory the child may have (not ours)")
			return
		case err != nil:
			t.Fatalf("child: %v\n%s%s", err, out, head(msg, 5000))
		case !strings.Contains(out, "child: converted") && !strings.Contains(out, "child: refused"):
			t.Fatalf("child did not run the conversion:\n%s%s", out, msg)
		}
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if e.Name() != "in.h5" && (strings.Contains(out, "child: refused") || e.Name() != "out.mmpkl") {
				t.Fatalf("conversion (%s) left %s", strings.TrimSpace(out), e.Name())
			}
		}
	})
}

// cgoHang tells from a goroutine dump (runtime.Stack) whether the
// conversion is inside a C call: its goroutine's innermost frame.
func cgoHang(dump string) bool {
	for _, g := range strings.Split(dump, "\n\n") {
		if lines := strings.Split(g, "\n"); len(lines) > 1 && strings.Contains(g, "convert.hdf5ToMmpkl") {
			return strings.Contains(lines[1], "._Cfunc_") || strings.HasPrefix(lines[1], "runtime.cgocall")
		}
	}
	return false
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// TestHDF5FuzzChild is not a test: it is FuzzHDF5's child, converting
// $MMP_FUZZ_HDF5_CHILD/in.h5. It reports on stdout and exits 0 (converted
// or refused), 3 (a failure of ours) or 4 (libhdf5 hangs).
func TestHDF5FuzzChild(t *testing.T) {
	dir := os.Getenv("MMP_FUZZ_HDF5_CHILD")
	if dir == "" {
		return
	}
	for _, l := range []struct {
		res       int
		cur, hard uint64
	}{
		{syscall.RLIMIT_FSIZE, 64 << 20, 64 << 20},
		{syscall.RLIMIT_AS, 3 << 30, 3 << 30},
		// The kernel kills a child whose parent died before it (the
		// fuzzing engine kills workers): SIGXCPU, ignored by Go, then
		// SIGKILL.
		{syscall.RLIMIT_CPU, 7, 8},
	} {
		if err := syscall.Setrlimit(l.res, &syscall.Rlimit{Cur: l.cur, Max: l.hard}); err != nil {
			fmt.Println("child: setrlimit:", err)
			os.Exit(3)
		}
	}
	// A watchdog: timers run while the conversion's thread is in C. Its
	// buffer is allocated now: by the time it runs, libhdf5 may have taken
	// all the memory the limit allows.
	buf := make([]byte, 1<<20)
	time.AfterFunc(3*time.Second, func() {
		dump := unsafe.String(&buf[0], runtime.Stack(buf, true))
		if cgoHang(dump) {
			fmt.Println("child: libhdf5 hangs")
			os.Exit(4)
		}
		fmt.Printf("child: the conversion hangs outside libhdf5:\n%s", dump)
		os.Exit(3)
	})
	dst := filepath.Join(dir, "out.mmpkl")
	if err := File(context.Background(), filepath.Join(dir, "in.h5"), dst, HDF5, Mmpkl, Options{SkipUnsupported: true}); err != nil {
		fmt.Println("child: refused:", err)
		os.Exit(0)
	}
	if err := readBack(dst); err != nil {
		fmt.Println("child: converted, but", err)
		os.Exit(3)
	}
	fmt.Println("child: converted")
	os.Exit(0)
}

// readBack opens a converted file and reads every key.
func readBack(name string) error {
	f, err := bridge.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	keys, err := f.Keys()
	if err != nil {
		return err
	}
	for _, k := range keys {
		v, err := f.Get(k)
		if err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		if a, ok := v.(*bridge.Array); ok {
			if int64(len(a.Bytes())) != a.NBytes {
				return fmt.Errorf("key %q: %d bytes mapped, %d claimed", k, len(a.Bytes()), a.NBytes)
			}
			var sum byte
			for _, b := range a.Bytes() {
				sum ^= b
			}
			_ = sum
		}
	}
	return nil
}
