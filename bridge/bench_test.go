package bridge

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// makeManyKeys writes a file of n small arrays (as the reference's
// 10,000-key measurement).
func makeManyKeys(b *testing.B, n int) string {
	b.Helper()
	name := filepath.Join(b.TempDir(), "many.mmpkl")
	f, err := Create(name)
	if err != nil {
		b.Fatal(err)
	}
	data := i64Bytes(1, 2, 3, 4)
	for i := range n {
		if err := f.PutArray(fmt.Sprintf("k%05d", i), i64Header(4), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return name
}

// BenchmarkOpen10000KeysReadOne opens a 10,000-key file and reads one array
// through a typed view. mmappickle 1.0.1 takes about 0.35 s for this beyond
// interpreter start.
func BenchmarkOpen10000KeysReadOne(b *testing.B) {
	name := makeManyKeys(b, 10000)
	b.ResetTimer()
	for b.Loop() {
		f, err := Open(name)
		if err != nil {
			b.Fatal(err)
		}
		a, err := f.Array("k05000")
		if err != nil {
			b.Fatal(err)
		}
		v, err := View[int64](a)
		if err != nil || v[3] != 4 {
			b.Fatal(v, err)
		}
		f.Close()
	}
}

// BenchmarkAppend10000SmallArrays appends 10,000 small arrays to a new file,
// each append a complete locked, crash-safe operation. mmappickle 1.0.1 took
// 802 s for this.
func BenchmarkAppend10000SmallArrays(b *testing.B) {
	dir := b.TempDir()
	data := i64Bytes(1, 2, 3, 4)
	i := 0
	for b.Loop() {
		i++
		name := filepath.Join(dir, fmt.Sprintf("a%d.mmpkl", i))
		f, err := Create(name)
		if err != nil {
			b.Fatal(err)
		}
		for k := range 10000 {
			if err := f.PutArray(fmt.Sprintf("k%05d", k), i64Header(4), bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
		os.Remove(name)
	}
}

// BenchmarkPutArray64MiB streams one 64 MiB array into a file.
func BenchmarkPutArray64MiB(b *testing.B) {
	const n = 8 << 20
	data := make([]byte, 8*n)
	dir := b.TempDir()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		name := filepath.Join(dir, "big.mmpkl")
		f, err := Create(name)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.PutArray("x", i64Header(n), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		f.Close()
		os.Remove(name)
	}
}

// BenchmarkViewSum64MiB maps a 64 MiB array and sums it through View.
func BenchmarkViewSum64MiB(b *testing.B) {
	const n = 8 << 20
	name := filepath.Join(b.TempDir(), "big.mmpkl")
	f, err := Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.PutArray("x", i64Header(n), bytes.NewReader(make([]byte, 8*n))); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.SetBytes(8 * n)
	for b.Loop() {
		f, err := Open(name)
		if err != nil {
			b.Fatal(err)
		}
		a, _ := f.Array("x")
		v, err := View[int64](a)
		if err != nil {
			b.Fatal(err)
		}
		var s int64
		for _, x := range v {
			s += x
		}
		if s != 0 {
			b.Fatal(s)
		}
		f.Close()
	}
}
