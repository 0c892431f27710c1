package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
	"mmpbridge/pyval"
)

func inspectCmd(e *env) *cobra.Command {
	var asJSON, hash bool
	cmd := &cobra.Command{
		Use:   "inspect [--json] [--hash] FILE",
		Short: "Describe every key: kind, dtype, shape, order, encoding, data offset and size (a table, or JSON)",
		Long: `inspect describes every key of FILE, in the order of the dict pickle.load
builds: arrays and masked arrays with their dtype, shape, order (C or F),
encoding (portable or mmappickle), the offset of their bytes in the file and
their size; other values with a short repr. --json prints the same as JSON
(the schema is in the README); --hash adds the sha256 of each array's bytes in
C order (numpy's tobytes()), which reads all the data.`,
		Example: `  mmpconv inspect data.mmpkl
  mmpconv inspect --json --hash data.mmpkl
  mmpconv inspect https://host/data.mmpkl`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, c, err := bridge.OpenReader(e.ctx, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			if asJSON {
				// Streamed, each key's JSON counted before it is
				// written, after a dry run of them all: a value too
				// big to render refuses the document, none of it
				// printed.
				if err := inspectJSON(render.NewBudget(e.ctx, 0), e.stdout, r, hash); err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				return nil
			}
			out, err := inspectTable(e.ctx, r, hash)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			_, err = e.stdout.Write(out)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&hash, "hash", false, "add the sha256 of each array's bytes in C order (reads all data)")
	return cmd
}

// inspectTable lays out one row per array (a masked array's data, then its
// mask), one per other value.
func inspectTable(ctx context.Context, r *bridge.Reader, hash bool) ([]byte, error) {
	var t table
	head := []string{"KEY", "KIND", "DTYPE", "SHAPE", "ORDER", "ENCODING", "OFFSET", "NBYTES"}
	if hash {
		head = append(head, "SHA256")
	}
	t.row(head...)
	arrayRow := func(k, kind string, a *bridge.Array) error {
		info, err := render.Info(ctx, a, hash)
		if err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		cells := []string{k, kind, info.DType, shapeStr(info.Shape), info.Order, info.Profile,
			strconv.FormatInt(info.DataOffset, 10), strconv.FormatInt(info.NBytes, 10)}
		if hash {
			cells = append(cells, info.SHA256)
		}
		t.row(cells...)
		return nil
	}
	for _, k := range r.Keys() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v, err := r.Get(k)
		if err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case *bridge.Array:
			err = arrayRow(k, "array", v)
		case *bridge.Masked:
			if err = arrayRow(k, "masked", v.Data); err == nil {
				err = arrayRow("", "  mask", v.Mask)
			}
		case *pyval.Object:
			t.row(k, "object", v.Module+"."+v.Name+" (not decoded: "+v.Why+")")
		default:
			t.row(k, "value", render.Repr(v, 60))
		}
		if err != nil {
			return nil, err
		}
	}
	return t.render(), nil
}

// inspectJSON writes {"commit_number": N, "keys": {KEY: ENTRY, ...}} with
// the keys in file order, all of it counted against b (and stopped when b's
// context is).
func inspectJSON(b *render.Budget, w io.Writer, r *bridge.Reader, hash bool) error {
	// A dry run first, without hashing and writing nothing, so that a key
	// refused for its size refuses the whole document before any of it is
	// printed: the JSON printed is whole or none. A hash adds at most
	// hashBytes to a description, left out of the dry run's budget.
	slack := int64(0)
	if hash {
		slack = int64(r.Len()) * int64(hashBytes)
	}
	if slack >= b.Max() {
		return &render.LimitError{Max: b.Max()}
	}
	if err := inspectKeys(render.NewBudget(b.Context(), b.Max()-slack), io.Discard, r, false); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "{\"commit_number\": %d, \"keys\": {", r.CommitNumber()); err != nil {
		return err
	}
	if err := inspectKeys(b, w, r, hash); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n}}\n")
	return err
}

// hashBytes bounds what --hash adds to one key's description: the
// "sha256" field of a masked array's data and mask.
const hashBytes = 2 * len(`,"sha256":""`+"0000000000000000000000000000000000000000000000000000000000000000")

// inspectKeys writes each key's `"KEY": DESCRIPTION`, comma-separated.
func inspectKeys(b *render.Budget, w io.Writer, r *bridge.Reader, hash bool) error {
	for i, k := range r.Keys() {
		if err := b.Context().Err(); err != nil {
			return err
		}
		v, err := r.Get(k)
		if err != nil {
			return err
		}
		kb, _ := json.Marshal(k)
		sep := "\n  "
		if i > 0 {
			sep = ",\n  "
		}
		if err := render.WriteDescribe(b, w, sep+string(kb)+": ", v, hash); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
	}
	return nil
}
