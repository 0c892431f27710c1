package main

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
)

func lsCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "ls FILE",
		Short: "List the keys: kind, dtype, shape and size of arrays, a short repr of values",
		Example: `  mmpconv ls data.mmpkl
  mmpconv ls https://host/data.mmpkl`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, c, err := bridge.OpenReader(e.ctx, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			var t table
			for _, k := range r.Keys() {
				if err := e.ctx.Err(); err != nil {
					return err
				}
				v, err := r.Get(k)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				lsRow(&t, k, v)
			}
			_, err = e.stdout.Write(t.render())
			return err
		},
	}
}

// lsRow adds a key's row: key, kind, then dtype, shape and size for arrays
// or a short repr for values.
func lsRow(t *table, k string, v any) {
	switch v := v.(type) {
	case *bridge.Array:
		t.row(k, "array", v.DType.String(), shapeStr(v.Shape), sizeStr(v.NBytes))
	case *bridge.Masked:
		t.row(k, "masked", v.Data.DType.String(), shapeStr(v.Data.Shape), sizeStr(v.Data.NBytes+v.Mask.NBytes))
	default:
		t.row(k, "value", render.Repr(v, 60))
	}
}

// table lays out rows in columns two spaces apart, as text/tabwriter with
// padding 2 would, without its per-cell cost: a 10,000-key listing is one
// write.
type table struct {
	cells  []string
	rows   []int // index in cells where each row starts
	widths []int // of every column but the last of a row, in runes
}

func (t *table) row(cells ...string) {
	t.rows = append(t.rows, len(t.cells))
	t.cells = append(t.cells, cells...)
	for i, c := range cells[:len(cells)-1] {
		if i == len(t.widths) {
			t.widths = append(t.widths, 0)
		}
		t.widths[i] = max(t.widths[i], utf8.RuneCountInString(c))
	}
}

func (t *table) render() []byte {
	var b []byte
	for r, start := range t.rows {
		end := len(t.cells)
		if r+1 < len(t.rows) {
			end = t.rows[r+1]
		}
		for i, c := range t.cells[start:end] {
			b = append(b, c...)
			if start+i == end-1 {
				break
			}
			for n := t.widths[i] - utf8.RuneCountInString(c) + 2; n > 0; n-- {
				b = append(b, ' ')
			}
		}
		b = append(b, '\n')
	}
	return b
}

// shapeStr is a shape as Python prints the tuple: (), (3,), (2, 3).
func shapeStr(s []int) string {
	b := []byte{'('}
	for i, d := range s {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(b, int64(d), 10)
	}
	if len(s) == 1 {
		b = append(b, ',')
	}
	return string(append(b, ')'))
}

func sizeStr(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	b := strconv.AppendFloat(nil, float64(n)/float64(div), 'f', 1, 64)
	return string(append(append(b, ' ', "KMGTPE"[exp]), "iB"...))
}
