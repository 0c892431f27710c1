// Package pyval holds the Go types of the Python values Go has no type of
// its own for: tuple, dict, collections.OrderedDict, set, frozenset,
// bytearray, a module-level callable's name (Global), and a value left
// undecoded (Object).
//
// The mmappickle bridge (mmpbridge/bridge) decodes a file's generic values
// to these and to Go's own types (nil, bool, int64 or *big.Int, float64,
// complex128, string, []byte, []any), and writes them back as CPython's
// pickle writes the Python values. Numpy's values (dtypes, scalars, arrays)
// are the bridge's, because their bytes live in the file.
//
// # What it owns
//
// The values and nothing else: no pickle opcodes, no file format. It
// imports nothing of this module, so any package can use it.
package pyval
