package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
)

func inspectCmd(e *env) *cobra.Command {
	var asJSON, hash bool
	cmd := &cobra.Command{
		Use:   "inspect --json [--hash] FILE",
		Short: "Describe every key as JSON (dtype, shape, order, encoding, data offset, size)",
		Args:  exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !asJSON {
				return usagef("inspect: only --json output exists; pass --json")
			}
			r, c, err := bridge.OpenReader(e.ctx, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			out, err := inspectJSON(e.ctx, r, hash)
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

// inspectJSON builds {"commit_number": N, "keys": {KEY: ENTRY, ...}} with the
// keys in file order.
func inspectJSON(ctx context.Context, r *bridge.Reader, hash bool) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "{\"commit_number\": %d, \"keys\": {", r.CommitNumber())
	for i, k := range r.Keys() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v, err := r.Get(k)
		if err != nil {
			return nil, err
		}
		d, err := render.Describe(ctx, v, hash)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		kb, _ := json.Marshal(k)
		if i > 0 {
			buf.WriteString(",")
		}
		buf.WriteString("\n  ")
		buf.Write(kb)
		buf.WriteString(": ")
		buf.Write(d)
	}
	buf.WriteString("\n}}\n")
	return buf.Bytes(), nil
}
