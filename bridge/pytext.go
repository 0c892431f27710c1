package bridge

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// This file decodes the text arguments of pickle opcodes exactly as
// CPython's _pickle.c does (measured on CPython 3.11): the protocol-0 INT,
// LONG and FLOAT lines (C's strtol, PyLong_FromString, PyOS_string_to_double,
// each stopping at a NUL byte), GET/PUT indices, STRING's quoted and escaped
// literal, UNICODE's raw-unicode-escape, and UTF-8 with surrogates allowed.
// Strings are returned in this package's canonical form: UTF-8, with lone
// surrogates (which Python strings may hold) encoded as three-byte
// sequences, as Python's "surrogatepass" does, so that two strings are
// equal in Python exactly when their canonical forms are equal.

// maxStrDigits is CPython's default limit on the digits of an int converted
// from or to decimal text (sys.get_int_max_str_digits(), since 3.11).
const maxStrDigits = 4300

// cString cuts b at its first NUL byte, as C string functions see it.
func cString(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// pyInt is a Python int: small when big is nil.
type pyInt struct {
	small int64
	big   *big.Int
}

func (v pyInt) bigInt() *big.Int {
	if v.big != nil {
		return v.big
	}
	return big.NewInt(v.small)
}

func normInt(b *big.Int) pyInt {
	if b.IsInt64() {
		return pyInt{small: b.Int64()}
	}
	return pyInt{big: b}
}

// parseIntLine decodes the argument of INT (the line without its '\n'):
// C's strtol with base 0 first (octal for a leading 0, hex for 0x, leading
// blanks and a sign allowed), then, if that does not consume the line or
// overflows, PyLong_FromString with base 0. A three-character line worth 0
// or 1 ("00", "01", "-0", " 1", ...) is a bool.
func parseIntLine(line []byte) (v pyInt, isBool bool, err error) {
	if len(line) == 0 {
		return v, false, errors.New("pickle data was truncated (empty INT line)")
	}
	s := cString(append(append([]byte(nil), line...), '\n'))
	x, end, overflow := strtol(s)
	if !overflow && (end == len(s) || s[end] == '\n') {
		if len(line) == 2 && (x == 0 || x == 1) {
			return pyInt{small: x}, true, nil
		}
		return pyInt{small: x}, false, nil
	}
	b, ok := pyLongFromString(s, 0)
	if !ok {
		return v, false, errors.New("could not convert string to int")
	}
	if b == nil {
		return v, false, fmt.Errorf("exceeds the limit (%d digits) for integer string conversion", maxStrDigits)
	}
	return normInt(b), false, nil
}

// strtol is glibc's strtol(s, &end, 0) for a 64-bit long: it returns the
// value, the index where parsing stopped (0 when no digits were found) and
// whether the value overflowed.
func strtol(s []byte) (v int64, end int, overflow bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base := uint64(10)
	switch {
	case i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && i+2 < len(s) && hexVal(s[i+2]) >= 0:
		base, i = 16, i+2
	case i < len(s) && s[i] == '0':
		base = 8
	}
	start := i
	var u uint64
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	for ; i < len(s); i++ {
		d := hexVal(s[i])
		if d < 0 || uint64(d) >= base {
			break
		}
		if !overflow {
			if u > (limit-uint64(d))/base {
				overflow = true
			} else {
				u = u*base + uint64(d)
			}
		}
	}
	if i == start {
		return 0, 0, false
	}
	if neg {
		return int64(-u), i, overflow
	}
	return int64(u), i, overflow
}

func isHex(c byte) bool { return hexVal(c) >= 0 && hexVal(c) < 16 }

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return -1
}

