package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/convert"
)

// convertFlags are the options shared by convert and get.
type convertFlags struct {
	profile, from, to, layout string
	quiet                     bool
	opt                       convert.Options
}

func (c *convertFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.profile, "profile", "portable", "array encoding of mmappickle output: portable (loads with plain pickle on numpy 1.x and 2.x) or mmappickle (mmappickle 1.0.1 maps the arrays)")
	f.IntVar(&c.opt.Align, "align", 64, "alignment of array data in mmappickle output, in bytes (1: none)")
	f.BoolVar(&c.opt.Force, "force", false, "replace DST if it exists")
	f.StringVar(&c.from, "from", "", "format of SRC: mmpkl, npy, npz or hdf5 (default: from its extension)")
	f.StringVar(&c.to, "to", "", "format of DST: mmpkl, npy, npz or hdf5 (default: from its extension)")
	f.StringVar(&c.opt.Key, "key", "", "npy -> mmpkl: the key to store the array under (default: the file's stem); mmpkl -> npy: the key to extract")
	f.BoolVar(&c.opt.Compress, "compress", false, "deflate the members of an .npz output")
	f.BoolVar(&c.opt.SkipUnsupported, "skip-unsupported", false, "convert what can be converted and list what was skipped, instead of failing")
	f.BoolVar(&c.opt.VlenAsList, "vlen-as-list", false, "HDF5 input: variable-length string datasets as a list of str, not a numpy '<U' array of the longest string's length")
	f.StringVar(&c.layout, "layout", "keep", "HDF5 output: keep (the chunk shape and filters an HDF5 source recorded) or contiguous")
	f.BoolVar(&c.quiet, "quiet", false, "no progress bar")
}

// checkAlign validates an --align flag (a usage error); bridge.WithAlign
// refuses one past its largest alignment (also a usage error).
func checkAlign(n int) error {
	if n < 1 || n&(n-1) != 0 {
		return usagef("--align %d: want a power of two", n)
	}
	return nil
}

// options validates the flags into convert options.
func (c *convertFlags) options(e *env, src string) (convert.Options, convert.Format, convert.Format, error) {
	opt := c.opt
	p, err := bridge.ParseProfile(c.profile)
	if err != nil {
		return opt, "", "", usageError{err}
	}
	opt.Profile = p
	if err := checkAlign(opt.Align); err != nil {
		return opt, "", "", err
	}
	if opt.Layout, err = convert.ParseLayout(c.layout); err != nil {
		return opt, "", "", err
	}
	var ff, tf convert.Format
	if c.from != "" {
		if ff, err = convert.ParseFormat(c.from); err != nil {
			return opt, "", "", err
		}
	}
	if c.to != "" {
		if tf, err = convert.ParseFormat(c.to); err != nil {
			return opt, "", "", err
		}
	}
	opt.Skipped = func(name, reason string) {
		fmt.Fprintf(e.stderr, "mmpconv: %s: skipped %s: %s\n", src, name, reason)
	}
	return opt, ff, tf, nil
}

func convertCmd(e *env) *cobra.Command {
	var c convertFlags
	cmd := &cobra.Command{
		Use:   "convert [flags] SRC DST",
		Short: "Convert between mmappickle (.mmpkl/.pkl), .npy, .npz and HDF5 (.h5/.hdf5), in any direction",
		Long: `Convert SRC to DST. Formats come from the extensions (.mmpkl/.pkl, .npy, .npz,
.h5/.hdf5) unless --from/--to say otherwise; any format converts to any other
(between two that are not mmappickle, through an unnamed scratch mmappickle
file beside DST).
DST is written to a temporary file beside it and renamed into place when
complete; an existing DST is refused unless --force.`,
		Example: `  mmpconv convert data.npz data.mmpkl
  mmpconv convert --profile mmappickle scan.h5 scan.mmpkl
  mmpconv convert --compress --skip-unsupported data.mmpkl data.npz`,
		Args: exactArgs(2, "SRC and DST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opt, ff, tf, err := c.options(e, args[0])
			if err != nil {
				return err
			}
			if opt.Key != "" {
				// --key names an .npy's one array; elsewhere it would be
				// ignored, and that must not pass silently.
				from, to := ff, tf
				if from == "" {
					from, _ = convert.FormatOf(args[0])
				}
				if to == "" {
					to, _ = convert.FormatOf(args[1])
				}
				if from != convert.Npy && to != convert.Npy {
					return usagef("convert: --key names the key of an .npy input or the array of an .npy output; a %s -> %s conversion takes every key", from, to)
				}
			}
			bar := newProgress(e.stderr, c.quiet, "converting")
			opt.Progress = bar.callback()
			defer bar.finish()
			return convert.File(e.ctx, args[0], args[1], ff, tf, opt)
		},
	}
	c.add(cmd)
	return cmd
}
