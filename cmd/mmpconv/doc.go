// Command mmpconv reads, edits, verifies, compares and converts mmappickle
// files.
//
//	mmpconv ls FILE                      the keys: kind, dtype, shape, size or a short repr
//	mmpconv inspect [--json] [--hash] FILE
//	mmpconv get FILE KEY [-o OUT.npy]
//	mmpconv put FILE KEY (SRC.npy | --json VALUE | --json @FILE | --json -)
//	mmpconv rm FILE KEY...
//	mmpconv vacuum FILE
//	mmpconv fsck FILE
//	mmpconv salvage [--json] BAD OUT       copy what reads and verifies of a damaged file
//	mmpconv verify [--allow module.name]... [--json] [-q] FILE
//	mmpconv convert [flags] SRC DST      any of mmpkl, .npy, .npz, HDF5 to any other
//	mmpconv diff [flags] A B             exit 0 equal, 1 different
//	mmpconv serve DIR                    read-only HTTP, with Range
//
// FILE, SRC and A/B may be http(s) URLs of mmappickle files for the commands
// that only read. Exit status: 0 on success, 1 for a problem with the input
// (or, for diff, files that differ), 2 for bad usage, 130 (143) when
// interrupted by SIGINT (SIGTERM).
//
// The package is the command line only: flags, wording, exit codes. What
// it does is convert's and bridge's; how values are shown is
// internal/render's (shared with libmmp).
//
// It must not import cgo/ (libmmp), which is the other front end.
package main