// pyLongFromString is CPython's PyLong_FromString(s, NULL, base) for base 0
// or 10, with s already cut at its NUL: blanks, a sign, for base 0 an
// optional 0x/0o/0b prefix (a decimal number may not start with 0 unless
// it is zero), digits with single underscores between them, blanks, then
// the end. ok is false for an invalid literal; a nil result with ok means
// the decimal digits exceed maxStrDigits.
func pyLongFromString(s []byte, base int) (b *big.Int, ok bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	prefixed := false
	if base == 0 {
		base = 10
		if i+1 < len(s) && s[i] == '0' {
			switch s[i+1] {
			case 'x', 'X':
				base, prefixed = 16, true
			case 'o', 'O':
				base, prefixed = 8, true
			case 'b', 'B':
				base, prefixed = 2, true
			}
		}
		if prefixed {
			i += 2
		} else if i < len(s) && s[i] == '0' {
			// Base 0: "0", "00", "0_0" only; other leading zeros are invalid.
			j := i
			for j < len(s) && (s[j] == '0' || s[j] == '_') {
				j++
			}
			if j < len(s) && hexVal(s[j]) >= 0 && hexVal(s[j]) < 10 {
				return nil, false
			}
		}
	}
	digits := make([]byte, 0, len(s)-i)
	prevUnderscore := false
	if prefixed && i < len(s) && s[i] == '_' {
		i++ // "0x_1f" is valid: one underscore may follow the prefix
	}
	for ; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			if prevUnderscore || len(digits) == 0 {
				return nil, false
			}
			prevUnderscore = true
			continue
		}
		d := hexVal(c)
		if d < 0 || d >= base {
			break
		}
		digits = append(digits, c)
		prevUnderscore = false
	}
	if len(digits) == 0 || prevUnderscore {
		return nil, false
	}
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	if i != len(s) {
		return nil, false
	}
	if base == 10 && len(digits) > maxStrDigits {
		return nil, true
	}
	b, ok = new(big.Int).SetString(string(digits), base)
	if !ok {
		return nil, false
	}
	if neg {
		b.Neg(b)
	}
	return b, true
}

// parseLongLine decodes the argument of LONG: a trailing 'L' is dropped,
// then PyLong_FromString with base 0.
func parseLongLine(line []byte) (pyInt, error) {
	if len(line) == 0 {
		return pyInt{}, errors.New("pickle data was truncated (empty LONG line)")
	}
	s := append(append([]byte(nil), line...), '\n')
	if s[len(s)-2] == 'L' {
		s = s[:len(s)-2]
	}
	b, ok := pyLongFromString(cString(s), 0)
	if !ok {
		return pyInt{}, errors.New("invalid literal for int() with base 0")
	}
	if b == nil {
		return pyInt{}, fmt.Errorf("exceeds the limit (%d digits) for integer string conversion", maxStrDigits)
	}
	return normInt(b), nil
}

// parseMemoLine decodes the index of GET or PUT: PyLong_FromString with
// base 10 (leading zeros, blanks, a sign and underscores allowed). ok is
// false when Python raises; the index may be negative or huge.
func parseMemoLine(line []byte) (idx *big.Int, ok bool) {
	b, ok := pyLongFromString(cString(line), 10)
	return b, ok && b != nil
}

// parseFloatLine decodes the argument of FLOAT: PyOS_string_to_double,
// which must stop at the end of the line or at a NUL. No blanks, no
// underscores, no hex; "inf", "infinity" and "nan" in any case, signed; an
// overflow is an error (an underflow gives zero).
func parseFloatLine(line []byte) (float64, error) {
	if len(line) == 0 {
		return 0, errors.New("pickle data was truncated (empty FLOAT line)")
	}
	s := cString(line)
	n := floatPrefix(s)
	if n == 0 || n != len(s) {
		return 0, errors.New("could not convert string to float")
	}
	t := string(s)
	neg := t[0] == '-'
	u := t
	if t[0] == '+' || t[0] == '-' {
		u = t[1:]
	}
	switch lower(u) {
	case "inf", "infinity":
		return math.Copysign(math.Inf(1), sign(neg)), nil
	case "nan":
		// CPython's NaN is the quiet NaN without payload (Go's math.NaN
		// has one), the sign bit set for "-nan".
		return math.Float64frombits(0x7ff8000000000000 | uint64(b2i(neg))<<63), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		if math.IsInf(f, 0) {
			return 0, errors.New("value too large to convert to float")
		}
		var ne *strconv.NumError
		if !errors.As(err, &ne) || ne.Err != strconv.ErrRange {
			return 0, errors.New("could not convert string to float")
		}
	}
	return f, nil
}

