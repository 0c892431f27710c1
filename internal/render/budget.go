package render

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"mmpbridge/bridge"
)

// DefaultMaxBytes bounds the bytes one command (or one libmmp call)
// renders: 256 MiB, the size of the bridge's default
// Limits.MaxValueBytes. Decoding a value counts what it builds, each use
// of a part shared through the memo included, against that limit;
// rendering it can write several times more (a control character is 1
// byte decoded and 6 bytes of JSON), so what is rendered counts again,
// against a limit of the same size.
const DefaultMaxBytes = 256 << 20

// Budget counts the bytes rendered for one command, across all its keys,
// against a limit, and carries the command's context: rendering stops when
// it is cancelled. A Budget is used by one goroutine.
type Budget struct {
	ctx  context.Context
	max  int64
	used int64
}

// NewBudget returns a budget of max bytes (DefaultMaxBytes if max <= 0)
// that stops when ctx is cancelled.
func NewBudget(ctx context.Context, max int64) *Budget {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	if ctx == nil {
		ctx = context.Background()
	}
	return &Budget{ctx: ctx, max: max}
}

// Used is the bytes rendered so far.
func (b *Budget) Used() int64 { return b.used }

// Max is the budget's limit.
func (b *Budget) Max() int64 { return b.max }

// Context is the budget's context.
func (b *Budget) Context() context.Context { return b.ctx }

// LimitError is what rendering past a Budget returns; it wraps
// bridge.ErrLimit.
type LimitError struct {
	Max int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("rendering it writes more than %d bytes (the limit on what one command or call renders, the size of the bridge's MaxValueBytes)", e.Max)
}

func (e *LimitError) Unwrap() error { return bridge.ErrLimit }

// emit renders one piece (a value, an entry) through fn twice: first
// counting the bytes without keeping them, refusing past what is left of
// the budget, then writing them to w. Nothing is written for a piece that
// does not fit. It returns fn's exactness flag (see JSONValue).
func (b *Budget) emit(w io.Writer, fn func(o *out)) (exact bool, err error) {
	return b.emitSized(func(int64) io.Writer { return w }, fn)
}

// emitSized is emit with the writer given by sink once the size is known.
func (b *Budget) emitSized(sink func(n int64) io.Writer, fn func(o *out)) (exact bool, err error) {
	if err := b.ctx.Err(); err != nil {
		return false, err
	}
	left := b.max - b.used
	count := &out{ctx: b.ctx, limit: left, exact: true}
	fn(count)
	if count.err != nil {
		if _, ok := count.err.(*LimitError); ok {
			count.err = &LimitError{Max: b.max}
		}
		return false, count.err
	}
	write := &out{ctx: b.ctx, limit: left, w: sink(count.n), exact: true, leaves: count.leaves}
	fn(write)
	write.flush()
	if write.err != nil {
		return false, write.err
	}
	b.used += write.n
	return write.exact, nil
}

// out is where renderers write: it counts every byte against limit, keeps
// them (w nil and keep), passes them on to w in pieces, or drops them
// (counting only), and checks the context every piece and every few
// thousand values. Its error is sticky: renderers stop at the next check.
type out struct {
	ctx   context.Context
	w     io.Writer
	keep  bool
	buf   []byte
	n     int64
	limit int64
	steps int
	err   error
	exact bool // no part became null for JSON (jsonValue)
	// leaves are the long leaves remembered (leaf), shared by the two
	// passes of emit; cached is the bytes of those kept.
	leaves map[sizeKey]*leaf
	cached int64
}

const outPiece = 32 << 10

func (o *out) grew() {
	if o.n > o.limit && o.err == nil {
		o.err = &LimitError{Max: o.limit}
	}
	if len(o.buf) >= outPiece && !o.keep {
		o.flush()
	}
}

func (o *out) flush() {
	if o.err == nil {
		o.err = o.ctx.Err()
	}
	if o.w != nil && o.err == nil && len(o.buf) > 0 {
		_, o.err = o.w.Write(o.buf)
	}
	o.buf = o.buf[:0]
}

