//go:build !linux

package bridge

import "os"

// forEachData calls fn for the whole range: holes are not known here.
func forEachData(f *os.File, off, end int64, fn func(off, end int64) error) error {
	return fn(off, end)
}

func punchHole(f *os.File, off, n int64) bool { return false }

func copyFileRange(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) int64 { return 0 }
