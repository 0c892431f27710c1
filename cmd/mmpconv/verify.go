package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"mmpbridge/pyval"
	"mmpbridge/remote"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
)

func verifyCmd(e *env) *cobra.Command {
	var allow []string
	var asJSON, quiet bool
	cmd := &cobra.Command{
		Use:   "verify [--allow module.name]... [--json] [-q] FILE",
		Short: "Prove, without running anything, that plain pickle.load of FILE builds only plain data",
		Long: `verify runs a model of plain pickle.load over the whole file, without
running anything: every entry in file order, deleted ones included (pickle.load
builds them too), with one memo for the whole file. Exit status 0 means: plain
pickle.load of FILE, on numpy 1.x and 2.x, builds only numpy arrays and masked
arrays of plain (non-object) dtypes, numpy scalars of those dtypes and builtin
containers and scalars, calls nothing but the constructors numpy's and
CPython's own pickles use, with the arguments they write, and does not raise
(but on the numpy versions a warning names: see below).

A list of names alone cannot make a pickle safe: numpy.dtype and numpy's scalar()
given other arguments than numpy writes can make numpy read bytes as object
pointers. So each allowed callable is checked with its arguments:

  ` + strings.Join(bridge.AllowedGlobals(), "\n  ") + `

Everything else fails: another global (reported with its key and offset), an
allowed callable given other arguments, BUILD or item assignment on objects no
pickler writes them for, an entry using another entry's memo slots, memo
amplification, and anything plain pickle.load would raise on. The structure is
checked too: header, entries, terminator, each value a clean opcode sequence.

--allow module.name (or module:name, repeatable) trusts that callable with any
arguments, and what it returns: use it only for code you trust. Warnings (an
mmappickle-profile array, which plain pickle.load cannot build on numpy >= 2.3;
numpy 2 module names, which older numpy lacks) do not change the exit status.`,
		Example: `  mmpconv verify data.mmpkl
  mmpconv verify -q --json data.mmpkl
  mmpconv verify --allow mylib.Calibration data.mmpkl`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var trust []pyval.Global
			for _, a := range allow {
				g, err := pyval.ParseGlobal(a)
				if err != nil {
					return usagef("verify: --allow: %v", err)
				}
				trust = append(trust, g)
			}
			rep, err := verifyFile(e.ctx, args[0], trust)
			if err != nil {
				return err
			}
			if asJSON {
				err = writeVerifyJSON(e.stdout, args[0], rep, quiet)
			} else {
				err = writeVerifyText(e.stdout, rep, quiet)
			}
			if err != nil {
				return err
			}
			var fails []string
			if !(len(rep.Structure) == 0) {
				fails = append(fails, "its structure is broken")
			}
			if rep.NotAllowed > 0 {
				fails = append(fails, plural(rep.NotAllowed, "global")+" not allowed")
			}
			if rep.Problems > 0 {
				fails = append(fails, plural(rep.Problems, "problem"))
			}
			if len(fails) > 0 {
				return fmt.Errorf("%s: verify failed: %s", args[0], strings.Join(fails, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&allow, "allow", nil, "trust this callable with any arguments (module.name or module:name; repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only what is not allowed or broken, and the summary line")
	return cmd
}

// parseAllow splits "module.name" (at the last dot) or "module:name" (for
// a dotted name, "mod:Outer.Inner").
func verifyFile(ctx context.Context, name string, trust []pyval.Global) (*bridge.VerifyReport, error) {
	if !remote.IsURL(name) {
		return bridge.VerifyFile(name, trust)
	}
	hf, err := remote.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer hf.Close()
	rep, err := bridge.Verify(hf, hf.Size(), trust)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rep, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// appendWhere names the entry of a finding: `key "x"`, `deleted entry at
// offset N (key "x")` or `offset N (outside any entry)`.
func appendWhere(b []byte, f bridge.Finding) []byte {
	switch {
	case f.Entry < 0:
		b = append(b, "offset "...)
		b = strconv.AppendInt(b, f.Offset, 10)
		return append(b, " (outside any entry)"...)
	case !f.Deleted:
		return strconv.AppendQuote(append(b, "key "...), f.Key)
	}
	b = strconv.AppendInt(append(b, "deleted entry at offset "...), f.Entry, 10)
	if f.Key != "" {
		b = strconv.AppendQuote(append(b, " (key "...), f.Key)
		b = append(b, ')')
	}
	return b
}

// quoteName is a part of module.name, quoted when it is not plain text;
// a long one is clipped (render.ClipName), and so quoted.
func quoteName(s string) string {
	if s == "" {
		return `""`
	}
	s = render.ClipName(s)
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.Quote(s)
		}
	}
	return s
}

// appendFinding appends one line of the text report (without newline).
func appendFinding(b []byte, f bridge.Finding) []byte {
	if f.Kind == bridge.Warning {
		b = appendWhere(append(b, "warning: "...), f)
		return append(append(b, ": "...), f.Msg...)
	}
	b = appendWhere(b, f)
	switch f.Kind {
	case bridge.Import:
		b = append(b, ": imports "...)
		b = append(append(append(b, quoteName(f.Module)...), '.'), quoteName(f.Name)...)
		b = strconv.AppendInt(append(b, " at offset "...), f.Offset, 10)
		if f.Allowed {
			return append(b, ": allowed"...)
		}
		return append(b, ": NOT ALLOWED"...)
	case bridge.NotPlain:
		b = strconv.AppendInt(append(b, ": offset "...), f.Offset, 10)
		return append(append(b, ": not plain data: "...), f.Msg...)
	}
	b = strconv.AppendInt(append(b, ": offset "...), f.Offset, 10)
	return append(append(b, ": "...), f.Msg...)
}

// writeVerifyText prints one line per finding, then the summary:
//
//	key "x": imports os.system at offset 123: NOT ALLOWED
//	warning: key "a": mmappickle-profile array ...: plain pickle.load fails on numpy >= 2.3
//	structure ok: header, 3 entries (1 deleted), terminator
//	4 globals imported, 1 not allowed; 0 problems
func writeVerifyText(w io.Writer, rep *bridge.VerifyReport, quiet bool) error {
	var b strings.Builder
	var line []byte
	warnings := 0
	for _, f := range rep.Findings {
		if f.Kind == bridge.Warning {
			warnings++
		}
		if quiet && (f.Kind == bridge.Import && f.Allowed || f.Kind == bridge.Warning) {
			continue
		}
		line = append(appendFinding(line[:0], f), '\n')
		b.Write(line)
	}
	for _, p := range rep.Structure {
		fmt.Fprintf(&b, "structure error: %v\n", p)
	}
	if rep.Omitted > 0 {
		fmt.Fprintf(&b, "(%d more findings not listed)\n", rep.Omitted)
	}
	detail := fmt.Sprintf("%d deleted", rep.Deleted)
	if rep.Padding > 0 {
		detail += fmt.Sprintf(", %d alignment padding", rep.Padding)
	}
	if rep.Index > 0 {
		detail += fmt.Sprintf(", %d of the index", rep.Index)
	}
	entries := fmt.Sprintf("%d entries (%s)", rep.Entries, detail)
	if rep.Entries == 1 {
		entries = fmt.Sprintf("1 entry (%s)", detail)
	}
	if len(rep.Structure) == 0 {
		if !quiet {
			fmt.Fprintf(&b, "structure ok: header, %s, terminator\n", entries)
		}
	} else {
		fmt.Fprintf(&b, "structure BROKEN: %s; %s\n", plural(len(rep.Structure), "error"), entries)
	}
	switch {
	case rep.Imports == 0:
		b.WriteString("0 globals imported")
	case rep.NotAllowed == 0:
		fmt.Fprintf(&b, "%s imported, all allowed", plural(rep.Imports, "global"))
	default:
		fmt.Fprintf(&b, "%s imported, %d not allowed", plural(rep.Imports, "global"), rep.NotAllowed)
	}
	fmt.Fprintf(&b, "; %s", plural(rep.Problems, "problem"))
	if quiet && warnings > 0 {
		fmt.Fprintf(&b, "; %s (without -q: which)", plural(warnings, "warning"))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeVerifyJSON(w io.Writer, name string, rep *bridge.VerifyReport, quiet bool) error {
	b, err := render.VerifyJSON(name, rep, quiet)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
