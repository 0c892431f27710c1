//go:build !unix

package bridge

import (
	"errors"
	"os"
)

// dupFile is not supported here: bindings map by name.
func dupFile(f *os.File) (*os.File, error) {
	return nil, errors.New("duplicating a descriptor is not supported on this platform")
}
