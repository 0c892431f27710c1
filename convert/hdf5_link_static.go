//go:build !nohdf5 && hdf5static

package convert

// libhdf5.a (Debian's libhdf5-dev ships it beside libhdf5.so) linked into
// the program, with the libraries its filters need. For executables only:
// the archive is not position-independent, so libmmp.so links the shared
// library (hdf5_link.go).

// #cgo LDFLAGS: -l:libhdf5.a -lsz -laec -lz -lm -ldl
import "C"
