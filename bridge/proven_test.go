package bridge

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// flipReaderAt serves a file whose value bytes [off, off+n) are first
// plain, then (after `after` reads touching them) other bytes: a writer
// rewriting a shared file, or a server answering a Range request anew.
type flipReaderAt struct {
	mu      sync.Mutex
	first   []byte // the file as the first reads see it
	then    []byte // the file after the flip (same size)
	off, n  int64
	touched int // reads that touched the value
	after   int // reads touching the value before the flip; <0: never flip
}

func (f *flipReaderAt) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	src := f.first
	if off < f.off+f.n && off+int64(len(p)) > f.off {
		if f.after >= 0 && f.touched >= f.after {
			src = f.then
		}
		f.touched++
	}
	return bytesReaderAt(src).ReadAt(p, off)
}

// proofValues are pairs of same-length values: a plain one, and hostile
// ones that import or build something outside plain data. Their "code"
// is harmless (touch of a marker) should anything ever run it.
func proofValues() (plain []byte, hostile map[string][]byte) {
	sg := func(module, name string) []byte { return pkl(module, name, opStackGlobal) }
	touch := pkl(sg("os", "system"), "touch /nonexistent/proof-marker", opTuple1, opReduce)
	// numpy.dtype('O', False, True) with BUILD dropping the pointer flags,
	// then numpy.core.multiarray.scalar(that dtype, 8 bytes): allowed names
	// only, and a crash (or worse) in numpy.
	objDtype := pkl(sg("numpy", "dtype"), "O", opNewFalse, opNewTrue, opTuple3, opReduce,
		opMark, opBinInt1, 3, "|", opNone, opNone, opNone, opBinInt, le32(-1), opBinInt, le32(-1), opBinInt1, 0, opTuple, opBuild)
	scalar := pkl(sg("numpy.core.multiarray", "scalar"), objDtype, opShortBinBytes, 8, bytes.Repeat([]byte{0x41}, 8), opTuple2, opReduce)
	scalar2 := pkl(sg("numpy._core.multiarray", "scalar"), objDtype, opShortBinBytes, 8, bytes.Repeat([]byte{0x10}, 8), opTuple2, opReduce)
	evalStr := pkl(sg("builtins", "eval"), "__import__('os').system('true')", opTuple1, opReduce)
	const n = 600
	pad := func(v []byte) []byte {
		// v, then a BINUNICODE filler and POP, to n bytes.
		fill := n - len(v) - 1 - 4 - 1
		if fill < 0 {
			panic("proofValues: value too long")
		}
		return pkl(v, opBinUnicode, le32(int32(fill)), bytes.Repeat([]byte{'p'}, fill), opPop)
	}
	plain = pkl(opBinUnicode, le32(n-5), bytes.Repeat([]byte{'a'}, n-5))
	hostile = map[string][]byte{
		"os.system":          pad(touch),
		"numpy object dtype": pad(scalar),
		"numpy 2 scalar":     pad(scalar2),
		"builtins.eval":      pad(evalStr),
	}
	return plain, hostile
}

// proofFile returns a file with entries "a" (benign) and "k" holding
// value, and k's value offset.
func proofFile(t *testing.T, value []byte) ([]byte, int64) {
	t.Helper()
	file := testFile(benign, testEntryMemo("k", value, true, 0))
	r, err := NewReader(bytesReaderAt(file), int64(len(file)))
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	e, err := r.Entry("k")
	if err != nil {
		t.Fatal(err)
	}
	if e.valueLen != int64(len(value)) {
		t.Fatalf("value of %d bytes, want %d", e.valueLen, len(value))
	}
	return file, e.valueOff
}

