package main

// mmp_salvage: what `mmpconv salvage --json` does.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"mmpbridge/bridge"
	"mmpbridge/convert"
	"mmpbridge/internal/render"
)

// salvageOptions are the fields of mmp_salvage's options JSON, named as
// mmpconv salvage's flags.
type salvageOptions struct {
	Profile string `json:"profile"`
	Align   *int   `json:"align"`
	Force   bool   `json:"force"`
}

// salvageFile does what `mmpconv salvage --json` does and returns its
// report: the entries of the damaged file src that read and verify on their
// own are written to dst (whole or not at all; an existing dst is refused
// unless force). Bad options and src == dst wrap errInvalidArg.
func salvageFile(ctx context.Context, src, dst, options string) ([]byte, error) {
	var o salvageOptions
	if options != "" {
		dec := json.NewDecoder(bytes.NewReader([]byte(options)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return nil, fmt.Errorf("options JSON: %v (known options: profile, align, force): %w", err, errInvalidArg)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, fmt.Errorf("options JSON: trailing data after the object: %w", errInvalidArg)
		}
	}
	opts := []bridge.Option{}
	if o.Profile != "" {
		p, err := bridge.ParseProfile(o.Profile)
		if err != nil {
			return nil, fmt.Errorf("options: %v: %w", err, errInvalidArg)
		}
		opts = append(opts, bridge.WithProfile(p))
	}
	if o.Align != nil {
		if a := *o.Align; a < 1 || a&(a-1) != 0 {
			return nil, fmt.Errorf("options: align %d: want a power of two: %w", a, errInvalidArg)
		}
		opts = append(opts, bridge.WithAlign(*o.Align))
	}
	rep, err := convert.Salvage(ctx, src, dst, o.Force, opts...)
	if err != nil {
		var ue *convert.UsageError
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("%v: %w", err, errInvalidArg)
		}
		return nil, err
	}
	return render.SalvageJSON(src, dst, rep)
}
