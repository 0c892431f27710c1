package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"mmpbridge/bridge"
)

// Options control a conversion.
type Options struct {
	// Profile is the array encoding of mmappickle outputs (default portable).
	Profile bridge.Encoding
	// Align is the alignment of array data in mmappickle outputs (0: 64).
	Align int
	// Force allows replacing an existing destination.
	Force bool
	// Progress, if set, is called as array bytes are written, with the
	// bytes done so far and the total.
	Progress func(done, total int64)
}

// ErrExists: the destination exists and Options.Force is not set.
var ErrExists = errors.New("destination exists (use --force to replace it)")

// UsageError is a mistake in how the conversion was asked for (unknown
// format, bad option), as opposed to a problem with the input.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Format is a file format a conversion reads or writes.
type Format string

const (
	Mmpkl Format = "mmpkl"
)

// FormatOf guesses a format from a file name's extension.
func FormatOf(name string) (Format, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".mmpkl", ".pkl", ".pickle", ".mmap":
		return Mmpkl, nil
	}
	return "", &UsageError{fmt.Sprintf("%s: cannot tell the format from the extension %q", name, filepath.Ext(name))}
}

// ParseFormat parses a --from/--to value.
func ParseFormat(s string) (Format, error) {
	switch Format(strings.ToLower(s)) {
	case Mmpkl, "pkl", "mmappickle":
		return Mmpkl, nil
	}
	return "", &UsageError{fmt.Sprintf("unknown format %q (want mmpkl)", s)}
}

// File converts src to dst. from and to may be empty to guess from the
// extensions.
func File(ctx context.Context, src, dst string, from, to Format, opt Options) error {
	var err error
	if from == "" {
		if from, err = FormatOf(src); err != nil {
			return err
		}
	}
	if to == "" {
		if to, err = FormatOf(dst); err != nil {
			return err
		}
	}
	if from == Mmpkl && to == Mmpkl {
		return writeAtomic(ctx, dst, opt.Force, func(tmp string) error {
			return mmpklToMmpkl(ctx, src, tmp, opt)
		})
	}
	return &UsageError{fmt.Sprintf("conversion from %s to %s is not supported", from, to)}
}

// writeAtomic runs write on a temporary file beside dst, syncs it and renames
// it to dst. On any failure (or cancellation) the temporary file is removed
// and dst is untouched.
func writeAtomic(ctx context.Context, dst string, force bool, write func(tmp string) error) (err error) {
	if !force {
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("%s: %w", dst, ErrExists)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if !force {
		// Refuse to replace a file that appeared meanwhile.
		if err := os.Link(tmp, dst); err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s: %w", dst, ErrExists)
			}
			return err
		}
		return os.Remove(tmp)
	}
	return os.Rename(tmp, dst)
}

func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	return f.Sync()
}

// progress counts bytes through readers and reports them.
type progress struct {
	ctx   context.Context
	done  int64
	total int64
	fn    func(done, total int64)
}

func (p *progress) reader(r io.Reader) io.Reader {
	if p.fn == nil && p.ctx.Done() == nil {
		return r
	}
	return &progressReader{r: r, p: p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	if err := pr.p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := pr.r.Read(b)
	pr.p.done += int64(n)
	if pr.p.fn != nil && n > 0 {
		pr.p.fn(pr.p.done, pr.p.total)
	}
	return n, err
}
