package main

import (
	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/convert"
)

func convertCmd(e *env) *cobra.Command {
	var profile, from, to string
	var opt convert.Options
	cmd := &cobra.Command{
		Use:   "convert [--profile portable|mmappickle] [--align N] [--force] SRC DST",
		Short: "Convert SRC to DST (formats from the extensions, or --from/--to)",
		Args:  exactArgs(2, "SRC and DST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := bridge.ParseEncoding(profile)
			if err != nil {
				return usageError{err}
			}
			opt.Profile = p
			if opt.Align < 1 || opt.Align > 1<<20 || opt.Align&(opt.Align-1) != 0 {
				return usagef("--align %d: want a power of two from 1 to 1048576", opt.Align)
			}
			var ff, tf convert.Format
			if from != "" {
				if ff, err = convert.ParseFormat(from); err != nil {
					return err
				}
			}
			if to != "" {
				if tf, err = convert.ParseFormat(to); err != nil {
					return err
				}
			}
			return convert.File(e.ctx, args[0], args[1], ff, tf, opt)
		},
	}
	cmd.Flags().StringVar(&profile, "profile", "portable", "array encoding of mmappickle output: portable (loads with plain pickle on numpy 1.x and 2.x) or mmappickle (mmappickle 1.0.1 maps the arrays)")
	cmd.Flags().IntVar(&opt.Align, "align", 64, "alignment of array data in mmappickle output, in bytes (1: none)")
	cmd.Flags().BoolVar(&opt.Force, "force", false, "replace DST if it exists")
	cmd.Flags().StringVar(&from, "from", "", "format of SRC (default: from its extension)")
	cmd.Flags().StringVar(&to, "to", "", "format of DST (default: from its extension)")
	return cmd
}
