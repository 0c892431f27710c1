package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/convert"
	"mmpbridge/internal/render"
)

func getCmd(e *env) *cobra.Command {
	var out string
	var force, quiet bool
	cmd := &cobra.Command{
		Use:   "get FILE KEY [-o OUT.npy]",
		Short: "Print a value (Python repr), describe an array, or with -o write the array to an .npy file",
		Example: `  mmpconv get data.mmpkl meta
  mmpconv get data.mmpkl cube -o cube.npy
  mmpconv get https://host/data.mmpkl cube -o cube.npy`,
		Args: exactArgs(2, "FILE and KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out != "" {
				bar := newProgress(e.stderr, quiet, "extracting")
				defer bar.finish()
				opt := convert.Options{Key: args[1], Force: force, Progress: bar.callback()}
				return convert.File(e.ctx, args[0], out, convert.Mmpkl, convert.Npy, opt)
			}
			r, c, err := bridge.OpenReader(e.ctx, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := r.Get(args[1])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			switch v.(type) {
			case *bridge.Array, *bridge.Masked:
				d, err := render.Describe(e.ctx, v, false)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s\n", d)
			default:
				// Counted before it is written: a repr past the render
				// limit is refused, not printed.
				if err := render.WriteRepr(render.NewBudget(e.ctx, 0), e.stdout, v); err != nil {
					return fmt.Errorf("%s: key %q: %w", args[0], args[1], err)
				}
				fmt.Fprintln(e.stdout)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the array to this .npy file")
	cmd.Flags().BoolVar(&force, "force", false, "replace OUT if it exists")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	return cmd
}

func putCmd(e *env) *cobra.Command {
	var jsonValue string
	var profile string
	var align int
	cmd := &cobra.Command{
		Use:   "put FILE KEY (SRC.npy | --json VALUE)",
		Short: "Store an .npy array or a JSON value under KEY (creates FILE if missing; replaces KEY)",
		Example: `  mmpconv put data.mmpkl cube cube.npy
  mmpconv put data.mmpkl meta --json '{"sensor": "vnir", "gain": 1.5}'
  mmpconv put data.mmpkl meta --json @meta.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if jsonValue != "" {
				return exactArgs(2, "FILE and KEY (with --json)")(cmd, args)
			}
			return exactArgs(3, "FILE, KEY and SRC.npy (or --json VALUE)")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := bridge.ParseProfile(profile)
			if err != nil {
				return usageError{err}
			}
			if err := checkAlign(align); err != nil {
				return err
			}
			var v any
			if jsonValue != "" {
				text, err := readJSONArg(jsonValue, e.stdin)
				if err != nil {
					return fmt.Errorf("--json %s: %w", jsonValue, err)
				}
				if v, err = parseJSONValue(text); err != nil {
					if text != jsonValue {
						return fmt.Errorf("--json %s: %w", jsonValue, err) // a file's or stdin's content: bad input
					}
					return usagef("--json: %v", err)
				}
			}
			f, err := bridge.OpenFile(args[0], os.O_RDWR|os.O_CREATE, 0o644, bridge.WithProfile(p), bridge.WithAlign(align))
			if err != nil {
				return err
			}
			defer f.Close()
			if jsonValue != "" {
				err = f.Put(args[1], v)
			} else {
				err = convert.Put(e.ctx, f, args[1], args[2], convert.Options{Profile: p, Align: align})
			}
			if err != nil {
				return err
			}
			return f.Close()
		},
	}
	cmd.Flags().StringVar(&jsonValue, "json", "", "store this JSON value (objects become dicts, arrays lists); @FILE reads it from FILE, - from standard input")
	cmd.Flags().StringVar(&profile, "profile", "portable", "array encoding: portable or mmappickle")
	cmd.Flags().IntVar(&align, "align", 64, "alignment of the array data in bytes")
	return cmd
}

func rmCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "rm FILE KEY...",
		Short: "Delete keys, all or none (marked deleted in place; vacuum reclaims the space)",
		Example: `  mmpconv rm data.mmpkl old
  mmpconv rm data.mmpkl a b c && mmpconv vacuum data.mmpkl`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("rm: want FILE and at least one KEY")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := bridge.OpenFile(args[0], os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := f.Delete(args[1:]...); err != nil {
				return err
			}
			return f.Close()
		},
	}
}

func vacuumCmd(e *env) *cobra.Command {
	var align int
	var force, quiet bool
	cmd := &cobra.Command{
		Use:   "vacuum [--force] FILE",
		Short: "Remove deleted entries (rewrites FILE; no other process may have it open)",
		Long: `vacuum rewrites FILE without its deleted entries, to a temporary file renamed
into place, re-aligning array data (--align). A file with nothing to reclaim is
left as it is, unless --force. Through a symbolic link, the target is rewritten
and the link kept.`,
		Example: `  mmpconv vacuum data.mmpkl
  mmpconv vacuum --align 4096 data.mmpkl`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkAlign(align); err != nil {
				return err
			}
			bar := newProgress(e.stderr, quiet, "vacuuming")
			defer bar.finish()
			f, err := bridge.OpenFile(args[0], os.O_RDWR, 0, bridge.WithAlign(align), bridge.WithProgress(func(done, total int64) error {
				bar.update(done, total)
				return e.ctx.Err() // an interrupt stops the copy; the file stays as it was
			}))
			if err != nil {
				return err
			}
			defer f.Close()
			es, err := f.Entries()
			if err != nil {
				return err
			}
			var dead, pad int64
			for _, en := range es {
				switch {
				case en.Live:
				case en.Key == "":
					pad += en.Size // alignment padding: rewritten as needed
				default:
					dead += en.Size
				}
			}
			if dead == 0 && !force {
				fmt.Fprintf(e.stdout, "%s: nothing to reclaim (%d bytes of alignment padding); --force rewrites it anyway\n", args[0], pad)
				return nil
			}
			if err := f.Vacuum(); err != nil {
				return err
			}
			return f.Close()
		},
	}
	cmd.Flags().IntVar(&align, "align", 64, "re-align array data to this many bytes (1: pack as mmappickle does)")
	cmd.Flags().BoolVar(&force, "force", false, "rewrite FILE even when nothing is deleted")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	return cmd
}

func fsckCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "fsck FILE",
		Short: "Repair a file torn by an interrupted write: cut the torn tail, restore the terminator",
		Example: `  mmpconv fsck data.mmpkl
  mmpconv fsck data.mmpkl && mmpconv verify -q data.mmpkl`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := repair(args[0])
			if err != nil {
				if st, serr := os.Stat(args[0]); errors.Is(err, bridge.ErrNotMmappickle) && serr == nil && st.Size() > 0 {
					return fmt.Errorf("%w (fsck repairs only a torn tail)", err)
				}
				return err
			}
			if !rep.Repaired {
				fmt.Fprintf(e.stdout, "%s: intact, %d entries\n", args[0], rep.Entries)
				return nil
			}
			fmt.Fprintf(e.stdout, "%s: repaired: kept %d entries, cut %d bytes at offset %d (%s)\n", args[0], rep.Entries, rep.CutBytes, rep.CutAt, rep.Problem)
			return nil
		},
	}
}

// repair opens name as torn and repairs it.
func repair(name string) (bridge.RepairReport, error) {
	f, err := bridge.OpenFile(name, os.O_RDWR, 0, bridge.AllowTorn())
	if err != nil {
		return bridge.RepairReport{}, err
	}
	rep, err := f.Repair()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return rep, err
}
