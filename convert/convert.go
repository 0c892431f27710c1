package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"mmpbridge/remote"

	"mmpbridge/bridge"
	"mmpbridge/internal/atomicfile"
)

// Options control a conversion.
type Options struct {
	// Profile is the array encoding of mmappickle outputs (default portable).
	Profile bridge.Profile
	// Align is the alignment of array data in mmappickle outputs: a power
	// of two from 1 (none) to 1 MiB; 0 means the default, 64.
	Align int
	// Force allows replacing an existing destination.
	Force bool
	// Progress, if set, is called as array bytes are written, with the
	// bytes done so far and the total. It may be called from several
	// goroutines at once (parallel decompression).
	Progress func(done, total int64)
	// Key names the array: the key an .npy file is stored under (default:
	// the file's stem), or the key extracted from an mmappickle file to .npy.
	Key string
	// Compress deflates the members of an .npz output.
	Compress bool
	// SkipUnsupported converts what can be converted and reports the rest
	// through Skipped instead of failing.
	SkipUnsupported bool
	// Skipped, if set, is told of every member, dataset or key left out:
	// unsupported ones under SkipUnsupported, and generic values an array
	// format cannot hold.
	Skipped func(name, reason string)

	// VlenAsList reads HDF5 variable-length string datasets as a list of
	// str (a generic value) instead of a numpy '<U' array of the longest
	// string's length.
	VlenAsList bool
	// Layout chooses the storage of HDF5 outputs: LayoutKeep (the default)
	// restores the chunk shape and filters an HDF5 source recorded;
	// LayoutContiguous writes every dataset contiguous.
	Layout Layout

	// scratchDir is where scratch files go: beside the destination.
	scratchDir string
	// outFile is the path by which workers open the mmappickle output
	// again ("" when it cannot be: they write through its slots); unset,
	// the output's name.
	outFile *string
	// inFile is the same for an mmappickle input read by a writer.
	inFile *string
}

// inputPath is the path by which a writer opens the mmappickle input src
// again to copy its bytes ("" when it cannot: read through the Reader).
func (o *Options) inputPath(src string) string {
	if o.inFile != nil {
		return *o.inFile
	}
	if remote.IsURL(src) {
		return ""
	}
	return src
}

// outPath is the path by which workers open out for writing of their own.
func (o *Options) outPath(out *bridge.File) string {
	if o.outFile != nil {
		return *o.outFile
	}
	return out.Name()
}

// Layout is the storage of HDF5 output datasets.
type Layout int

const (
	LayoutKeep       Layout = iota // as the source recorded it (chunks, gzip level, shuffle), else contiguous
	LayoutContiguous               // every dataset contiguous, unfiltered
)

// ParseLayout parses a --layout value: keep or contiguous.
func ParseLayout(s string) (Layout, error) {
	switch strings.ToLower(s) {
	case "keep", "":
		return LayoutKeep, nil
	case "contiguous":
		return LayoutContiguous, nil
	}
	return 0, &UsageError{Msg: fmt.Sprintf("unknown layout %q (want keep or contiguous)", s)}
}

// UnsupportedError: a member, dataset or key holds something the conversion
// cannot carry exactly (object arrays, structured dtypes, variable-length
// strings, references, keys over 255 bytes). Options.SkipUnsupported turns
// these into Options.Skipped reports.
type UnsupportedError struct {
	File   string // the input file
	Member string // how the item is described: `member "x.npy"`, `dataset "/a/b"`, `key "k"`
	Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.File, e.Member, e.Reason)
}

// skip reports an unsupported item, or returns it as the error when
// SkipUnsupported is not set.
func (o *Options) skip(err *UnsupportedError) error {
	if !o.SkipUnsupported {
		return err
	}
	if o.Skipped != nil {
		o.Skipped(err.Member, err.Reason)
	}
	return nil
}

// ErrExists: the destination exists and Options.Force is not set.
var ErrExists = errors.New("destination exists")

// ErrUnknownFormat: a file's format cannot be told from its name.
var ErrUnknownFormat = errors.New("unknown format")

// ErrAmbiguousKey: an .npy output from a file of several arrays, and no
// key named.
var ErrAmbiguousKey = errors.New("several arrays")

// UsageError is a mistake in how the conversion was asked for (unknown
// format, bad option), as opposed to a problem with the input.
type UsageError struct {
	Msg string
	Err error // a sentinel (ErrUnknownFormat, ErrAmbiguousKey), or nil
}

func (e *UsageError) Error() string { return e.Msg }
func (e *UsageError) Unwrap() error { return e.Err }

