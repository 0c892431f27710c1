// Package render turns what the bridge returns into what people and
// programs read: Python reprs (ls, get), the JSON of inspect --json and of
// libmmp's entry descriptions. The bridge returns data and never words; the
// command line and libmmp both render through this package, so that they say
// the same thing. It must not import convert, cobra or cgo.
package render
