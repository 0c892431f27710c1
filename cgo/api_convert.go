package main

// mmp_convert: what `mmpconv convert` does.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"mmpbridge/bridge"
	"mmpbridge/convert"
)

// Statuses of convertFile, as mmpconv's exit status.
const (
	convertOK    = 0
	convertInput = 1 // a problem with an input
	convertUsage = 2 // bad options
)

// convertOptions are the fields of mmp_convert's options JSON, named as
// mmpconv convert's flags (dashes as underscores).
type convertOptions struct {
	Profile         string `json:"profile"`
	Align           *int   `json:"align"`
	Force           bool   `json:"force"`
	Key             string `json:"key"`
	Compress        bool   `json:"compress"`
	SkipUnsupported bool   `json:"skip_unsupported"`
	From            string `json:"from"`
	To              string `json:"to"`
}

// parseConvertOptions validates options JSON ("" or "null" for the
// defaults) as mmpconv convert validates its flags.
func parseConvertOptions(s string) (convert.Options, convert.Format, convert.Format, error) {
	var o convertOptions
	var opt convert.Options
	if s != "" {
		dec := json.NewDecoder(bytes.NewReader([]byte(s)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return opt, "", "", fmt.Errorf("options JSON: %w (known options: profile, align, force, key, compress, skip_unsupported, from, to)", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return opt, "", "", errors.New("options JSON: trailing data after the object")
		}
	}
	opt.Profile = bridge.Portable
	if o.Profile != "" {
		p, err := bridge.ParseProfile(o.Profile)
		if err != nil {
			return opt, "", "", fmt.Errorf("options: %w", err)
		}
		opt.Profile = p
	}
	opt.Align = 64
	if o.Align != nil {
		a := *o.Align
		// The largest alignment is the bridge's to say (bridge.WithAlign,
		// ErrInvalidOption), as for mmpconv --align.
		if a < 1 || a&(a-1) != 0 {
			return opt, "", "", fmt.Errorf("options: align %d: want a power of two", a)
		}
		opt.Align = a
	}
	opt.Force, opt.Key, opt.Compress, opt.SkipUnsupported = o.Force, o.Key, o.Compress, o.SkipUnsupported
	var from, to convert.Format
	var err error
	if o.From != "" {
		if from, err = convert.ParseFormat(o.From); err != nil {
			return opt, "", "", err
		}
	}
	if o.To != "" {
		if to, err = convert.ParseFormat(o.To); err != nil {
			return opt, "", "", err
		}
	}
	return opt, from, to, nil
}

// convertFile does what `mmpconv convert` does and returns its exit status:
// convertOK, convertInput or convertUsage (with the error).
func convertFile(src, dst, options string) (int, error) {
	return convertFileCtx(context.Background(), src, dst, options)
}

// convertProgress, when set (by tests), is convert's progress callback.
var convertProgress func(done, total int64)

// convertFileCtx is convertFile stopping when ctx is done (the call's
// context: mmp_cancel).
func convertFileCtx(ctx context.Context, src, dst, options string) (int, error) {
	opt, from, to, err := parseConvertOptions(options)
	if err != nil {
		return convertUsage, err
	}
	opt.Progress = convertProgress
	err = convert.File(ctx, src, dst, from, to, opt)
	if err == nil {
		return convertOK, nil
	}
	var ue *convert.UsageError
	if errors.As(err, &ue) || errors.Is(err, bridge.ErrInvalidOption) {
		return convertUsage, err
	}
	return convertInput, err
}