// TestPlainPickleReadsOnce: PlainPickle hands out exactly the bytes it
// proved, read once, whatever the file answers to a second read.
func TestPlainPickleReadsOnce(t *testing.T) {
	t.Parallel()
	plain, hostile := proofValues()
	plainFile, off := proofFile(t, plain)
	want, err := NewReader(bytesReaderAt(plainFile), int64(len(plainFile)))
	if err != nil {
		t.Fatal(err)
	}
	wantPickle, err := want.Pickle("k")
	if err != nil {
		t.Fatal(err)
	}
	if err := want.Plain("k"); err != nil {
		t.Fatalf("the plain value is refused: %v", err)
	}
	for name, h := range hostile {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			hostileFile, hoff := proofFile(t, h)
			if hoff != off || len(hostileFile) != len(plainFile) {
				t.Fatalf("hostile file differs in layout")
			}
			hr, err := NewReader(bytesReaderAt(hostileFile), int64(len(hostileFile)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := hr.PlainPickle("k"); !errors.Is(err, ErrNotPlain) {
				t.Fatalf("hostile value alone: PlainPickle = %v, want ErrNotPlain", err)
			}

			// Plain first, hostile from the next read on.
			f := &flipReaderAt{first: plainFile, then: hostileFile, off: off, n: int64(len(plain)), after: -1}
			r, err := NewReader(f, int64(len(plainFile)))
			if err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			f.touched, f.after = 0, 1
			f.mu.Unlock()
			got, err := r.PlainPickle("k")
			if err != nil {
				t.Fatalf("PlainPickle: %v", err)
			}
			if !bytes.Equal(got, wantPickle) {
				t.Fatalf("PlainPickle handed out other bytes than it proved:\n got %q\nwant %q", got, wantPickle)
			}
			if f.touched != 1 {
				t.Errorf("PlainPickle read the value %d times, want 1", f.touched)
			}
			// The File-level wrapper's twin: a second call reads anew,
			// sees the hostile bytes and refuses them.
			if p, err := r.PlainPickle("k"); !errors.Is(err, ErrNotPlain) {
				t.Fatalf("after the flip: PlainPickle = %q, %v; want ErrNotPlain", p, err)
			}

			// The old pair, for contrast: Plain proves one read and
			// Pickle hands out another (this is what PlainPickle fixes).
			f.mu.Lock()
			f.touched, f.after = 0, -1
			f.mu.Unlock()
			if err := r.Plain("k"); err != nil {
				t.Fatalf("Plain of the first read: %v", err)
			}
			f.mu.Lock()
			f.after = f.touched // the bytes change now
			f.mu.Unlock()
			if p, err := r.Pickle("k"); err != nil || bytes.Equal(p, wantPickle) {
				t.Fatalf("the flip did not reach Pickle (the test proves nothing): %v", err)
			}

			// Hostile first, plain afterwards: refused, never handed out.
			f2 := &flipReaderAt{first: plainFile, then: hostileFile, off: off, n: int64(len(plain)), after: -1}
			r2, err := NewReader(f2, int64(len(plainFile)))
			if err != nil {
				t.Fatal(err)
			}
			f2.mu.Lock()
			f2.first, f2.then, f2.touched, f2.after = hostileFile, plainFile, 0, 1
			f2.mu.Unlock()
			if p, err := r2.PlainPickle("k"); !errors.Is(err, ErrNotPlain) {
				t.Fatalf("hostile first read: PlainPickle = %q, %v; want ErrNotPlain", p, err)
			}
			if f2.touched != 1 {
				t.Errorf("PlainPickle read the value %d times, want 1", f2.touched)
			}
		})
	}
}

// TestPlainPickleAlternating reads a value whose bytes alternate between
// plain and hostile at every read: every result is the plain pickle or
// an ErrNotPlain refusal, never anything else.
func TestPlainPickleAlternating(t *testing.T) {
	t.Parallel()
	plain, hostile := proofValues()
	plainFile, off := proofFile(t, plain)
	wr, _ := NewReader(bytesReaderAt(plainFile), int64(len(plainFile)))
	wantPickle, err := wr.Pickle("k")
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range hostile {
		hostileFile, _ := proofFile(t, h)
		alt := &altReaderAt{files: [2][]byte{plainFile, hostileFile}, off: off, n: int64(len(plain))}
		r, err := NewReader(bytesReaderAt(plainFile), int64(len(plainFile)))
		if err != nil {
			t.Fatal(err)
		}
		r.src = newSource(alt, int64(len(plainFile)))
		var ok, refused int
		for range 50 {
			p, err := r.PlainPickle("k")
			switch {
			case err == nil && bytes.Equal(p, wantPickle):
				ok++
			case errors.Is(err, ErrNotPlain):
				refused++
			default:
				t.Fatalf("%s: PlainPickle = %q, %v", name, p, err)
			}
		}
		if ok == 0 || refused == 0 {
			t.Errorf("%s: %d plain, %d refused: the alternation did not reach both", name, ok, refused)
		}
	}
}

// altReaderAt switches the value's bytes at every read touching them.
type altReaderAt struct {
	mu     sync.Mutex
	files  [2][]byte
	off, n int64
	i      int
}

func (a *altReaderAt) ReadAt(p []byte, off int64) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	src := a.files[a.i%2]
	if off < a.off+a.n && off+int64(len(p)) > a.off {
		a.i++
	}
	return bytesReaderAt(src).ReadAt(p, off)
}

// TestValueWindow: the proof's source serves the value and nothing else.
func TestValueWindow(t *testing.T) {
	t.Parallel()
	w := &valueWindow{off: 100, b: []byte("abcdef")}
	tests := []struct {
		off  int64
		n    int
		want string
		err  bool
	}{
		{100, 6, "abcdef", false},
		{102, 2, "cd", false},
		{106, 0, "", false},
		{99, 1, "", true},
		{105, 2, "", true},
		{107, 0, "", true},
		{-1 << 62, 1, "", true},
	}
	for _, tc := range tests {
		p := make([]byte, tc.n)
		n, err := w.ReadAt(p, tc.off)
		if (err != nil) != tc.err || (!tc.err && (n != tc.n || string(p) != tc.want)) {
			t.Errorf("ReadAt(%d bytes at %d) = %d %q, %v", tc.n, tc.off, n, p[:n], err)
		}
		if tc.err && !errors.Is(err, errOutsideValue) {
			t.Errorf("ReadAt(%d bytes at %d): %v, want errOutsideValue", tc.n, tc.off, err)
		}
	}
}
