package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
)

func verifyCmd(e *env) *cobra.Command {
	var allow []string
	var asJSON, quiet bool
	cmd := &cobra.Command{
		Use:   "verify [--allow module.name]... [--json] [-q] FILE",
		Short: "Check, without running anything, which globals plain pickle.load of FILE would import",
		Long: `verify reads the whole file without running anything and reports, per key
(deleted entries included: pickle.load runs them too), every global a plain
pickle.load would import, against an allow-list:

  ` + strings.Join(bridge.DefaultVerifyAllow, "\n  ") + `

--allow module.name (or module:name, repeatable) extends it. It also checks
the file's structure: header, entries, terminator, and that every value is a
clean opcode sequence. Exit status 0 means plain pickle.load of this file
imports only listed names; 1 means a global is not allowed (or cannot be
checked) or the structure is broken. Arrays in the mmappickle encoding get a
warning: they fail to load with plain pickle on numpy >= 2.3.`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range allow {
				if _, _, err := bridge.ParseAllow(a); err != nil {
					return usagef("verify: --allow: %v", err)
				}
			}
			rep, err := verifyFile(args[0], allow)
			if err != nil {
				return err
			}
			if asJSON {
				err = writeVerifyJSON(e.stdout, args[0], rep)
			} else {
				err = writeVerifyText(e.stdout, rep, quiet)
			}
			if err != nil {
				return err
			}
			var fails []string
			if !rep.StructureOK() {
				fails = append(fails, "its structure is broken")
			}
			if rep.NotAllowed > 0 {
				fails = append(fails, plural(rep.NotAllowed, "global")+" not allowed")
			}
			if len(fails) > 0 {
				return fmt.Errorf("%s: verify failed: %s", args[0], strings.Join(fails, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&allow, "allow", nil, "also allow this global (module.name or module:name; repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only what is not allowed, structure errors, warnings and the summary")
	return cmd
}

func verifyFile(name string, allow []string) (*bridge.VerifyReport, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	rep, err := bridge.Verify(f, st.Size(), allow)
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

// writeVerifyText prints one line per finding, then the summary:
//
//	key "x": imports os.system at offset 123: NOT ALLOWED
//	warning: key "a": mmappickle-profile array: fails to load with plain pickle on numpy >= 2.3
//	structure ok: header, 3 entries (1 deleted), terminator
//	4 globals imported, 1 not allowed
func writeVerifyText(w io.Writer, rep *bridge.VerifyReport, quiet bool) error {
	var b strings.Builder
	for _, g := range rep.Globals {
		if quiet && g.Allowed {
			continue
		}
		verdict := "allowed"
		if !g.Allowed {
			verdict = "NOT ALLOWED"
		}
		verb := "imports "
		if g.Op == "PERSID" || g.Op == "BINPERSID" {
			verb = "loads "
		}
		fmt.Fprintf(&b, "%s: %s%s at offset %d: %s\n", g.Where(), verb, g.What(), g.Offset, verdict)
	}
	for _, wr := range rep.Warnings {
		fmt.Fprintf(&b, "warning: %s: %s\n", wr.Where(), wr.Msg)
	}
	for _, p := range rep.Structure {
		fmt.Fprintf(&b, "structure error: %v\n", p)
	}
	if rep.Omitted > 0 {
		fmt.Fprintf(&b, "(%d more findings not listed)\n", rep.Omitted)
	}
	entries := fmt.Sprintf("%d entries (%d deleted)", rep.Entries, rep.Deleted)
	if rep.Entries == 1 {
		entries = fmt.Sprintf("1 entry (%d deleted)", rep.Deleted)
	}
	if rep.StructureOK() {
		fmt.Fprintf(&b, "structure ok: header, %s, terminator\n", entries)
	} else {
		fmt.Fprintf(&b, "structure BROKEN: %s; %s\n", plural(len(rep.Structure), "error"), entries)
	}
	switch {
	case rep.Imports == 0:
		b.WriteString("0 globals imported\n")
	case rep.NotAllowed == 0:
		fmt.Fprintf(&b, "%s imported, all allowed\n", plural(rep.Imports, "global"))
	default:
		fmt.Fprintf(&b, "%s imported, %d not allowed\n", plural(rep.Imports, "global"), rep.NotAllowed)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

type verifyJSON struct {
	File        string                 `json:"file"`
	OK          bool                   `json:"ok"`
	StructureOK bool                   `json:"structure_ok"`
	Entries     int                    `json:"entries"`
	Deleted     int                    `json:"deleted"`
	Imports     int                    `json:"imports"`
	NotAllowed  int                    `json:"not_allowed"`
	Omitted     int                    `json:"omitted,omitempty"`
	Structure   []verifyProblemJSON    `json:"structure_errors"`
	Globals     []bridge.GlobalRef     `json:"globals"`
	Warnings    []bridge.VerifyWarning `json:"warnings"`
}

type verifyProblemJSON struct {
	Offset  int64  `json:"offset"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

func writeVerifyJSON(w io.Writer, name string, rep *bridge.VerifyReport) error {
	out := verifyJSON{File: name, OK: rep.OK(), StructureOK: rep.StructureOK(), Entries: rep.Entries,
		Deleted: rep.Deleted, Imports: rep.Imports, NotAllowed: rep.NotAllowed, Omitted: rep.Omitted,
		Structure: []verifyProblemJSON{}, Globals: rep.Globals, Warnings: rep.Warnings}
	if out.Globals == nil {
		out.Globals = []bridge.GlobalRef{}
	}
	if out.Warnings == nil {
		out.Warnings = []bridge.VerifyWarning{}
	}
	for _, p := range rep.Structure {
		out.Structure = append(out.Structure, verifyProblemJSON{Offset: p.Offset, Key: p.Key, Message: p.Error()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