// Format is a file format a conversion reads or writes.
type Format string

const (
	Mmpkl Format = "mmpkl"
	Npy   Format = "npy"
	Npz   Format = "npz"
	HDF5  Format = "hdf5"
)

// FormatOf guesses a format from a file name's extension.
func FormatOf(name string) (Format, error) {
	ext := filepath.Ext(name)
	if remote.IsURL(name) {
		// The path's extension: not the query's (a presigned URL's
		// signature) nor the fragment's.
		if u, err := url.Parse(name); err == nil {
			ext = path.Ext(u.Path)
		}
	}
	switch strings.ToLower(ext) {
	case ".mmpkl", ".pkl", ".pickle", ".mmap":
		return Mmpkl, nil
	case ".npy":
		return Npy, nil
	case ".npz":
		return Npz, nil
	case ".h5", ".hdf5", ".he5":
		return HDF5, nil
	}
	return "", &UsageError{Msg: fmt.Sprintf("%s: cannot tell the format from the extension %q", name, ext), Err: ErrUnknownFormat}
}

// ParseFormat parses a --from/--to value.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "mmpkl", "pkl", "mmappickle", "pickle":
		return Mmpkl, nil
	case "npy":
		return Npy, nil
	case "npz":
		return Npz, nil
	case "h5", "hdf5":
		return HDF5, nil
	}
	return "", &UsageError{Msg: fmt.Sprintf("unknown format %q (want mmpkl, npy, npz or hdf5)", s)}
}

// File converts src to dst. from and to may be empty to guess from the
// extensions. On any error dst is left as it was (absent, or the file it
// was), and the error names the user's files, never a temporary one.
func File(ctx context.Context, src, dst string, from, to Format, opt Options) error {
	return outputError(convertFile(ctx, src, dst, from, to, opt), dst)
}

// outputError words the failures of writing dst: a full file system or
// quota is dst's, whatever temporary file met it, and nothing was written.
func outputError(err error, dst string) error {
	var se *spaceError
	if errors.As(err, &se) {
		return &fileError{name: dst, err: se}
	}
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG} {
		if errors.Is(err, e) {
			return &fileError{name: dst, err: fmt.Errorf("%w (nothing written)", e)}
		}
	}
	return err
}

func convertFile(ctx context.Context, src, dst string, from, to Format, opt Options) error {
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
	p := &progress{ctx: ctx, fn: opt.Progress}
	opt.scratchDir = filepath.Dir(dst)
	switch {
	case from == Mmpkl && to == Mmpkl:
		return writeAtomic(ctx, dst, opt.Force, false, func(tmp string) error {
			return mmpklToMmpkl(ctx, src, tmp, opt)
		})
	case to == Mmpkl:
		read, ok := toMmpkl[from]
		if !ok {
			break
		}
		return writeAtomic(ctx, dst, opt.Force, false, func(tmp string) error {
			out, err := createMmpkl(tmp, opt)
			if err != nil {
				return err
			}
			defer out.Close()
			if err := read(ctx, src, out, &opt, p); err != nil {
				return err
			}
			return out.Close()
		})
	case from == Mmpkl:
		write, ok := fromMmpkl[to]
		if !ok {
			break
		}
		r, c, err := bridge.OpenReader(ctx, src)
		if err != nil {
			return err
		}
		defer c.Close()
		return writeAtomic(ctx, dst, opt.Force, to == HDF5, func(tmp string) error {
			return write(ctx, src, r, tmp, &opt, p)
		})
	default:
		// Neither side is mmappickle: through an unnamed scratch file.
		read, rok := toMmpkl[from]
		write, wok := fromMmpkl[to]
		if !rok || !wok {
			break
		}
		return writeAtomic(ctx, dst, opt.Force, to == HDF5, func(tmp string) error {
			r, c, reopen, err := readScratch(ctx, src, read, opt, p)
			if err != nil {
				return err
			}
			defer c.Close()
			wopt := opt
			wopt.inFile = &reopen
			return write(ctx, src, r, tmp, &wopt, p)
		})
	}
	return &UsageError{Msg: fmt.Sprintf("conversion from %s to %s is not supported by this build", from, to)}
}