// stopped tells a renderer to stop: an error, or the limit passed. Each
// call is a step; the context is checked every 4,096.
func (o *out) stopped() bool {
	if o.steps++; o.steps&4095 == 0 && o.err == nil {
		o.err = o.ctx.Err()
	}
	return o.err != nil
}

// counting: the bytes are counted and dropped (emit's first pass).
func (o *out) counting() bool { return o.w == nil && !o.keep }

func (o *out) add(n int) {
	o.n += int64(n)
	if o.n > o.limit && o.err == nil {
		o.err = &LimitError{Max: o.limit}
	}
}

func (o *out) str(s string) {
	if o.err != nil {
		return
	}
	if o.counting() {
		o.add(len(s))
		return
	}
	o.buf = append(o.buf, s...)
	o.n += int64(len(s))
	o.grew()
}

func (o *out) byte(c byte) {
	if o.err != nil {
		return
	}
	if o.counting() {
		o.add(1)
		return
	}
	o.buf = append(o.buf, c)
	o.n++
	o.grew()
}

func (o *out) rune(r rune) {
	if o.err != nil {
		return
	}
	if o.counting() {
		o.add(utf8.RuneLen(r))
		return
	}
	n := len(o.buf)
	o.buf = utf8.AppendRune(o.buf, r)
	o.n += int64(len(o.buf) - n)
	o.grew()
}

const (
	hexDigits      = "0123456789abcdef"
	upperHexDigits = "0123456789ABCDEF"
)

// esc writes prefix then v in width hex digits: \x41, \u00e9.
func (o *out) esc(prefix string, v rune, width int) { o.escDigits(prefix, v, width, hexDigits) }

func (o *out) escDigits(prefix string, v rune, width int, digits string) {
	if o.err != nil {
		return
	}
	if o.counting() {
		o.add(len(prefix) + width)
		return
	}
	o.buf = append(o.buf, prefix...)
	for i := width - 1; i >= 0; i-- {
		o.buf = append(o.buf, digits[(v>>(4*i))&0xf])
	}
	o.n += int64(len(prefix) + width)
	o.grew()
}

// A long string shared through the memo is the same Go string at each use
// (a bytes object, a numpy scalar the same bytes). Such a leaf is
// remembered by its data pointer, its length and how it is rendered: while
// counting, its size, so that its next uses cost nothing to count; while
// writing, for a leaf used more than once, its rendered bytes (up to
// maxLeafCache each and maxCache in all), copied at its next uses.
type sizeKey struct {
	p   *byte
	n   int
	how byte // 'r' repr, 'j' JSON, 'b' bytes repr, 'U'/'u' str_ repr/JSON
}

type leaf struct {
	size  int64
	uses  int
	bytes []byte
}

const (
	rememberSize = 64
	maxLeafCache = 1 << 20
	maxCache     = 16 << 20
)

// leaf renders a leaf of n bytes through fn, remembering it by k.
func (o *out) leaf(k sizeKey, n int, fn func(o *out)) {
	if n < rememberSize || o.err != nil {
		fn(o)
		return
	}
	if o.counting() {
		if e, ok := o.leaves[k]; ok {
			e.uses++
			o.add(int(e.size))
			return
		}
		before := o.n
		fn(o)
		if o.err == nil {
			if o.leaves == nil {
				o.leaves = map[sizeKey]*leaf{}
			}
			o.leaves[k] = &leaf{size: o.n - before, uses: 1}
		}
		return
	}
	e := o.leaves[k] // from the counting pass
	if e == nil || e.uses < 2 || e.size > maxLeafCache || e.bytes == nil && o.cached+e.size > maxCache {
		fn(o)
		return
	}
	if e.bytes == nil {
		sub := &out{ctx: o.ctx, keep: true, limit: e.size, exact: true}
		fn(sub)
		if sub.err != nil {
			o.err = sub.err
			return
		}
		e.bytes = sub.buf
		o.cached += e.size
	}
	o.raw(e.bytes)
}

