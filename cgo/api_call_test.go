//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// bigListPickle is the pickle of a pair of one list of n small ints: about
// n opcodes for the machine, a legitimate value that simply takes long.
func bigListPickle(n int) []byte {
	p := []byte{0x80, 4, ']', 0x94, '('}
	for i := range n {
		p = append(p, 'K', byte(i))
	}
	// The list again, through the memo.
	return append(p, 'e', 'h', 0, 0x86, '.')
}

// longFile writes a file holding key "big" (a list of n ints), "small" (a
// short list) and "arr" (an array of arrBytes bytes, reserved: a hole),
// and a deleted entry, so that vacuum has work.
func longFile(t *testing.T, n int, arrBytes int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "long.mmpkl")
	h, err := openEx(path, -1, openWritable|openCreate, "")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFile(h)
	for _, kv := range []struct {
		k string
		p []byte
	}{{"gone", bigListPickle(10)}, {"big", bigListPickle(n)}, {"small", bigListPickle(3)}} {
		if err := putPickle(h, kv.k, kv.p); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := reserve(h, "arr", `{"dtype":"|u1","shape":[`+itoa(arrBytes)+`]}`, true); err != nil {
		t.Fatal(err)
	}
	if err := deleteKeys(h, `["gone"]`); err != nil {
		t.Fatal(err)
	}
	return path
}

func itoa(n int64) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int64) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// pollHook is what the tests install as onPoll and convertProgress.
var pollHook struct {
	mu sync.Mutex
	fn func()
}

func init() {
	onPoll = func() {
		pollHook.mu.Lock()
		fn := pollHook.fn
		pollHook.mu.Unlock()
		if fn != nil {
			fn()
		}
	}
	convertProgress = func(done, total int64) {
		if done > 0 {
			onPoll()
		}
	}
}

// runCounted runs fn as a call with a token of its own and returns its
// error and the number of times its work polled for cancellation. With
// cancelAt > 0, another goroutine cancels the token when the work polls
// for the cancelAt-th time, the work waiting there until it has.
func runCounted(t *testing.T, cancelAt int64, fn func(ctx context.Context) error) (error, int64) {
	t.Helper()
	tok := newCallToken()
	var polls atomic.Int64
	reached, cancelled, finished := make(chan struct{}), make(chan struct{}), make(chan struct{})
	pollHook.mu.Lock()
	pollHook.fn = func() {
		if polls.Add(1) == cancelAt {
			close(reached)
			<-cancelled
		}
	}
	pollHook.mu.Unlock()
	defer func() {
		pollHook.mu.Lock()
		pollHook.fn = nil
		pollHook.mu.Unlock()
	}()
	go func() {
		select {
		case <-reached:
			if err := cancelCall(tok); err != nil {
				t.Error(err)
			}
			close(cancelled)
		case <-finished:
		}
	}()
	err := runCall(tok, fn)
	close(finished)
	return err, polls.Load()
}

var bigData = make([]byte, 64<<20)

