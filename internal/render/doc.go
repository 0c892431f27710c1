// Package render turns what the bridge returns into what people and
// programs read: Python reprs (ls, get), the JSON of inspect --json and of
// libmmp's entry descriptions. The bridge returns data and never words; the
// command line and libmmp both render through this package, so that they say
// the same thing. It must not import convert, cobra or cgo.
//
// Rendering is budgeted as decoding is: a value decoded within the bridge's
// MaxValueBytes can be several times longer as text (a control character
// is 6 bytes of JSON), so every byte rendered counts against a Budget
// (DefaultMaxBytes, the same 256 MiB, per command or call). Each piece is
// counted before it is written and refused whole past the budget
// (*LimitError, which wraps bridge.ErrLimit); rendering stops when the
// budget's context is cancelled. Renderers write as they go: no copy of a
// value's text through encoding/json, no slice of a string's runes.
package render
