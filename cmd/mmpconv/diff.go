package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/convert"
	"mmpbridge/internal/render"
)

func diffCmd(e *env) *cobra.Command {
	var (
		opt              convert.DiffOptions
		asJSON, quiet    bool
		maxShown         int
		formatA, formatB string
	)
	cmd := &cobra.Command{
		Use:   "diff [flags] A B",
		Short: "Compare two files of any supported formats logically (exit 0: equal, 1: they differ)",
		Long: `diff compares A and B as the conversions read them, whatever their formats
(.mmpkl/.pkl, .npy, .npz, .h5/.hdf5; mmappickle URLs too): the same keys (npz
members without ".npy", HDF5 datasets by path without the leading "/", HDF5
attributes under "__attrs__"), and for each the same kind, dtype (byte order
compared by value unless --strict-dtype), shape, values element by element in
index order (C and Fortran layouts compare equal when the values are),
masked arrays' masks and fill values, and generic values.

Values are compared bit for bit unless --rtol/--atol are given: then numbers
compare as numpy.isclose(a, b, rtol, atol, equal_nan=True) does.

Each difference is printed on its own line, the first --max of them (0: all),
then how many there are in all. Exit status: 0 equal, 1 different (or an input
could not be read: the error says so on stderr), 2 bad usage.

mmappickle files are compared through their mappings, on all cores, in
constant memory. Other formats are first read as "convert" reads them, into an
unnamed scratch file in --tmpdir (default $TMPDIR or /tmp), which needs disk
space for their arrays.`,
		Example: `  mmpconv diff data.npz data.mmpkl
  mmpconv diff --rtol 1e-6 run1.h5 run2.h5
  mmpconv diff --json --max 0 before.mmpkl https://host/after.mmpkl`,
		Args: exactArgs(2, "A and B"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxShown < 0 {
				return usagef("diff: --max %d: want 0 (all) or more", maxShown)
			}
			var fa, fb convert.Format
			var err error
			if formatA != "" {
				if fa, err = convert.ParseFormat(formatA); err != nil {
					return err
				}
			}
			if formatB != "" {
				if fb, err = convert.ParseFormat(formatB); err != nil {
					return err
				}
			}
			bar := newProgress(e.stderr, quiet, "comparing")
			opt.Progress = bar.callback()
			var diffs []convert.Difference
			shown := 0
			opt.Report = func(d convert.Difference) {
				if asJSON {
					diffs = append(diffs, d)
					return
				}
				if maxShown == 0 || shown < maxShown {
					shown++
					bar.clear()
					fmt.Fprintln(e.stdout, diffText(d, args[0], args[1]))
				}
			}
			n, err := convert.Diff(e.ctx, args[0], args[1], fa, fb, opt)
			bar.finish()
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeDiffJSON(e.stdout, args[0], args[1], diffs); err != nil {
					return err
				}
			} else if n > shown {
				fmt.Fprintf(e.stdout, "... and %s more (%s in all; --max 0 lists every one)\n", thousands(int64(n-shown)), plural(n, "difference"))
			} else if n > 0 {
				fmt.Fprintf(e.stdout, "%s\n", plural(n, "difference"))
			}
			if n > 0 {
				return exitStatus(exitInput)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opt.StrictDType, "strict-dtype", false, "byte order is part of the dtype ('<f8' differs from '>f8')")
	f.Float64Var(&opt.RTol, "rtol", 0, "relative tolerance for numbers (numpy.isclose)")
	f.Float64Var(&opt.ATol, "atol", 0, "absolute tolerance for numbers (numpy.isclose)")
	f.BoolVar(&asJSON, "json", false, "print the differences as JSON")
	f.IntVar(&maxShown, "max", 20, "print at most this many differences (0: all)")
	f.StringVar(&formatA, "format-a", "", "format of A: mmpkl, npy, npz or hdf5 (default: from its extension)")
	f.StringVar(&formatB, "format-b", "", "format of B (default: from its extension)")
	f.StringVar(&opt.ScratchDir, "tmpdir", "", "directory for the scratch files of inputs that are not mmappickle (default $TMPDIR or /tmp)")
	f.BoolVar(&opt.Layout, "layout", false, "compare the HDF5 storage records too (chunks, filters: __layout__ in __attrs__)")
	f.BoolVar(&quiet, "quiet", false, "no progress bar")
	return cmd
}

// diffText is one difference as a line.
func diffText(d convert.Difference, a, b string) string {
	var s strings.Builder
	s.WriteString("key ")
	s.WriteString(strconv.Quote(d.Key))
	s.WriteString(": ")
	switch d.Kind {
	case convert.OnlyInA:
		s.WriteString("only in " + a)
	case convert.OnlyInB:
		s.WriteString("only in " + b)
	case convert.KindDiffers:
		fmt.Fprintf(&s, "%s in %s, %s in %s", kindText(d.AKind), a, kindText(d.BKind), b)
	case convert.DTypeDiffers:
		fmt.Fprintf(&s, "dtype %s vs %s", d.ADType, d.BDType)
	case convert.ShapeDiffers:
		fmt.Fprintf(&s, "shape %s vs %s", render.ShapeText(d.AShape), render.ShapeText(d.BShape))
	case convert.ValuesDiffer, convert.MaskDiffers:
		what := "values differ"
		if d.Kind == convert.MaskDiffers {
			what = "masks differ"
		}
		fmt.Fprintf(&s, "%s at %s of %s elements, first at %s: %s vs %s", what,
			thousands(d.Count), thousands(d.Total), indexText(d.Index), elemText(d.AElem), elemText(d.BElem))
	case convert.FillDiffers:
		fmt.Fprintf(&s, "fill value %s vs %s", valueText(d.A), valueText(d.B))
	case convert.ValueDiffers:
		if len(d.Path) > 0 {
			s.WriteString("at " + pathText(d.Path) + ": ")
		}
		fmt.Fprintf(&s, "%s vs %s", valueText(d.A), valueText(d.B))
	}
	return s.String()
}

func kindText(k bridge.Kind) string {
	switch k {
	case bridge.KindArray:
		return "an array"
	case bridge.KindMasked:
		return "a masked array"
	}
	return "a value"
}

func indexText(idx []int) string {
	if len(idx) == 0 {
		return "()"
	}
	return render.ShapeText(idx)
}

func pathText(p []any) string {
	var s strings.Builder
	for _, k := range p {
		s.WriteString("[" + render.Repr(k, 80) + "]")
	}
	return s.String()
}

func valueText(v any) string {
	if v == convert.Missing {
		return "(missing)"
	}
	return render.Repr(v, 200)
}

// elemText is an array element as numpy prints it inside an array.
func elemText(s bridge.Scalar) string {
	v := s.Value()
	switch x := v.(type) {
	case float64:
		bits := 64
		switch s.DType.ItemSize {
		case 2, 4:
			bits = 8 * s.DType.ItemSize // numpy prints float16/32 elements shortest for their size
		}
		return render.PyFloatBits(x, bits)
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		if s.DType.Kind == 'M' || s.DType.Kind == 'm' {
			return render.Repr(&s, 80)
		}
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case nil:
		return "0x" + fmt.Sprintf("%x", s.Raw)
	}
	return render.Repr(v, 80)
}

// thousands formats n with commas: 262,144.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// writeDiffJSON prints {"a", "b", "equal", "count", "differences": [...]}.
func writeDiffJSON(w io.Writer, a, b string, diffs []convert.Difference) error {
	type jdiff struct {
		Key    string `json:"key"`
		Kind   string `json:"kind"`
		A      any    `json:"a,omitempty"`
		B      any    `json:"b,omitempty"`
		Path   []any  `json:"path,omitempty"`
		Count  int64  `json:"count,omitempty"`
		Total  int64  `json:"total,omitempty"`
		Index  []int  `json:"index,omitempty"`
		Detail string `json:"text"`
	}
	out := struct {
		A           string  `json:"a"`
		B           string  `json:"b"`
		Equal       bool    `json:"equal"`
		Count       int     `json:"count"`
		Differences []jdiff `json:"differences"`
	}{A: a, B: b, Equal: len(diffs) == 0, Count: len(diffs), Differences: []jdiff{}}
	for _, d := range diffs {
		j := jdiff{Key: d.Key, Kind: diffKindName[d.Kind], Detail: diffText(d, a, b)}
		switch d.Kind {
		case convert.KindDiffers:
			j.A, j.B = kindName(d.AKind), kindName(d.BKind)
		case convert.DTypeDiffers:
			j.A, j.B = d.ADType.String(), d.BDType.String()
		case convert.ShapeDiffers:
			j.A, j.B = nonNil(d.AShape), nonNil(d.BShape)
		case convert.ValuesDiffer, convert.MaskDiffers:
			j.Count, j.Total, j.Index = d.Count, d.Total, nonNil(d.Index)
			j.A, j.B = jsonElem(d.AElem), jsonElem(d.BElem)
		case convert.FillDiffers, convert.ValueDiffers:
			j.A, j.B = diffJSONValue(d.A), diffJSONValue(d.B)
			for _, k := range d.Path {
				pk, _ := render.JSONValue(k)
				j.Path = append(j.Path, pk)
			}
		}
		out.Differences = append(out.Differences, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

var diffKindName = map[convert.DiffKind]string{
	convert.OnlyInA:      "only_in_a",
	convert.OnlyInB:      "only_in_b",
	convert.KindDiffers:  "kind",
	convert.DTypeDiffers: "dtype",
	convert.ShapeDiffers: "shape",
	convert.ValuesDiffer: "values",
	convert.MaskDiffers:  "mask",
	convert.FillDiffers:  "fill",
	convert.ValueDiffers: "value",
}

func kindName(k bridge.Kind) string {
	switch k {
	case bridge.KindArray:
		return "array"
	case bridge.KindMasked:
		return "masked"
	}
	return "value"
}

func nonNil(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

// jsonElem is an element as JSON: a number, bool or string; NaN and
// infinities (which JSON lacks) and other elements as their text.
func jsonElem(s bridge.Scalar) any {
	switch x := s.Value().(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return elemText(s)
		}
		return x
	case bool, int64, uint64, string:
		if s.DType.Kind == 'M' || s.DType.Kind == 'm' {
			return elemText(s)
		}
		return x
	}
	return elemText(s)
}

// diffJSONValue is a generic value as JSON (render's rules); a missing one is
// null, a part JSON cannot hold its repr.
func diffJSONValue(v any) any {
	if v == convert.Missing {
		return nil
	}
	j, exact := render.JSONValue(v)
	if !exact {
		return render.Repr(v, 200)
	}
	return j
}
