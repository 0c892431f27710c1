package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/convert"
	"mmpbridge/internal/render"
)

func salvageCmd(e *env) *cobra.Command {
	var force, asJSON bool
	var profile string
	var align int
	cmd := &cobra.Command{
		Use:   "salvage [--force] [--json] BAD OUT",
		Short: "Copy every entry of a damaged file that reads and verifies on its own into a new file",
		Long: `salvage reads BAD, an mmappickle file that is damaged (a torn or overwritten
entry, a broken header or terminator: the other commands and pickle.load refuse
it whole), and copies into OUT every live entry that parses exactly, decodes on
its own and verifies as plain data, as verify judges it: numpy arrays, masked
arrays, numpy scalars and builtin values. Nothing is run. An entry that uses
another entry's memo slots, or builds anything else, is not copied. Where the
entries' frames are broken, salvage goes on at the next byte where an entry
parses exactly, so the entries after the damage are saved too.

It prints what it saved and a table of what it could not save: the key (or
"(bytes)" for bytes that are no entry), the byte offset in BAD, the size and
the cause. Damage inside an array's data or a string's bytes cannot be seen
(the format has no checksums): those are copied as they are.

OUT is written to a temporary file beside it and renamed into place when
complete; an existing OUT is refused unless --force. Exit status: 0 when every
entry was saved, 1 when some were lost (OUT holds the others) or BAD cannot be
read at all, 2 for a usage error, 130 when interrupted (OUT is not written).`,
		Example: `  mmpconv salvage damaged.mmpkl saved.mmpkl
  mmpconv salvage --json damaged.mmpkl saved.mmpkl`,
		Args: exactArgs(2, "BAD and OUT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := bridge.ParseProfile(profile)
			if err != nil {
				return usageError{err}
			}
			if err := checkAlign(align); err != nil {
				return err
			}
			rep, err := convert.Salvage(e.ctx, args[0], args[1], force, bridge.WithProfile(p), bridge.WithAlign(align))
			if err != nil {
				return err
			}
			if err := writeSalvage(e.stdout, args[0], args[1], rep, asJSON); err != nil {
				return err
			}
			if !rep.OK() {
				fmt.Fprintf(e.stderr, "mmpconv: %s: %d could not be saved; %s holds the %d saved\n", args[0], len(rep.Lost), args[1], len(rep.Saved))
				return exitStatus(exitInput)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&force, "force", false, "replace OUT if it exists")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&profile, "profile", "portable", "array encoding of OUT: portable or mmappickle (see --version)")
	f.IntVar(&align, "align", 64, "alignment of array data in OUT, in bytes (1: none)")
	return cmd
}

func writeSalvage(w io.Writer, src, dst string, rep *bridge.SalvageReport, asJSON bool) error {
	if asJSON {
		b, err := render.SalvageJSON(src, dst, rep)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	_, err := io.WriteString(w, render.SalvageText(src, dst, rep))
	return err
}
