// Package convert moves arrays between mmappickle files and .npy, .npz and
// HDF5 files, in any direction, streaming, in constant memory, and compares
// files of any of these formats logically (Diff).
//
// It owns the other formats: the .npy header and its Python literals
// (npy_header.go, pyliteral.go), .npz archives (npz_read.go, npz_write.go,
// npz_masked.go, deflate.go), HDF5 through libhdf5 (hdf5*.go, the one place
// besides cgo/ that uses cgo; -tags nohdf5 builds without it), and moving
// bytes between files (filespan.go). mmappickle files are bridge's: convert
// goes through its File and Reader only.
//
// Outputs are unnamed until complete and linked into place (internal/
// atomicfile), so an interrupted conversion never leaves a partial
// destination. Converters print nothing and name no command-line flags:
// progress goes through Options.Progress, skipped items through
// Options.Skipped, and errors are typed (UnsupportedError, UsageError,
// ErrExists, ...) for the caller to word. convert must not import cobra,
// the command line or cgo/.
package convert
