package bridge

import (
	"context"
	"fmt"

	"mmpbridge/remote"
)

// Option configures a Reader or a File. Options are checked when they are
// applied: Open, Create, OpenFile, NewReader and Verify return
// ErrInvalidOption for a bad one.
type Option func(*config) error

// ErrInvalidOption: an option's value is out of its range.
var ErrInvalidOption = remote.ErrInvalidOption

// maxAlign is the largest alignment WithAlign accepts.
const maxAlign = 1 << 20

type config struct {
	limits    Limits
	profile   Profile
	align     int
	allowTorn bool // open a torn file so that Repair can mend it
	noIndex   bool // write no index (index.go)
	progress  func(done, total int64) error
	interrupt func() error // WithInterrupt
}

func newConfig(opts []Option) (config, error) {
	c := config{profile: Portable, align: 64}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return c, err
		}
	}
	c.limits = c.limits.withDefaults()
	c.limits.stop = c.interrupt
	return c, nil
}

// WithProgress has the File's long copies — Vacuum, and Put of an *Array
// or *Masked — report the bytes copied so far and the operation's total as
// they go (for a progress bar): done is 0 when an operation starts and
// total when it ends. An error fn returns stops the operation, which then
// changes nothing and returns that error (to cancel).
func WithProgress(fn func(done, total int64) error) Option {
	return func(c *config) error {
		c.progress = fn
		return nil
	}
}

// report tells the progress callback, if any, of done bytes of total; it
// returns the interruption, if any (WithInterrupt), first.
func (c *config) report(done, total int64) error {
	if err := c.stopped(); err != nil {
		return err
	}
	if c.progress == nil {
		return nil
	}
	return c.progress(done, total)
}

// WithInterrupt has long work call stop every so often — the analysis of
// every entry (on the first read of a value), decoding a value, Verify's
// runs, parsing the index of a file of many entries, and the copies of
// Vacuum and of Put of an *Array or *Masked — and end with the error stop
// returns, as soon as it returns one. Work that ends so changes nothing,
// as with a WithProgress error, and the next call starts it over. stop is
// called from the goroutine doing the work, often (thousands of times a
// second): it must be cheap and safe for concurrent use. A later
// WithInterrupt or WithContext replaces it.
func WithInterrupt(stop func() error) Option {
	return func(c *config) error {
		c.interrupt = stop
		return nil
	}
}

// WithContext is WithInterrupt of ctx: long work ends with ctx's error
// (context.Canceled, or context.DeadlineExceeded) once ctx is done. The
// context bounds every later operation of the Reader or File too.
func WithContext(ctx context.Context) Option {
	if ctx.Done() == nil {
		return WithInterrupt(nil) // never done
	}
	return WithInterrupt(ctx.Err)
}

// stopped returns the interruption, if any (WithInterrupt).
func (c *config) stopped() error {
	if c.interrupt == nil {
		return nil
	}
	return c.interrupt()
}

// WithoutIndex makes a File write no index for remote readers (index.go):
// new files then start with their first entry, as mmappickle's do. Files
// written with alignment 1 never carry one.
func WithoutIndex() Option {
	return func(c *config) error { c.noIndex = true; return nil }
}

// indexed tells whether new files get an index.
func (c config) indexed() bool { return !c.noIndex && c.align > 1 }

// WithLimits sets the limits applied to untrusted input; a zero field keeps
// its default, a negative one is an error.
func WithLimits(l Limits) Option {
	return func(c *config) error {
		if l.MaxKeys < 0 || l.MaxValueBytes < 0 || l.MaxDepth < 0 || l.MaxOps < 0 {
			return fmt.Errorf("%w: limits must not be negative: %+v", ErrInvalidOption, l)
		}
		c.limits = l
		return nil
	}
}

// WithProfile sets the array encoding new entries are written in (default
// Portable).
func WithProfile(p Profile) Option {
	return func(c *config) error {
		if p != Portable && p != Mmappickle {
			return fmt.Errorf("%w: unknown profile %d", ErrInvalidOption, int(p))
		}
		c.profile = p
		return nil
	}
}

// WithAlign sets the alignment of array data in new entries, in bytes: a
// power of two from 1 (no alignment) to maxAlign; the default is 64.
// Alignment is obtained with deleted padding entries, invisible to every
// reader.
func WithAlign(n int) Option {
	return func(c *config) error {
		if n < 1 || n > maxAlign || n&(n-1) != 0 {
			return fmt.Errorf("%w: alignment %d: want a power of two from 1 to %d", ErrInvalidOption, n, maxAlign)
		}
		c.align = n
		return nil
	}
}

// Limits bound what a reader will do on behalf of an untrusted file. The
// zero value of a field means its default.
type Limits struct {
	// MaxKeys is the largest number of entries (live or dead) a file may
	// have. Default 10,000,000.
	MaxKeys int
	// MaxValueBytes bounds the memory one value may take when decoded:
	// strings, bytes and the copies pickle.load would make, each use of a
	// part shared through the memo counted. Array data, which stays in the
	// file, does not count. Default 256 MiB.
	MaxValueBytes int64
	// MaxDepth is the deepest nesting of containers in a decoded value.
	// Default 1,000 (CPython's recursion limit).
	MaxDepth int
	// MaxOps is the largest number of pickle opcodes decoded for one value;
	// it bounds the objects a value builds (at most one per opcode).
	// Default 100,000,000.
	MaxOps int64

	// stop is WithInterrupt's function (nil: none), here so that every
	// machine made with the limits polls it.
	stop func() error
}

const (
	defaultMaxKeys       = 10_000_000
	defaultMaxValueBytes = 256 << 20
	defaultMaxDepth      = 1000
	defaultMaxOps        = 100_000_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxKeys <= 0 {
		l.MaxKeys = defaultMaxKeys
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = defaultMaxValueBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxOps <= 0 {
		l.MaxOps = defaultMaxOps
	}
	return l
}

// AllowTorn lets OpenFile and NewFile open a file torn by an interrupted
// write (reads then fail with ErrTorn) so that File.Repair can mend it:
//
//	f, err := bridge.OpenFile(name, os.O_RDWR, 0, bridge.AllowTorn())
//	...
//	rep, err := f.Repair()
//
// An empty file is then refused (ErrNotMmappickle) instead of being made a
// new one.
func AllowTorn() Option { return func(c *config) error { c.allowTorn = true; return nil } }
