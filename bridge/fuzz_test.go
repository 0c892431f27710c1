package bridge

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"

	"mmpbridge/pyval"
)

// referenceFiles returns the reference files written by mmappickle 1.0.1.
func referenceFiles(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, dir := range []string{"mmappickle", "portable"} {
		names, err := filepath.Glob(filepath.Join("..", "compat", "testdata", dir, "*.mmpkl"))
		if err != nil {
			tb.Fatal(err)
		}
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				tb.Fatal(err)
			}
			out[dir+"/"+filepath.Base(name)] = b
		}
	}
	if len(out) == 0 {
		tb.Fatal("no reference files in ../compat/testdata")
	}
	return out
}

func FuzzReader(f *testing.F) {
	for _, b := range referenceFiles(f) {
		f.Add(b)
		if len(b) < 4096 {
			// Truncations: a torn tail, a cut inside the first entry.
			f.Add(b[:len(b)-1])
			f.Add(b[:len(b)/2])
			f.Add(b[:min(len(b), headerSize+20)])
			// Bit flips in the header, the first entry's frame length, a
			// key length and inside the values.
			for _, i := range []int{0, 12, 26, 34, len(b) / 3, len(b) / 2, 2 * len(b) / 3, len(b) - 12} {
				if i < len(b) {
					c := bytes.Clone(b)
					c[i] ^= 0x40
					f.Add(c)
				}
			}
		}
	}
	for _, c := range badInputs(f) {
		if len(c.data) < 1<<16 {
			f.Add(c.data)
		}
	}
	f.Add(testFile(testEntry("m", portableMaskedFill(">", false), true)))
	if v, err := hex.DecodeString(numpy2Masked); err == nil {
		f.Add(testFile(testEntry("m", v, true), testEntry("v", sharedLists(12), true)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		before := heapAllocs()
		checkReader(t, data)
		// Nothing sized by a length the file claims: what a read allocates
		// is bounded by the input (and the 1 MiB value limit).
		if got, limit := heapAllocs()-before, uint64(128<<20+256*len(data)); got > limit {
			t.Fatalf("reading a %d-byte file allocated %d bytes", len(data), got)
		}
	})
}

var fuzzLimits = Limits{MaxValueBytes: 1 << 20, MaxKeys: 10000}

// checkReader reads everything in data, both as a mapping and through a
// plain io.ReaderAt, and checks that the two agree and every result is
// consistent.
func checkReader(t *testing.T, data []byte) {
	r, err := newReaderBytes(data, WithLimits(fuzzLimits))
	r2, err2 := NewReader(bytes.NewReader(data), int64(len(data)), WithLimits(fuzzLimits))
	if (err == nil) != (err2 == nil) {
		t.Fatalf("mapped: %v; ReaderAt: %v", err, err2)
	}
	if err != nil {
		checkFormatError(t, "NewReaderBytes", err, int64(len(data)))
		if err.Error() != err2.Error() {
			t.Fatalf("mapped: %v; ReaderAt: %v", err, err2)
		}
		return
	}
	keys := r.Keys()
	if k2 := r2.Keys(); !equalStrings(keys, k2) {
		t.Fatalf("mapped keys %q, ReaderAt keys %q", keys, k2)
	}
	if len(keys) != r.Len() {
		t.Fatalf("Len %d, %d keys", r.Len(), len(keys))
	}
	for _, e := range r.Entries() {
		if e.Offset < headerSize || e.end() > int64(len(data))-terminatorSize || e.valueOff+e.valueLen > e.end() || e.valueLen < 1 {
			t.Fatalf("entry %+v outside the file of %d bytes", e, len(data))
		}
	}
	for _, k := range keys {
		a := checkKey(t, r, k, int64(len(data)), true)
		b := checkKey(t, r2, k, int64(len(data)), false)
		if a != b {
			t.Fatalf("key %q: mapped %s; ReaderAt %s", k, a, b)
		}
	}
}

// checkKey reads one key every way there is and returns a summary of what
// it found, to compare the mapped and unmapped readers.
func checkKey(t *testing.T, r *Reader, k string, size int64, mapped bool) string {
	kind, kerr := r.KindOf(k)
	v, err := r.Get(k)
	if err != nil {
		checkFormatError(t, "Get "+k, err, size)
		if kerr != nil && kerr.Error() != err.Error() {
			// KindOf only looks at arrays; when it fails, Get fails the same way.
			t.Fatalf("key %q: KindOf: %v; Get: %v", k, kerr, err)
		}
		return "error: " + err.Error()
	}
	if kerr != nil {
		t.Fatalf("key %q: KindOf: %v, but Get succeeds", k, kerr)
	}
	var sum string
	switch v := v.(type) {
	case *Array:
		if kind != KindArray {
			t.Fatalf("key %q: Get gives an array, KindOf %s", k, kind)
		}
		a, err := r.Array(k)
		if err != nil {
			t.Fatalf("key %q: Array: %v", k, err)
		}
		checkArrayValue(t, k, a, size, mapped)
		if _, err := r.Masked(k); !errors.Is(err, ErrNotArray) {
			t.Fatalf("key %q: Masked of an array: %v", k, err)
		}
		sum = arraySummary(a)
	case *Masked:
		if kind != KindMasked {
			t.Fatalf("key %q: Get gives a masked array, KindOf %s", k, kind)
		}
		m, err := r.Masked(k)
		if err != nil {
			t.Fatalf("key %q: Masked: %v", k, err)
		}
		if m.Mask.DType.Kind != 'b' || !equalInts(m.Data.Shape, m.Mask.Shape) {
			t.Fatalf("key %q: mask %s %v for data %v", k, m.Mask.DType, m.Mask.Shape, m.Data.Shape)
		}
		checkArrayValue(t, k, m.Data, size, mapped)
		checkArrayValue(t, k, m.Mask, size, mapped)
		if f, ok := m.Fill.(*Array); ok {
			checkArrayValue(t, k, f, size, mapped)
		}
		if _, err := r.Array(k); !errors.Is(err, ErrNotArray) {
			t.Fatalf("key %q: Array of a masked array: %v", k, err)
		}
		sum = "masked " + arraySummary(m.Data) + " " + arraySummary(m.Mask)
	default:
		if kind != KindValue {
			t.Fatalf("key %q: Get gives %T, KindOf %s", k, v, kind)
		}
		if _, err := r.Array(k); !errors.Is(err, ErrNotArray) {
			t.Fatalf("key %q: Array of a value: %v", k, err)
		}
		sum = fmt.Sprintf("value %T", v)
	}
	// The value's standalone pickle decodes to the same value.
	if p, err := r.Pickle(k); err == nil {
		ops, err := unframe(p)
		if err != nil {
			t.Fatalf("key %q: Pickle gives %x: %v", k, p, err)
		}
		if kind == KindValue && !holdsArray(v, 0) {
			v2, err := decodeValue(&source{data: ops, size: int64(len(ops))}, 0, int64(len(ops)), fuzzLimits)
			if err == nil && fmt.Sprintf("%#v", v2) != fmt.Sprintf("%#v", v) {
				t.Fatalf("key %q: from its Pickle %#v, from the file %#v", k, v2, v)
			}
		}
	} else if !errors.Is(err, ErrLimit) {
		t.Fatalf("key %q: Pickle: %v", k, err)
	}
	return sum
}

func arraySummary(a *Array) string {
	return fmt.Sprintf("%s %v %c %s @%d+%d", a.DType, a.Shape, a.Order(), a.Profile, a.Offset, a.NBytes)
}

// checkArrayValue checks an array's description against the file and reads
// its data every way there is.
func checkArrayValue(t *testing.T, k string, a *Array, size int64, mapped bool) {
	if err := a.DType.validate(); err != nil {
		t.Fatalf("key %q: array with invalid dtype %+v: %v", k, a.DType, err)
	}
	if back, err := ParseDType(a.DType.String()); err != nil || back != a.DType {
		t.Fatalf("key %q: dtype %+v does not round-trip through %q: %+v, %v", k, a.DType, a.DType.String(), back, err)
	}
	if len(a.Shape) > 64 {
		t.Fatalf("key %q: %d dimensions", k, len(a.Shape))
	}
	if a.Offset < headerSize || a.NBytes < 0 || a.Offset+a.NBytes > size {
		t.Fatalf("key %q: array data [%d, +%d) outside the file of %d bytes", k, a.Offset, a.NBytes, size)
	}
	if a.Size()*int64(a.DType.ItemSize) != a.NBytes {
		t.Fatalf("key %q: %d elements of %d bytes in %d bytes", k, a.Size(), a.DType.ItemSize, a.NBytes)
	}
	var cw countWriter
	if err := a.WriteC(&cw); err != nil {
		t.Fatalf("key %q: WriteC: %v", k, err)
	}
	if cw.n != a.NBytes {
		t.Fatalf("key %q: WriteC wrote %d bytes of %d", k, cw.n, a.NBytes)
	}
	if err := a.WriteC(io.Discard); err != nil {
		t.Fatalf("key %q: WriteC: %v", k, err)
	}
	if b := a.Bytes(); mapped && int64(len(b)) != a.NBytes {
		t.Fatalf("key %q: Bytes gives %d bytes of %d", k, len(b), a.NBytes)
	}
	n, err := viewLen(a)
	if err == nil && int64(n) != a.Size() {
		t.Fatalf("key %q: view of %d elements, Size %d", k, n, a.Size())
	}
	if err == nil && !mapped {
		t.Fatalf("key %q: a view of an unmapped array", k)
	}
}

// viewLen takes the typed view that fits the dtype and returns its length.
func viewLen(a *Array) (int, error) {
	d := a.DType
	switch {
	case d.Kind == 'b':
		v, err := View[uint8](a) // not View[bool]: the bytes need not be 0 or 1
		return len(v), err
	case d.Kind == 'i' && d.ItemSize == 1:
		v, err := View[int8](a)
		return len(v), err
	case d.Kind == 'u' && d.ItemSize == 1:
		v, err := View[uint8](a)
		return len(v), err
	case d.Kind == 'i' && d.ItemSize == 2:
		v, err := View[int16](a)
		return len(v), err
	case (d.Kind == 'u' || d.Kind == 'f') && d.ItemSize == 2:
		v, err := View[uint16](a)
		return len(v), err
	case d.Kind == 'i' && d.ItemSize == 4:
		v, err := View[int32](a)
		return len(v), err
	case d.Kind == 'u' && d.ItemSize == 4:
		v, err := View[uint32](a)
		return len(v), err
	case d.Kind == 'f' && d.ItemSize == 4:
		v, err := View[float32](a)
		return len(v), err
	case d.Kind == 'i' || d.Kind == 'M' || d.Kind == 'm':
		v, err := View[int64](a)
		return len(v), err
	case d.Kind == 'u' && d.ItemSize == 8:
		v, err := View[uint64](a)
		return len(v), err
	case d.Kind == 'f' && d.ItemSize == 8:
		v, err := View[float64](a)
		return len(v), err
	case d.Kind == 'c' && d.ItemSize == 8:
		v, err := View[complex64](a)
		return len(v), err
	case d.Kind == 'c' && d.ItemSize == 16:
		v, err := View[complex128](a)
		return len(v), err
	}
	// No Go type fits (S, U, V, float128, complex256): a view must fail.
	if _, err := View[uint8](a); err == nil {
		return 0, fmt.Errorf("viewed dtype %s as uint8", d)
	}
	return 0, errors.New("no view")
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// checkFormatError checks that an error reading untrusted bytes is a
// *FormatError naming an offset inside the file, and not a recovered panic.
func checkFormatError(t *testing.T, what string, err error, size int64) {
	t.Helper()
	if strings.Contains(err.Error(), "internal error") {
		t.Fatalf("%s: a panic was recovered: %v", what, err)
	}
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("%s: %v (%T) is not a *FormatError", what, err, err)
	}
	if fe.Offset < 0 || fe.Offset > size {
		t.Fatalf("%s: %v: offset %d outside the file of %d bytes", what, err, fe.Offset, size)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("offset %d", fe.Offset)) {
		t.Fatalf("%s: %q does not name offset %d", what, err, fe.Offset)
	}
}

func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzParseDType(f *testing.F) {
	for _, c := range dtypeCases {
		f.Add(c.in)
	}
	for _, c := range dtypeRejects {
		f.Add(c.in)
	}
	f.Add("<M8[99999999999999999999D]")
	f.Add("timedelta64[7as]")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDType(s)
		if err != nil {
			if !strings.Contains(err.Error(), "dtype") {
				t.Fatalf("ParseDType(%q): error %q does not name the dtype", s, err)
			}
			return
		}
		if err := d.validate(); err != nil {
			t.Fatalf("ParseDType(%q) = %+v, invalid: %v", s, d, err)
		}
		for _, form := range []string{d.String(), d.Name()} {
			back, err := ParseDType(form)
			if err != nil {
				t.Fatalf("ParseDType(%q) = %+v; its form %q does not parse: %v", s, d, form, err)
			}
			if back != d {
				t.Fatalf("ParseDType(%q) = %+v; its form %q parses to %+v", s, d, form, back)
			}
		}
		if d.ItemSize < 1 || d.alignment() < 1 || d.ItemSize%d.alignment() != 0 {
			t.Fatalf("ParseDType(%q) = %+v: item size %d, alignment %d", s, d, d.ItemSize, d.alignment())
		}
	})
}