func sign(neg bool) float64 {
	if neg {
		return -1
	}
	return 1
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// floatPrefix is the length of the longest prefix of s that
// PyOS_string_to_double parses.
func floatPrefix(s []byte) int {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	rest := lower(string(s[i:min(len(s), i+8)]))
	switch {
	case len(rest) >= 8 && rest[:8] == "infinity":
		return i + 8
	case len(rest) >= 3 && (rest[:3] == "inf" || rest[:3] == "nan"):
		return i + 3
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k > j {
			i = k
		}
	}
	return i
}

// appendCodePoint appends r in canonical form: UTF-8, surrogates as their
// three-byte encoding.
func appendCodePoint(b []byte, r rune) []byte {
	if r >= 0xd800 && r <= 0xdfff {
		return append(b, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
	}
	return utf8.AppendRune(b, r)
}

// decodeUTF8Pass validates b as Python's UTF-8 decoder with "surrogatepass"
// (how pickle decodes BINUNICODE): valid UTF-8, where encoded surrogates are
// allowed. The canonical form of such a string is b itself. It returns the
// offset of the first invalid byte, or -1.
func decodeUTF8Pass(b []byte) int {
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			if i+2 < len(b) && c == 0xed && b[i+1] >= 0xa0 && b[i+1] <= 0xbf && b[i+2]&0xc0 == 0x80 {
				i += 3
				continue
			}
			return i
		}
		i += n
	}
	return -1
}

// decodeASCII is Python's ASCII decoder, strict: how pickle.load (with its
// default encoding) turns BINSTRING, SHORT_BINSTRING and STRING into str.
func decodeASCII(b []byte) (string, error) {
	for i, c := range b {
		if c >= 0x80 {
			return "", fmt.Errorf("'ascii' codec can't decode byte 0x%02x in position %d", c, i)
		}
	}
	return string(b), nil
}

// decodeStringLine decodes the argument of STRING: a literal in matching
// single or double quotes whose escapes are decoded as Python's
// codecs.escape_decode does, then ASCII.
func decodeStringLine(line []byte) (string, error) {
	if len(line) < 2 || line[0] != line[len(line)-1] || (line[0] != '\'' && line[0] != '"') {
		return "", errors.New("the STRING opcode argument must be quoted")
	}
	b, err := escapeDecode(line[1 : len(line)-1])
	if err != nil {
		return "", err
	}
	return decodeASCII(b)
}

// escapeDecode is codecs.escape_decode: Python's bytes-literal escapes
// (\\ \' \" \a \b \f \n \r \t \v, \ooo octal, \xhh, a backslash before a
// newline removed); any other escape is kept as it is.
func escapeDecode(s []byte) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(s) {
			return nil, errors.New("Trailing \\ in string")
		}
		c = s[i]
		switch c {
		case '\n':
		case '\\', '\'', '"':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 't':
			out = append(out, '\t')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 'v':
			out = append(out, '\v')
		case 'a':
			out = append(out, '\a')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for k := 0; k < 2 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; k++ {
				i++
				v = v*8 + int(s[i]-'0')
			}
			out = append(out, byte(v)) // \777 wraps, as in Python (with a warning)
		case 'x':
			if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				out = append(out, byte(hexVal(s[i+1])<<4|hexVal(s[i+2])))
				i += 2
				continue
			}
			return nil, fmt.Errorf("invalid \\x escape at position %d", i-1)
		default:
			out = append(out, '\\', c)
		}
	}
	return out, nil
}

// decodeRawUnicodeEscape is Python's raw-unicode-escape decoder, how
// pickle.load decodes UNICODE: bytes are Latin-1 code points, but for
// \uXXXX and \UXXXXXXXX (a backslash followed by any other byte keeps both).
func decodeRawUnicodeEscape(s []byte) (string, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		i++
		if c != '\\' || i >= len(s) {
			out = appendCodePoint(out, rune(c))
			continue
		}
		c = s[i]
		i++
		count := 0
		switch c {
		case 'u':
			count = 4
		case 'U':
			count = 8
		default:
			out = append(out, '\\')
			out = appendCodePoint(out, rune(c))
			continue
		}
		var r uint32
		for k := 0; k < count; k++ {
			if i >= len(s) || !isHex(s[i]) {
				if count == 4 {
					return "", errors.New("'rawunicodeescape' codec can't decode: truncated \\uXXXX escape")
				}
				return "", errors.New("'rawunicodeescape' codec can't decode: truncated \\UXXXXXXXX escape")
			}
			r = r<<4 | uint32(hexVal(s[i]))
			i++
		}
		if r > 0x10ffff {
			return "", errors.New("'rawunicodeescape' codec can't decode: \\Uxxxxxxxx out of range")
		}
		out = appendCodePoint(out, rune(r))
	}
	return string(out), nil
}

// decodeLong decodes LONG1/LONG4 bytes: little-endian two's complement.
func decodeLong(b []byte) pyInt {
	if len(b) <= 8 {
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		if len(b) > 0 && len(b) < 8 && b[len(b)-1]&0x80 != 0 {
			u |= ^uint64(0) << (8 * len(b))
		}
		return pyInt{small: int64(u)}
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	v := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return normInt(v)
}