// readScratch reads src with read into an unnamed mmappickle scratch file
// in opt.scratchDir (the portable profile: every array as it is, Fortran
// order kept), and returns a Reader of it; closing the Closer drops it.
//
// reopen is the path by which the scratch file can be opened again ("" when
// it cannot).
func readScratch(ctx context.Context, src string, read func(context.Context, string, *bridge.File, *Options, *progress) error, opt Options, p *progress) (r *bridge.Reader, c io.Closer, reopen string, err error) {
	sf, err := atomicfile.Scratch(opt.scratchDir)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: a scratch file in %s: %w", src, opt.scratchDir, err)
	}
	out, err := bridge.NewFile(sf, true, bridge.WithProfile(bridge.Portable), bridge.WithoutIndex())
	if err != nil {
		sf.Close()
		return nil, nil, "", err
	}
	opt.Profile = bridge.Portable
	opt.Align = 0
	if p := fmt.Sprintf("/proc/self/fd/%d", sf.Fd()); fileExists(p) {
		reopen = p
	}
	opt.outFile = &reopen
	if err := read(ctx, src, out, &opt, p); err != nil {
		out.Close()
		return nil, nil, "", err
	}
	r, err = out.Reader()
	if err != nil {
		out.Close()
		return nil, nil, "", fmt.Errorf("%s: %w", src, err)
	}
	return r, out, reopen, nil
}

// Put stores the array of the .npy file src under key in the open file out
// (an in-place edit, crash-safe as every bridge append).
func Put(ctx context.Context, out *bridge.File, key, src string, opt Options) error {
	read, ok := toMmpkl[Npy]
	if !ok {
		return &UsageError{Msg: "this build cannot read .npy files"}
	}
	opt.Key = key
	opt.scratchDir = filepath.Dir(out.Name())
	return read(ctx, src, out, &opt, &progress{ctx: ctx, fn: opt.Progress})
}

// The converters of each format register here (in their init functions,
// so that a build without HDF5 support simply lacks the entry).
var (
	// toMmpkl[f] reads src in format f and stores its arrays in out.
	toMmpkl = map[Format]func(ctx context.Context, src string, out *bridge.File, opt *Options, p *progress) error{}
	// fromMmpkl[f] writes the arrays of in (read from the file src) to the
	// new file dst in format f.
	fromMmpkl = map[Format]func(ctx context.Context, src string, in *bridge.Reader, dst string, opt *Options, p *progress) error{}
)

// writeAtomic runs write on a new file that becomes dst only once complete
// and synced (unnamed until then where the system allows: a kill at any
// moment leaves nothing; see internal/atomicfile). write gets a path it
// can open (a real name, hidden beside dst, when named: libhdf5 needs
// one); errors naming that path name dst instead. On any failure (or
// cancellation) dst is untouched.
func writeAtomic(ctx context.Context, dst string, force, named bool, write func(tmp string) error) error {
	if !force {
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("%s: %w", dst, ErrExists)
		}
	}
	create := atomicfile.Create
	if named {
		create = atomicfile.CreateNamed
	}
	f, err := create(dst, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := write(f.Path()); err != nil {
		return f.Rename(err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.Commit(force); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: %w", dst, ErrExists)
		}
		return f.Rename(err)
	}
	return nil
}

// ensureSpace refuses, before anything is written, a conversion whose array
// data cannot fit on the destination's file system: a small input can
// declare huge arrays (an HDF5 dataset with no stored data), and writing
// them would fill the disk before failing.
func ensureSpace(src string, out *bridge.File, need int64) error {
	free, ok := freeSpace(out.Name())
	if ok && need > free {
		return &spaceError{src: src, need: need, free: free}
	}
	return nil
}

// spaceError: the arrays cannot fit on the destination's file system.
type spaceError struct {
	src        string
	need, free int64
}

func (e *spaceError) Error() string {
	return fmt.Sprintf("the arrays of %s need %d bytes, the file system has %d free (nothing written)", e.src, e.need, e.free)
}

func (e *spaceError) Unwrap() error { return syscall.ENOSPC }

// progress counts bytes through readers and reports them. Safe for
// concurrent use.
type progress struct {
	ctx   context.Context
	done  atomic.Int64
	total atomic.Int64
	fn    func(done, total int64)
}

// add counts n bytes done and reports.
func (p *progress) add(n int64) {
	d := p.done.Add(n)
	if p.fn != nil && n > 0 {
		p.fn(d, p.total.Load())
	}
}

// operation is a bridge.WithProgress callback: the bytes each of the
// File's copies reports (from 0 at its start) are added to p, and a
// cancelled context stops the copy.
func (p *progress) operation() func(done, total int64) error {
	var last int64
	return func(done, _ int64) error {
		if done < last {
			last = 0
		}
		p.add(done - last)
		last = done
		return p.ctx.Err()
	}
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
	pr.p.add(int64(n))
	return n, err
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}
