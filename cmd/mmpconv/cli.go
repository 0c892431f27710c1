package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/convert"
	"mmpbridge/internal/version"
)

// Exit codes.
const (
	exitOK          = 0
	exitInput       = 1
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT; 128 + the signal for another one
)

// interrupted is the cause of a context cancelled by a signal.
type interrupted struct{ sig syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + i.sig.String() }

// stdin is what commands read as standard input (put --json -).
var stdin io.Reader = os.Stdin

// examplesLast moves the examples of cobra's usage template to its end, so
// that every --help ends with them.
func examplesLast(t string) string {
	const ex = "{{if .HasExample}}\n\nExamples:\n{{.Example}}{{end}}"
	if !strings.Contains(t, ex) {
		return t
	}
	return strings.TrimRight(strings.Replace(t, ex, "", 1), "\n") + ex + "\n"
}

// versionText is what --version prints: the version and the profiles
// mmpconv writes.
func versionText() string {
	return "mmpconv " + version.Version + `
writes mmappickle files in two profiles (--profile):
  portable    numpy's own array pickles: plain pickle.load on numpy 1.x and 2.x (the default)
  mmappickle  mmappickle 1.0.1's encoding: mmappickle maps the arrays (plain pickle.load fails on numpy >= 2.3)
`
}

// exitStatus is a command's result that is not an error to print: diff's
// "the files differ" (1).
type exitStatus int

func (s exitStatus) Error() string { return "exit status " + strconv.Itoa(int(s)) }

// usageError marks a command-line mistake (exit 2).
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// env is what commands write to.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// Main runs mmpconv with args and returns the exit code. It is main without
// the process: tests call it directly. When ctx is cancelled (Ctrl-C), a
// read-only command is abandoned at once, a writing one is waited for (it
// stops soon and cleans up); Main then says "mmpconv: interrupted" and
// returns 130 (128 + the signal when the cause is an interrupted).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	out := &outWriter{w: bufio.NewWriterSize(stdout, 64<<10)}
	defer out.close()
	e := &env{ctx: ctx, stdin: stdin, stdout: out, stderr: stderr}
	root := &cobra.Command{
		Use:   "mmpconv",
		Short: "Read, inspect, compare and convert mmappickle files",
		Long: `mmpconv reads, edits, verifies, compares and converts mmappickle files: one
file that is both a valid Python pickle of a dict and a file whose arrays can be
memory-mapped. It converts between mmappickle (.mmpkl/.pkl), .npy, .npz and
HDF5 (.h5/.hdf5), in any direction.`,
		Example: `  mmpconv convert data.npz data.mmpkl
  mmpconv ls data.mmpkl
  mmpconv diff data.npz data.mmpkl`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Bare mmpconv: what it can do, and a usage exit.
			cmd.SetOut(stderr)
			cmd.Usage()
			return exitStatus(exitUsage)
		},
	}
	root.SetVersionTemplate(versionText())
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetUsageTemplate(examplesLast(root.UsageTemplate()))
	root.SetOut(stdout)
	root.SetErr(stderr)
	if args == nil {
		args = []string{} // nil makes cobra read os.Args
	}
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(lsCmd(e), inspectCmd(e), convertCmd(e), getCmd(e), putCmd(e), rmCmd(e), vacuumCmd(e), fsckCmd(e), verifyCmd(e), serveCmd(e), diffCmd(e), salvageCmd(e))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var err error
	abandoned := false
	select {
	case err = <-done:
	case <-ctx.Done():
		if readOnly(args) {
			abandoned = true
		} else {
			err = <-done // it stops soon, and cleans up
		}
	}
	// A writing command that finished before it saw the signal did its
	// work: that is success, not an interruption.
	if ctx.Err() != nil && (abandoned || err != nil) {
		out.close()
		fmt.Fprintln(stderr, "mmpconv: interrupted")
		var i interrupted
		if errors.As(context.Cause(ctx), &i) {
			return 128 + int(i.sig)
		}
		return exitInterrupted
	}
	if err := out.close(); err != nil && !errors.Is(err, syscall.EPIPE) {
		fmt.Fprintf(stderr, "mmpconv: writing the output: %v\n", err)
		return exitInput
	}
	if err == nil {
		return exitOK
	}
	var status exitStatus
	if errors.As(err, &status) {
		return int(status)
	}
	var ue usageError
	var ce *convert.UsageError
	var unsupported *convert.UnsupportedError
	if errors.As(err, &unsupported) {
		// The one flag that gets past it, said where it applies.
		hint := ""
		if len(args) > 0 && args[0] == "convert" && !slices.Contains(args, "--skip-unsupported") {
			hint = " (--skip-unsupported converts the rest and lists what it skips)"
		}
		fmt.Fprintf(stderr, "mmpconv: %v%s\n", err, hint)
		return exitInput
	}
	fmt.Fprintf(stderr, "mmpconv: %v%s\n", err, flagHint(args, err))
	if errors.As(err, &ue) || errors.As(err, &ce) || isCobraUsage(err) || errors.Is(err, bridge.ErrInvalidOption) {
		return exitUsage
	}
	return exitInput
}

// flagHint names the flag that gets past an error, in the command's terms
// (the converters return typed errors and name no flags).
func flagHint(args []string, err error) string {
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	switch {
	case errors.Is(err, convert.ErrExists):
		return " (--force replaces it)"
	case errors.Is(err, convert.ErrAmbiguousKey) && cmd == "convert":
		return " (--key KEY names it)"
	case errors.Is(err, convert.ErrUnknownFormat) && cmd == "diff":
		return " (--format-a/--format-b say it)"
	case errors.Is(err, convert.ErrUnknownFormat) && cmd == "convert":
		return " (--from/--to say it)"
	}
	return ""
}

// readOnly tells the commands that write nothing: abandoning them midway
// leaves nothing behind.
func readOnly(args []string) bool {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		switch a {
		case "ls", "inspect", "verify", "diff":
			return true
		case "get":
			for _, b := range args[i+1:] {
				if b == "-o" || strings.HasPrefix(b, "--output") || strings.HasPrefix(b, "-o") {
					return false
				}
			}
			return true
		}
		return false
	}
	return true
}

// outWriter is the commands' buffered stdout; once closed (the command
// abandoned) it drops what it is given.
type outWriter struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closed bool
	err    error
}

func (o *outWriter) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return len(p), nil
	}
	return o.w.Write(p)
}

// close flushes what was written and drops the rest.
func (o *outWriter) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.closed = true
		o.err = o.w.Flush()
	}
	return o.err
}

// isCobraUsage recognises cobra's own argument errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand flag", "invalid argument"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: want %s, got %d argument(s)", cmd.Name(), names, len(args))
		}
		return nil
	}
}
