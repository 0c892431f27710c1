package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"mmpbridge/convert"
)

// Exit codes.
const (
	exitOK    = 0
	exitInput = 1
	exitUsage = 2
)

// usageError marks a command-line mistake (exit 2).
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// env is what commands write to.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
}

// Main runs mmpconv with args and returns the exit code. It is main without
// the process: tests call it directly.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "mmpconv",
		Short:         "Read, inspect and convert mmappickle files",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(lsCmd(e), inspectCmd(e), convertCmd(e), getCmd(e), putCmd(e), rmCmd(e), vacuumCmd(e), fsckCmd(e), verifyCmd(e))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "mmpconv: %v\n", err)
	var ue usageError
	var ce *convert.UsageError
	var unsupported *convert.UnsupportedError
	if errors.As(err, &unsupported) {
		return exitInput
	}
	if errors.As(err, &ue) || errors.As(err, &ce) || isCobraUsage(err) {
		return exitUsage
	}
	return exitInput
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
