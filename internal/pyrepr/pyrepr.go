package pyrepr

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Runes decodes a string of the bridge's canonical form (UTF-8 with lone
// surrogates as three-byte sequences) to its code points.
func Runes(s string) []rune {
	out := make([]rune, 0, len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 && i+2 < len(s) && s[i] == 0xed {
			r = rune(s[i]&0x0f)<<12 | rune(s[i+1]&0x3f)<<6 | rune(s[i+2]&0x3f)
			n = 3
		}
		out = append(out, r)
		i += n
	}
	return out
}

// Str is Python's repr of a str (s is UTF-8, or the surrogatepass UTF-8 of
// a str holding lone surrogates, which are escaped).
func Str(s string) string {
	quote := '\''
	if strings.Contains(s, "'") && !strings.Contains(s, "\"") {
		quote = '"'
	}
	var b strings.Builder
	b.WriteRune(quote)
	for _, r := range Runes(s) {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == quote:
			b.WriteString(`\` + string(quote))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == ' ' || (r < 0xd800 || r > 0xdfff) && unicode.IsPrint(r):
			// Go's IsPrint is Python's str.isprintable: letters, marks,
			// numbers, punctuation, symbols and the ASCII space.
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteRune(quote)
	return b.String()
}

// Bytes is Python's repr of a bytes object.
func Bytes(p []byte) string {
	quote := byte('\'')
	if strings.Contains(string(p), "'") && !strings.Contains(string(p), "\"") {
		quote = '"'
	}
	var b strings.Builder
	b.WriteString("b")
	b.WriteByte(quote)
	for _, c := range p {
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == quote:
			b.WriteString(`\` + string(quote))
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(quote)
	return b.String()
}
