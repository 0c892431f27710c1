// Package transpose writes Fortran-ordered (column-major) array data in C
// (row-major) order: the one transposition the bridge (Array.WriteC, Put in
// the mmappickle profile) and the converters (.npy and .npz members into
// mmappickle's C-order encoding) share.
//
// It must not import the project's other packages.
package transpose
