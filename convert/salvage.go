package convert

import (
	"context"
	"fmt"
	"os"

	"mmpbridge/bridge"
)

// Salvage writes to dst every entry of the damaged mmappickle file src that
// reads and verifies on its own (see bridge.Salvage) and returns the report
// of what was saved and what was lost. dst appears whole or not at all
// (written beside it, renamed when complete); an existing dst is refused
// with ErrExists unless force. opts apply to dst (profile, alignment).
func Salvage(ctx context.Context, src, dst string, force bool, opts ...bridge.Option) (*bridge.SalvageReport, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", src)
	}
	if dt, err := os.Stat(dst); err == nil && os.SameFile(st, dt) {
		return nil, &UsageError{Msg: fmt.Sprintf("salvage: %s and %s are the same file: write the salvaged entries to another file", src, dst)}
	}
	var rep *bridge.SalvageReport
	err = writeAtomic(ctx, dst, force, false, func(tmp string) error {
		stop := bridge.WithProgress(func(done, total int64) error { return ctx.Err() })
		out, err := bridge.OpenFile(tmp, os.O_RDWR, 0, append(append([]bridge.Option(nil), opts...), stop)...)
		if err != nil {
			return err
		}
		defer out.Close()
		if rep, err = bridge.Salvage(ctx, f, st.Size(), out, bridge.WithContext(ctx)); err != nil {
			return wrapFile(src, err)
		}
		return out.Close()
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}
