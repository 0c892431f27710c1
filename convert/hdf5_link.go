//go:build !nohdf5 && !hdf5static

package convert

// #cgo LDFLAGS: -lhdf5
import "C"
