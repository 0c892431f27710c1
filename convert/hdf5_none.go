//go:build nohdf5

package convert

import (
	"context"
	"errors"
	"fmt"

	"mmpbridge/bridge"
)

// ErrNoHDF5 is the error of the HDF5 conversions in a program built with
// -tags nohdf5 (a pure-Go build, without the HDF5 C library). Callers test
// for it with errors.Is; it is an input-side failure (mmpconv exits 1).
var ErrNoHDF5 = errors.New("built without HDF5 support")

// hdf5Available tells whether this build has the HDF5 converters.
const hdf5Available = false

// noHDF5Hint ends ErrNoHDF5's message: how to get a build with HDF5.
// Packagers word it for their users with
// -ldflags "-X 'mmpbridge/convert.noHDF5Hint=...'" (the Python wheels do).
var noHDF5Hint = "rebuild without -tags nohdf5"

func init() {
	toMmpkl[HDF5] = func(_ context.Context, src string, _ *bridge.File, _ *Options, _ *progress) error {
		return fmt.Errorf("%s: %w (%s)", src, ErrNoHDF5, noHDF5Hint)
	}
	fromMmpkl[HDF5] = func(_ context.Context, _ string, _ *bridge.Reader, _ string, _ *Options, _ *progress) error {
		return fmt.Errorf("writing HDF5: %w (%s)", ErrNoHDF5, noHDF5Hint)
	}
}

// hdf5BlockBytes is the block size of HDF5 copies (unused here; the tests
// set it in either build).
var hdf5BlockBytes int64 = 1 << 20
