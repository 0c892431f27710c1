package bridge

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"mmpbridge/pyval"
)

// stopper is a WithInterrupt function that counts its calls and returns
// errStop from call stopAt on (never when stopAt is 0).
type stopper struct{ calls, stopAt int }

func (s *stopper) stop() error {
	s.calls++
	if s.stopAt > 0 && s.calls >= s.stopAt {
		return errStop
	}
	return nil
}

// interruptSource writes a file whose value "big" is a list of n small
// ints (about n opcodes), with a deleted entry before it (vacuum's work)
// and a small value after it.
func interruptSource(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "long.mmpkl")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	p := []byte{0x80, 4, ']', '('}
	for i := range n {
		p = append(p, 'K', byte(i))
	}
	p = append(p, 'e', '.')
	for _, kv := range []struct {
		k string
		v any
	}{{"gone", int64(1)}, {"big", pyval.Object{Pickle: p}}, {"small", "s"}} {
		if err := f.Put(kv.k, kv.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestInterrupt: WithInterrupt's function is polled through the long work
// of reading (the analysis, decoding a value), Verify and Vacuum; the
// work ends at the first poll that returns an error, with that error,
// changing nothing, and the same call without interruption then gives
// what it gives on a File never interrupted.
func TestInterrupt(t *testing.T) {
	path := interruptSource(t, 300_000)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		writable bool
		work     func(f *File, opts ...Option) (any, error)
	}{
		{"analysis", false, func(f *File, _ ...Option) (any, error) { return f.KindOf("small") }},
		{"get", false, func(f *File, _ ...Option) (any, error) { return f.Get("big") }},
		{"plain", false, func(f *File, _ ...Option) (any, error) { return nil, f.Plain("big") }},
		{"verify", false, func(_ *File, opts ...Option) (any, error) {
			rep, err := VerifyFile(path, nil, opts...)
			if rep != nil {
				return rep.OK(), err
			}
			return nil, err
		}},
		{"vacuum", true, func(f *File, _ ...Option) (any, error) { return nil, f.Vacuum() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			open := func(s *stopper) *File {
				t.Helper()
				if err := os.WriteFile(path, orig, 0o644); err != nil {
					t.Fatal(err)
				}
				flag := os.O_RDONLY
				if c.writable {
					flag = os.O_RDWR
				}
				f, err := OpenFile(path, flag, 0, WithInterrupt(s.stop))
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			full := &stopper{}
			f := open(full)
			want, err := c.work(f, WithInterrupt(full.stop))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if full.calls < 20 {
				t.Fatalf("%d polls in the whole work: too little to interrupt", full.calls)
			}
			s := &stopper{stopAt: 5}
			f = open(s)
			defer f.Close()
			if _, err := c.work(f, WithInterrupt(s.stop)); !errors.Is(err, errStop) {
				t.Fatalf("interrupted: %v, want errStop", err)
			}
			// Vacuum ignores an error of the analysis (it then writes no
			// alignment padding): the interruption stops it at its next
			// progress report, before anything is committed.
			if extra := s.calls - 5; extra > 0 && !(c.name == "vacuum" && extra == 1) {
				t.Errorf("went on for %d polls after the one that stopped it (%d in the whole work)", extra, full.calls)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, orig) {
				t.Error("the interrupted work changed the file")
			}
			s.stopAt = 0
			got, err := c.work(f, WithInterrupt(s.stop))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("after the interruption: %.100v, %v; want %.100v", got, err, want)
			}
		})
	}
}

// TestWithContext: OpenReader's context, once done, stops the Reader's
// work (the analysis), with its error.
func TestWithContext(t *testing.T) {
	path := interruptSource(t, 100_000)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Opening reads only the index; the first read analyses the entries.
	r, c, err := OpenReader(ctx, path)
	if err == nil {
		_, err = r.KindOf("big")
		c.Close()
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("reading with a cancelled context: %v", err)
	}
	r, c, err = OpenReader(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if k, err := r.KindOf("big"); err != nil || k != KindValue {
		t.Errorf("KindOf: %v, %v", k, err)
	}
}
