package bridge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// progressLog records what a WithProgress callback was told, and cancels
// once done passes stopAt (when stopAt > 0).
type progressLog struct {
	calls         int
	starts        int // reports of done == 0
	done, total   int64
	stopAt        int64
	backwardsSeen bool
}

var errStop = errors.New("stopped by the test")

func (p *progressLog) fn(done, total int64) error {
	p.calls++
	if done == 0 {
		p.starts++
	} else if done < p.done {
		p.backwardsSeen = true
	}
	p.done, p.total = done, total
	if p.stopAt > 0 && done >= p.stopAt {
		return errStop
	}
	return nil
}

// progressSource writes a file with a 20 MiB C array "c", a 20 MiB Fortran
// array "f" and a masked array "m".
func progressSource(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.mmpkl")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f8 := mustDType(t, "<f8")
	data := make([]byte, 20<<20)
	for i := range data {
		data[i] = byte(i * 13)
	}
	if err := f.PutArray("c", ArrayHeader{DType: f8, Shape: []int{len(data) / 8}}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.PutArray("f", ArrayHeader{DType: f8, Shape: []int{1024, len(data) / 8 / 1024}, Fortran: true}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	mask := make([]byte, 1000)
	if err := f.PutMasked("m", ArrayHeader{DType: f8, Shape: []int{1000}}, bytes.NewReader(data[:8000]), bytes.NewReader(mask), nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPutProgress: Put of an *Array or *Masked from another file reports
// its copy from 0 to its total in both profiles (the mmappickle profile
// transposes "f" on the way), and the callback's error stops the copy,
// leaving the destination without the key and still sound.
func TestPutProgress(t *testing.T) {
	t.Parallel()
	src := progressSource(t)
	in, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for _, prof := range []Profile{Portable, Mmappickle} {
		for _, key := range []string{"c", "f", "m"} {
			v, err := in.Get(key)
			if err != nil {
				t.Fatal(err)
			}
			var want int64
			switch v := v.(type) {
			case *Array:
				want = v.NBytes
			case *Masked:
				want = v.Data.NBytes + v.Mask.NBytes
			}
			dst := filepath.Join(t.TempDir(), "dst.mmpkl")
			var log progressLog
			out, err := Create(dst, WithProfile(prof), WithProgress(log.fn))
			if err != nil {
				t.Fatal(err)
			}
			if err := out.Put(key, v); err != nil {
				t.Fatalf("%s %s: %v", prof, key, err)
			}
			if log.starts != 1 || log.done != want || log.total != want || log.backwardsSeen {
				t.Errorf("%s %s: %+v, want one start and an end at %d", prof, key, log, want)
			}
			if want > 1<<20 && log.calls < 3 {
				t.Errorf("%s %s: %d reports for %d bytes: progress does not move", prof, key, log.calls, want)
			}
			got, err := out.Get(key)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffArrays(t, v, got); d != "" {
				t.Errorf("%s %s: copied %s", prof, key, d)
			}

			// Cancelled half-way: the error comes back, the key is absent.
			log = progressLog{stopAt: want / 2}
			if want < 2 {
				continue
			}
			if err := out.Delete(key); err != nil {
				t.Fatal(err)
			}
			if err := out.Put(key, v); !errors.Is(err, errStop) {
				t.Errorf("%s %s: cancelled Put returned %v", prof, key, err)
			}
			if keys, _ := out.Keys(); len(keys) != 0 {
				t.Errorf("%s %s: keys %v after a cancelled Put", prof, key, keys)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
			rep, err := VerifyFile(dst, nil)
			if err != nil || !rep.OK() {
				t.Errorf("%s %s: after a cancelled Put: %+v %v", prof, key, rep, err)
			}
		}
	}
}

// diffArrays says how two arrays' elements differ ("" when the same in C
// order).
func diffArrays(t *testing.T, a, b any) string {
	t.Helper()
	c := func(v any) []byte {
		var buf bytes.Buffer
		arr, ok := v.(*Array)
		if m, isM := v.(*Masked); isM {
			arr = m.Data
			ok = true
			if err := m.Mask.WriteC(&buf); err != nil {
				t.Fatal(err)
			}
		}
		if !ok {
			t.Fatalf("%T is not an array", v)
		}
		if err := arr.WriteC(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	if !bytes.Equal(c(a), c(b)) {
		return "different elements"
	}
	return ""
}

// TestVacuumProgress: WithProgress sees Vacuum's copy go from 0 to its
// total; cancelled, Vacuum leaves the file byte for byte as it was.
func TestVacuumProgress(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v.mmpkl")
	var log progressLog
	f, err := Create(path, WithProgress(log.fn))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := ArrayHeader{DType: mustDType(t, "<f8"), Shape: []int{20 << 20 / 8}}
	for _, k := range []string{"a", "b", "c", "d"} {
		if err := f.PutArray(k, h, bytes.NewReader(make([]byte, 20<<20))); err != nil {
			t.Fatal(err)
		}
	}
	f.Delete("b")

	log.stopAt = 30 << 20
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Vacuum(); !errors.Is(err, errStop) {
		t.Fatalf("cancelled Vacuum returned %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("a cancelled Vacuum changed the file")
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("a cancelled Vacuum left %d files in the directory", len(ents))
	}

	log = progressLog{}
	if err := f.Vacuum(); err != nil {
		t.Fatal(err)
	}
	if log.starts != 1 || log.calls < 3 || log.done != log.total || log.total < 60<<20 {
		t.Errorf("progress: %+v", log)
	}
	if keys, _ := f.Keys(); len(keys) != 3 {
		t.Errorf("keys after vacuum: %v", keys)
	}
}