// TestCancelStopsWork: each kind of long work a call does stops at the
// first poll after its token is cancelled from another goroutine, returns
// the interrupted error, and leaves the file and handle as they were: the
// same call afterwards gives what an uninterrupted one gives.
func TestCancelStopsWork(t *testing.T) {
	n := 200_000
	path := longFile(t, n, 100<<20)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fresh := func(t *testing.T) int64 {
		h, err := openEx(path, -1, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeFile(h) })
		return h
	}
	writable := func(t *testing.T) int64 {
		h, err := openEx(path, -1, openWritable, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeFile(h) })
		return h
	}
	cases := []struct {
		name string
		open func(*testing.T) int64
		work func(ctx context.Context, h int64) ([]byte, error)
	}{
		// The first read of a handle analyses every entry.
		{"entry_info (analysis)", fresh, func(_ context.Context, h int64) ([]byte, error) { return entryInfo(h, "small") }},
		{"value_pickle (analysis, then the value)", fresh, func(_ context.Context, h int64) ([]byte, error) { return valuePickle(h, "big", false) }},
		{"entry_json", fresh, func(ctx context.Context, h int64) ([]byte, error) { return entryJSONCtx(ctx, h, "big") }},
		{"verify", fresh, func(ctx context.Context, _ int64) ([]byte, error) { return verifyFileCtx(ctx, path, "") }},
		{"vacuum", writable, func(_ context.Context, h int64) ([]byte, error) { return nil, vacuum(h) }},
		{"put_array", writable, func(_ context.Context, h int64) ([]byte, error) {
			return nil, putArray(h, "new", `{"dtype":"|u1","shape":[`+itoa(int64(len(bigData)))+`]}`, bigData)
		}},
		{"convert", fresh, func(ctx context.Context, _ int64) ([]byte, error) {
			dst := filepath.Join(dir, "out.npz")
			os.Remove(dst)
			_, err := convertFileCtx(ctx, path, dst, `{"key":"arr","compress":true}`)
			return nil, err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			// Uninterrupted: what the call gives, and how often it polls.
			var want []byte
			h := c.open(t)
			err, full := runCounted(t, 0, func(ctx context.Context) (err error) {
				want, err = c.work(ctx, h)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "vacuum" || c.name == "put_array" {
				// Vacuumed: the deleted entry is gone; start again from the
				// original file for the interrupted run.
				closeFile(h)
				if err := os.WriteFile(path, orig, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			const at = 3
			if full <= 4*at {
				t.Fatalf("the uninterrupted call polled %d times: too little work to interrupt", full)
			}
			h = c.open(t)
			err, polls := runCounted(t, at, func(ctx context.Context) error {
				_, err := c.work(ctx, h)
				return err
			})
			if errCode(err) != codeInterrupted {
				t.Fatalf("cancelled call: error %v (code %d), want code %d", err, errCode(err), codeInterrupted)
			}
			// It stopped at the first poll after the cancellation (or the
			// one after, for a poll in flight in another goroutine).
			if polls > at+2 {
				t.Errorf("cancelled at poll %d, stopped after %d polls (an uninterrupted call polls %d times)", at, polls, full)
			}
			t.Logf("uninterrupted: %d polls; cancelled at poll %d: stopped after %d; %v", full, at, polls, err)
			if got, _ := os.ReadFile(path); !bytes.Equal(got, orig) {
				t.Error("the interrupted call changed the file")
			}
			if c.name == "convert" {
				if _, err := os.Stat(filepath.Join(dir, "out.npz")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("an interrupted convert left its output: %v", err)
				}
			}
			// The same handle, uninterrupted, gives what a fresh one gave.
			err, _ = runCounted(t, 0, func(ctx context.Context) error {
				got, err := c.work(ctx, h)
				if err == nil && !bytes.Equal(got, want) {
					t.Errorf("after an interruption: %.200q, want %.200q", got, want)
				}
				return err
			})
			if err != nil {
				t.Fatalf("after an interruption: %v", err)
			}
		})
	}
}

// TestCallTokens: the life of a token.
func TestCallTokens(t *testing.T) {
	ran := 0
	work := func(context.Context) error { ran++; return nil }

	// Cancelled before its call starts: the call does nothing.
	tok := newCallToken()
	if err := cancelCall(tok); err != nil {
		t.Fatal(err)
	}
	if err := runCall(tok, work); errCode(err) != codeInterrupted || ran != 0 {
		t.Errorf("call with a token cancelled before it: %v, ran %d times", err, ran)
	}
	// A token serves one call.
	tok = newCallToken()
	if err := runCall(tok, work); err != nil || ran != 1 {
		t.Fatalf("%v, ran %d", err, ran)
	}
	if err := runCall(tok, work); errCode(err) != codeInvalid || ran != 1 {
		t.Errorf("token used twice: %v (code %d), ran %d", err, errCode(err), ran)
	}
	// Cancelling after the call ended is harmless; a token never issued is
	// an error.
	if err := cancelCall(tok); err != nil {
		t.Errorf("cancel after the call: %v", err)
	}
	for _, bad := range []int64{0, -1, tok + 1000} {
		if err := cancelCall(bad); errCode(err) != codeInvalid {
			t.Errorf("cancel of token %d: %v", bad, err)
		}
	}
	// A call without a token is never interrupted, and leaves no token on
	// the thread for the next one.
	if err := runCall(0, func(context.Context) error { return threadStop() }); err != nil {
		t.Error(err)
	}
	// Tokens are retired with their call: the table does not grow.
	calls.mu.Lock()
	live := len(calls.live)
	calls.mu.Unlock()
	for range 100 {
		runCall(newCallToken(), work)
	}
	calls.mu.Lock()
	defer calls.mu.Unlock()
	if len(calls.live) > live {
		t.Errorf("%d tokens live after 100 calls, %d before", len(calls.live), live)
	}
}

// TestSignalToken: a call under mmp_signal_token(fd) is cancelled by the
// byte of SIGINT in the socket fd (Python's signal.set_wakeup_fd writes the
// numbers of the signals it takes there), whether it was there before the
// call or arrives during it, and not by another signal's byte; the bytes
// stay for the binding to read.
func TestSignalToken(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skip(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	send := func(b byte) {
		if _, err := syscall.Write(fds[1], []byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	drain := func() []byte {
		var buf [64]byte
		n, _, _ := syscall.Recvfrom(fds[0], buf[:], syscall.MSG_DONTWAIT)
		return buf[:max(n, 0)]
	}
	path := longFile(t, 200_000, 1)
	analyse := func(ctx context.Context) error {
		h, err := openEx(path, -1, 0, "")
		if err != nil {
			return err
		}
		defer closeFile(h)
		_, err = entryInfo(h, "small")
		return err
	}

	// Another signal (SIGTERM, 15) does not interrupt the call.
	send(15)
	if err := runCall(newSignalToken(fds[0]), analyse); err != nil {
		t.Fatalf("with SIGTERM's byte: %v", err)
	}
	if got := drain(); !bytes.Equal(got, []byte{15}) {
		t.Errorf("socket holds %v after the call, want [15]", got)
	}
	// SIGINT before the call: it does nothing.
	send(2)
	ran := false
	if err := runCall(newSignalToken(fds[0]), func(context.Context) error { ran = true; return nil }); errCode(err) != codeInterrupted || ran {
		t.Errorf("SIGINT before the call: %v, ran %v", err, ran)
	}
	drain()
	// SIGINT during the call: the work stops at its first poll after the
	// watch saw it.
	tok := newSignalToken(fds[0])
	calls.mu.Lock()
	ctx := calls.live[tok].ctx
	calls.mu.Unlock()
	var polls atomic.Int64
	pollHook.mu.Lock()
	pollHook.fn = func() {
		if polls.Add(1) == 3 {
			send(2)
			<-ctx.Done() // the watch looks every sigPoll
		}
	}
	pollHook.mu.Unlock()
	err = runCall(tok, analyse)
	pollHook.mu.Lock()
	pollHook.fn = nil
	pollHook.mu.Unlock()
	if errCode(err) != codeInterrupted || polls.Load() > 4 {
		t.Errorf("SIGINT during the call: %v after %d polls", err, polls.Load())
	}
	if got := drain(); !bytes.Equal(got, []byte{2}) {
		t.Errorf("socket holds %v after the call, want [2]", got)
	}
}

// TestSignalTokensUnused: a signal token never used (the binding's call
// failed before reaching libmmp) is retired when the next one of its
// socket is issued: the table does not grow.
func TestSignalTokensUnused(t *testing.T) {
	calls.mu.Lock()
	live := len(calls.live)
	calls.mu.Unlock()
	for range 100 {
		newSignalToken(12345)
	}
	tok := newSignalToken(12345)
	calls.mu.Lock()
	n := len(calls.live)
	calls.mu.Unlock()
	if n > live+1 {
		t.Errorf("%d tokens live after 101 unused ones, %d before", n, live)
	}
	if err := runCall(tok, func(context.Context) error { return nil }); err != nil {
		t.Errorf("the last token: %v", err)
	}
}
