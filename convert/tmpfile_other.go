//go:build !linux

package convert

import "os"

// scratchFile returns a temporary file in dir, removed at once.
func scratchFile(dir string) (*os.File, error) { return namedScratchFile(dir) }

func freeSpace(name string) (int64, bool) { return 0, false }
