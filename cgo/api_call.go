package main

// Call tokens: cancelling a libmmp call from another thread (mmp_call_token,
// mmp_use_token, mmp_cancel), or by a signal (mmp_signal_token). A binding
// that wants a call interruptible takes a token, makes it the calling
// thread's with mmp_use_token right before the call, and calls
// mmp_cancel(token) from another thread to stop it: the call then returns
// promptly with codeInterrupted, having changed nothing it would not have
// changed on any other error.
//
// The token reaches the work two ways. Work given a context (convert,
// verify, rendering) gets the call's context. Work on a handle's file
// (opened with bridge.WithInterrupt(threadStop)) asks threadStop, which
// finds the call by the thread it runs on: an exported function runs on
// the C thread that called it, locked to it, and so does the bridge work
// it does in its own goroutine.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"mmpbridge/bridge"
)

// errInterrupted: the call was cancelled (mmp_cancel, or SIGINT's byte in
// its signal socket).
var errInterrupted = errors.New("interrupted")

// callState is one token's call.
type callState struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	used   bool // a call started with it (a token serves one call)
	sigfd  int  // a socket of signal numbers to watch for SIGINT, or -1
}

// calls is the table of tokens issued and not yet retired (a token is
// retired when its call ends). Numbers start at 1 and are never reused.
var calls = struct {
	mu       sync.Mutex
	last     int64
	live     map[int64]*callState
	bySocket map[int]int64 // the last signal token of each socket
}{live: map[int64]*callState{}, bySocket: map[int]int64{}}

// newCallToken issues a token for one call.
func newCallToken() int64 { return newSignalToken(-1) }

// newSignalToken issues a token for one call that is also cancelled when
// the byte of SIGINT is in the socket sigfd (>= 0): the socket whose other
// end Python's signal module writes signal numbers to, for its main
// thread's call (mmp_signal_token).
//
// The calls of one socket are one thread's, one after the other: a token
// of the socket issued before and never used (its call failed before it
// reached libmmp) is retired.
func newSignalToken(sigfd int) int64 {
	ctx, cancel := context.WithCancelCause(context.Background())
	calls.mu.Lock()
	defer calls.mu.Unlock()
	calls.last++
	calls.live[calls.last] = &callState{ctx: ctx, cancel: cancel, sigfd: max(sigfd, -1)}
	if sigfd >= 0 {
		if prev, ok := calls.bySocket[sigfd]; ok {
			if st := calls.live[prev]; st != nil && !st.used {
				delete(calls.live, prev)
				st.cancel(nil)
			}
		}
		calls.bySocket[sigfd] = calls.last
	}
	return calls.last
}

// sigPoll is how often a call watching a signal socket looks at it.
const sigPoll = 2 * time.Millisecond

// watchSignals cancels the call of st once the byte of SIGINT is in its
// socket: at once if it is there already, else at the first look after
// it arrives (every sigPoll, on a timer: a call shorter than that costs
// one look). stop ends the watch.
func watchSignals(st *callState) (stop func()) {
	if sigintPending(st.sigfd) {
		st.cancel(errInterrupted)
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	mu.Lock()
	var t *time.Timer
	t = time.AfterFunc(sigPoll, func() {
		if sigintPending(st.sigfd) {
			st.cancel(errInterrupted)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(sigPoll)
		}
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// cancelCall cancels the call of tok: running, or not started yet (it then
// returns at once when it starts). A token whose call has ended is no
// error: the cancellation came too late to matter.
func cancelCall(tok int64) error {
	calls.mu.Lock()
	st, ok := calls.live[tok]
	last := calls.last
	calls.mu.Unlock()
	if !ok {
		if tok <= 0 || tok > last {
			return fmt.Errorf("call token %d: never issued: %w", tok, errInvalidArg)
		}
		return nil
	}
	st.cancel(errInterrupted)
	return nil
}

// beginCall claims tok for a call and returns its state.
func beginCall(tok int64) (*callState, error) {
	calls.mu.Lock()
	defer calls.mu.Unlock()
	st, ok := calls.live[tok]
	if !ok || st.used {
		return nil, fmt.Errorf("call token %d: never issued, or already used: %w", tok, errInvalidArg)
	}
	st.used = true
	return st, nil
}

// endCall retires tok.
func endCall(tok int64) {
	calls.mu.Lock()
	st := calls.live[tok]
	delete(calls.live, tok)
	calls.mu.Unlock()
	if st != nil {
		st.cancel(nil) // releases the context's resources
	}
}

// threadToken and setThreadToken read and set the calling thread's token
// (C thread-local storage, exports.go); without cgo there is none.
var (
	threadToken    = func() int64 { return 0 }
	setThreadToken = func(int64) {}
)

// threadStop is the interruption of the call running on the calling
// thread, if any: bridge.WithInterrupt's function for every file libmmp
// opens. It is called every few thousand opcodes; the token lookup costs
// about as much as one.
func threadStop() error {
	tok := threadToken()
	if tok == 0 {
		return nil
	}
	if onPoll != nil {
		onPoll()
	}
	calls.mu.Lock()
	st := calls.live[tok]
	calls.mu.Unlock()
	if st == nil || st.ctx.Err() == nil {
		return nil
	}
	return errInterrupted
}

// onPoll, when set (by tests, before any call), is called each time a
// call's work asks whether it is cancelled.
var onPoll func()

// ctxStop is bridge.WithInterrupt's function for work given the call's
// context ctx.
func ctxStop(ctx context.Context) func() error {
	if ctx.Done() == nil {
		return nil
	}
	return func() error {
		if onPoll != nil {
			onPoll()
		}
		if ctx.Err() != nil {
			return errInterrupted
		}
		return nil
	}
}

// stopReader reads r, asking threadStop before each read: the caller's
// bytes a put copies into the file (the bridge polls its own copies).
type stopReader struct{ r io.Reader }

func (s stopReader) Read(b []byte) (int, error) {
	if err := threadStop(); err != nil {
		return 0, err
	}
	return s.r.Read(b[:min(len(b), 1<<20)])
}

// interruptible is the option of every file libmmp opens: its long work
// stops when the call running it is cancelled.
var interruptible = bridge.WithInterrupt(threadStop)

// runCall runs fn under guard with the context of call token tok (0: no
// token, a context never done), tok being the calling thread's token for
// the duration.
func runCall(tok int64, fn func(ctx context.Context) error) error {
	if tok == 0 {
		return guard(func() error { return fn(context.Background()) })
	}
	st, err := beginCall(tok)
	if err != nil {
		return err
	}
	defer endCall(tok)
	if st.sigfd >= 0 {
		defer watchSignals(st)()
	}
	ctx := st.ctx
	// A call from C is locked to its thread already; a Go caller (the
	// tests) must be, for threadStop to find the token.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	setThreadToken(tok)
	defer setThreadToken(0)
	if ctx.Err() != nil {
		return errInterrupted // cancelled before it started
	}
	err = guard(func() error { return fn(ctx) })
	if err != nil && ctx.Err() != nil && !errors.Is(err, errInterrupted) && errors.Is(err, context.Canceled) {
		// Work given ctx reports context.Canceled: say why.
		err = fmt.Errorf("%w (%w)", errInterrupted, err)
	}
	return err
}