func (o *out) raw(b []byte) {
	if o.err != nil {
		return
	}
	if o.counting() {
		o.add(len(b))
		return
	}
	o.buf = append(o.buf, b...)
	o.n += int64(len(b))
	o.grew()
}

// nextRune decodes the code point at s[i:] of a string in the bridge's
// canonical form (UTF-8 with lone surrogates as three-byte sequences), as
// pyrepr.Runes does, without making a slice of all of them.
func nextRune(s string, i int) (rune, int) {
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n == 1 && i+2 < len(s) && s[i] == 0xed {
		r = rune(s[i]&0x0f)<<12 | rune(s[i+1]&0x3f)<<6 | rune(s[i+2]&0x3f)
		n = 3
	}
	return r, n
}

// pyStr writes Python's repr of a str (pyrepr.Str), stopping at the limit.
func (o *out) pyStr(s string) {
	o.leaf(sizeKey{unsafe.StringData(s), len(s), 'r'}, len(s), func(o *out) {
		quote := '\''
		if strings.Contains(s, "'") && !strings.Contains(s, "\"") {
			quote = '"'
		}
		o.rune(quote)
		for i := 0; i < len(s) && o.err == nil; {
			r, n := nextRune(s, i)
			i += n
			o.pyRune(r, quote)
		}
		o.rune(quote)
	})
}

func (o *out) pyRune(r, quote rune) {
	switch {
	case r == '\\':
		o.str(`\\`)
	case r == quote:
		o.byte('\\')
		o.rune(quote)
	case r == '\n':
		o.str(`\n`)
	case r == '\r':
		o.str(`\r`)
	case r == '\t':
		o.str(`\t`)
	case r == ' ' || (r < 0xd800 || r > 0xdfff) && unicode.IsPrint(r):
		o.rune(r)
	case r < 0x100:
		o.esc(`\x`, r, 2)
	case r < 0x10000:
		o.esc(`\u`, r, 4)
	default:
		o.esc(`\U`, r, 8)
	}
}

// pyBytes writes Python's repr of a bytes object (pyrepr.Bytes).
func (o *out) pyBytes(p []byte) {
	o.leaf(sizeKey{unsafe.SliceData(p), len(p), 'b'}, len(p), func(o *out) {
		quote := byte('\'')
		if bytes.IndexByte(p, '\'') >= 0 && bytes.IndexByte(p, '"') < 0 {
			quote = '"'
		}
		o.byte('b')
		o.byte(quote)
		for _, c := range p {
			if o.err != nil {
				return
			}
			switch {
			case c == '\\':
				o.str(`\\`)
			case c == quote:
				o.byte('\\')
				o.byte(quote)
			case c == '\n':
				o.str(`\n`)
			case c == '\r':
				o.str(`\r`)
			case c == '\t':
				o.str(`\t`)
			case c < 0x20 || c >= 0x7f:
				o.esc(`\x`, rune(c), 2)
			default:
				o.byte(c)
			}
		}
		o.byte(quote)
	})
}

// jsonStr writes a str as Python's json module writes it (ensure_ascii
// off): lone surrogates as \udXXX escapes.
func (o *out) jsonStr(s string) {
	o.leaf(sizeKey{unsafe.StringData(s), len(s), 'j'}, len(s), func(o *out) {
		o.byte('"')
		for i := 0; i < len(s) && o.err == nil; {
			r, n := nextRune(s, i)
			i += n
			o.jsonRune(r)
		}
		o.byte('"')
	})
}

func (o *out) jsonRune(r rune) {
	switch {
	case r == '"':
		o.str(`\"`)
	case r == '\\':
		o.str(`\\`)
	case r == '\n':
		o.str(`\n`)
	case r == '\r':
		o.str(`\r`)
	case r == '\t':
		o.str(`\t`)
	case r < 0x20 || r >= 0xd800 && r <= 0xdfff:
		o.esc(`\u`, r, 4)
	default:
		o.rune(r)
	}
}