// sharedLists is a value of a few hundred bytes that expands exponentially:
// L0 = [], Li = [L(i-1), L(i-1)], the whole a tuple (L0, ..., Ldepth).
func sharedLists(depth int) []byte {
	v := []byte{opMark, opEmptyList, opBinPut, 0}
	for i := 1; i <= depth; i++ {
		v = append(v, opEmptyList, opMark, opBinGet, byte(i-1), opBinGet, byte(i-1), opAppends, opBinPut, byte(i))
	}
	return append(v, opTuple)
}

// expanded counts the values of v as JSON or repr would write them, shared
// containers once per reference, stopping past limit.
func expanded(v any, limit int) int {
	n := 1
	var items []any
	switch v := v.(type) {
	case []any:
		items = v
	case pyval.Tuple:
		items = v
	case pyval.Set:
		items = v
	case pyval.FrozenSet:
		items = v
	case pyval.Dict:
		for _, it := range v {
			items = append(items, it.Key, it.Value)
		}
	}
	for _, x := range items {
		if n += expanded(x, limit-n); n > limit {
			break
		}
	}
	return n
}

// TestSharedContainersBounded: containers shared through the memo must not
// let a small value expand into more values than its size allows (with a
// floor), or DescribeJSON and every other consumer that walks the value
// allocate gigabytes: DescribeJSON takes about 100 bytes per value, 3 GB for
// the 221-byte value of depth 24, which expands to 2^25 lists. Get must
// refuse it with ErrLimit.
func TestSharedContainersBounded(t *testing.T) {
	for _, depth := range []int{10, 24, 40} {
		v := sharedLists(depth)
		r, err := newReaderBytes(testFile(testEntry("v", v, true)), WithLimits(fuzzLimits))
		if err != nil {
			t.Fatal(err)
		}
		x, err := r.Get("v")
		limit := max(len(v), 1<<20)
		if err != nil {
			if !errors.Is(err, ErrLimit) {
				t.Errorf("depth %d: %v, want ErrLimit", depth, err)
			}
			checkFormatError(t, "Get", err, r.Size())
			continue
		}
		if n := expanded(x, limit); n > limit {
			t.Errorf("depth %d: a %d-byte value expands to more than %d values (2^%d); "+
				"value.go must refuse it with ErrLimit", depth, len(v), limit, depth+1)
		}
	}
}
