// Package bridge reads, writes and edits mmappickle files.
//
// An mmappickle file (https://github.com/UniNE-CHYN/mmappickle) is at the
// same time a valid Python pickle of a dict — plain pickle.load gives the
// dict — and a file whose numpy arrays can be memory-mapped, because each
// key-value pair sits in its own pickle frame at a predictable place:
//
//	header      PROTO 4, FRAME 13, BININT 1 POP, BININT <commit number> POP, MARK
//	entry …     FRAME n, SHORT_BINUNICODE key, <value>, BININT <memo max> POP, NEWTRUE|POP, POP
//	terminator  FRAME 2, DICT, STOP
//
// A deleted entry ends in POP POP instead of NEWTRUE POP, so the unpickler
// drops it; a replaced key gets a new entry at the end and its old entry is
// flipped to deleted. The commit number (bytes 18-21) changes with every
// change; processes share a file by taking flock around each operation.
//
// # Arrays
//
// Arrays come in two encodings, both read by this package:
//
//   - Portable (the default for writing): numpy's own pickle of the array
//     (numpy.core.multiarray._reconstruct + BUILD). Plain pickle.load works
//     on numpy 1.x and 2.x, and pickle scanners accept it.
//   - Mmappickle: mmappickle 1.0.1's own encoding,
//     numpy.core.fromnumeric.reshape(numpy.core.multiarray.fromstring(bytes,
//     dtype), shape). mmappickle 1.0.1 maps these arrays; plain pickle.load
//     fails on them from numpy 2.3 on.
//
// Either way the raw bytes of an array are contiguous in the file. An
// [Array] records where (Offset, NBytes) and, for a [File], gives them as a
// view of the file's memory mapping ([Array.Bytes], [View]): no copy. Written
// arrays are aligned (64 bytes by default, see [WithAlign]) by deleted
// padding entries, which every reader skips.
//
// # Other values
//
// Any other value is decoded into Go's own types (nil, bool, int64 or
// *big.Int, float64, complex128, string, []byte, []any), the types of
// package mmpbridge/pyval for the Python values Go has none for
// (pyval.Tuple, pyval.Dict, pyval.OrderedDict, pyval.Set, pyval.FrozenSet,
// pyval.ByteArray), and numpy's: [Scalar], [DType], an array inside a value
// as an *[Array] or *[Masked]. Decoding never imports or runs anything: a
// value that names a class outside a small allow-list, or calls an allowed
// one with arguments numpy never writes, comes back as a pyval.Object; a
// whole value's Object holds its pickle bytes, which a rewrite copies
// verbatim. [File.Put] writes all of these back as Python pickles them.
//
// # One model of pickle.load
//
// pickle.load runs the whole file as one pickle: one stack and one memo for
// every entry, deleted ones included. The package models exactly that, once
// (machine.go): reading, array recognition, rewriting and [Verify] all run
// it. Text opcodes are decoded by CPython's rules, dict keys compared as
// Python compares them, and a file whose entries share memo slots, whose
// structure is broken or where pickle.load would raise is refused as a
// whole ([ErrSharedMemo], [FormatError]), because the bytes of an entry are
// then not what Python gives for its key.
//
// # Untrusted input
//
// Every length and offset read from a file is checked against the file size
// before use; errors are [*FormatError] values naming the byte offset (and
// key), wrapping sentinels such as [ErrTorn] or [ErrNotMmappickle]; [Limits]
// bound memory and work spent on generic values, shared references counted
// at each use. Memory read from a mapping that another process truncated
// gives [ErrShrank], not a crash.
//
// Use [NewReader] to read from any io.ReaderAt, [Open] and [OpenFile] for a
// file with its mapping and locking, [Create] to write a new one.
//
// # What it owns
//
// The mmappickle format and nothing else: the bridge knows no other file
// format (convert's), no command line (cmd/mmpconv's), no cgo (cgo/'s) and
// no wording of its results for people (internal/render's): it returns
// data and typed errors. It must never import those packages; it reads
// remote files through mmpbridge/remote, which knows nothing of it.
package bridge
