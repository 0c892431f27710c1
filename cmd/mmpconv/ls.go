package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
)

func lsCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "ls FILE",
		Short: "List the keys: kind, dtype, shape and size of arrays, a short repr of values",
		Args:  exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := bridge.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			r, err := f.Reader()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			for _, k := range r.Keys() {
				if err := e.ctx.Err(); err != nil {
					return err
				}
				v, err := r.Get(k)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				fmt.Fprintf(tw, "%s\t%s\n", k, lsLine(v))
			}
			return tw.Flush()
		},
	}
}

func lsLine(v any) string {
	switch v := v.(type) {
	case *bridge.Array:
		return fmt.Sprintf("array\t%s\t%s\t%s", v.DType, shapeStr(v.Shape), sizeStr(v.NBytes))
	case *bridge.Masked:
		return fmt.Sprintf("masked\t%s\t%s\t%s", v.Data.DType, shapeStr(v.Data.Shape), sizeStr(v.Data.NBytes+v.Mask.NBytes))
	}
	return "value\t" + render.Repr(v, 60)
}

func shapeStr(s []int) string {
	return render.Repr(bridge.Tuple(toAny(s)), 0)
}

func toAny(s []int) []any {
	out := make([]any, len(s))
	for i, d := range s {
		out[i] = d
	}
	return out
}

func sizeStr(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
