package convert

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHDF5CloseOnExec: the descriptors HDF5 opens for the files it reads
// and writes are close-on-exec, as Go's own are. Without it a child process
// started meanwhile (os/exec in another goroutine) inherits the file and
// HDF5's lock on it, and the converted file cannot be opened until the child
// exits ("unable to lock file, errno = 11": seen in TestDiffRoundTrips while
// another test ran Python).
func TestHDF5CloseOnExec(t *testing.T) {
	if !hdf5Available {
		t.Skip("built with -tags nohdf5")
	}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd")
	}
	t.Parallel()
	dir := t.TempDir()
	base := writeDiffFile(t, filepath.Join(dir, "base.mmpkl"), roundTripKeys())
	// checkFDs runs from the progress callback, while the files are open.
	var seen atomic.Int32
	checkFDs := func(int64, int64) {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Error(err)
			return
		}
		for _, e := range ents {
			target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
			if err != nil || !strings.HasPrefix(target, dir) {
				continue
			}
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			if err != nil {
				continue // closed meanwhile
			}
			if strings.Contains(filepath.Base(target), ".h5") {
				seen.Add(1)
			}
			if fl&unix.FD_CLOEXEC == 0 {
				t.Errorf("descriptor %d of %s is not close-on-exec", fd, target)
			}
		}
	}
	h5 := filepath.Join(dir, "out.h5")
	ctx := context.Background()
	if err := File(ctx, base, h5, "", "", Options{Progress: checkFDs}); err != nil {
		t.Fatal(err)
	}
	wrote := seen.Load()
	if err := File(ctx, h5, filepath.Join(dir, "back.mmpkl"), "", "", Options{Progress: checkFDs}); err != nil {
		t.Fatal(err)
	}
	if wrote == 0 || seen.Load() == wrote {
		t.Errorf("HDF5 files seen open in the progress callback: %d writing, %d reading; want some of each", wrote, seen.Load()-wrote)
	}
}
