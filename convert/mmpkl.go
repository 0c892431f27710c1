package convert

import (
	"context"
	"os"

	"mmpbridge/bridge"
	"mmpbridge/pyval"
)

func createMmpkl(name string, opt Options, more ...bridge.Option) (*bridge.File, error) {
	opts := append([]bridge.Option{bridge.WithProfile(opt.Profile)}, more...)
	if opt.Align != 0 {
		opts = append(opts, bridge.WithAlign(opt.Align))
	}
	return bridge.OpenFile(name, os.O_RDWR, 0, opts...)
}

// mmpklToMmpkl rewrites the live keys of src into dst in file order: arrays
// re-encoded in the chosen profile and alignment, other values copied as
// their pickle bytes (so values the bridge cannot decode survive).
func mmpklToMmpkl(ctx context.Context, src, dst string, opt Options) error {
	r, c, err := bridge.OpenReader(ctx, src)
	if err != nil {
		return err
	}
	defer c.Close()
	p := &progress{ctx: ctx, fn: opt.Progress}
	out, err := createMmpkl(dst, opt, bridge.WithProgress(p.operation()))
	if err != nil {
		return err
	}
	defer out.Close()
	keys := r.Keys()
	for _, k := range keys {
		if kind, _ := r.KindOf(k); kind != bridge.KindValue {
			if v, err := r.Get(k); err == nil {
				p.total.Add(arrayBytes(v))
			}
		}
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		kind, err := r.KindOf(k)
		if err != nil {
			return wrapFile(src, err)
		}
		if kind == bridge.KindValue {
			p, err := r.Pickle(k)
			if err != nil {
				return wrapFile(src, err)
			}
			if err := out.Put(k, pyval.Object{Pickle: p}); err != nil {
				return err
			}
			continue
		}
		v, err := r.Get(k)
		if err != nil {
			return wrapFile(src, err)
		}
		if err := out.Put(k, v); err != nil {
			return err
		}
	}
	return out.Close()
}

func arrayBytes(v any) int64 {
	switch v := v.(type) {
	case *bridge.Array:
		return v.NBytes
	case *bridge.Masked:
		return v.Data.NBytes + v.Mask.NBytes
	}
	return 0
}

func wrapFile(name string, err error) error {
	return &fileError{name, err}
}

type fileError struct {
	name string
	err  error
}

func (e *fileError) Error() string { return e.name + ": " + e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// causeError is a message that already says what its sentinel means:
// errors.Is finds the sentinel, the text does not repeat it.
func causeError(msg string, sentinel error) error { return &caused{msg, sentinel} }

type caused struct {
	msg      string
	sentinel error
}

func (e *caused) Error() string { return e.msg }
func (e *caused) Unwrap() error { return e.sentinel }
