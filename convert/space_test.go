//go:build !nohdf5

package convert

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
)

// TestHugeDeclaredDataset: a few-KB HDF5 file declaring a 16 TiB dataset
// with no stored data is refused before anything is written, instead of
// filling the disk with fill values.
func TestHugeDeclaredDataset(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "huge.h5")
	script := "import h5py, sys\nwith h5py.File(sys.argv[1], 'w') as f:\n    f.create_dataset('x', shape=(2**42,), dtype='f4')\n"
	needH5py(t)
	pyrun.Numpy1(t).Run(t, script, src)
	dst := filepath.Join(dir, "out.mmpkl")
	err := File(context.Background(), src, dst, "", "", Options{})
	if err == nil || !strings.Contains(err.Error(), "free") {
		t.Fatalf("got %v, want a refusal for lack of space", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Error("destination exists")
	}
	es, _ := os.ReadDir(dir)
	if len(es) != 1 {
		t.Errorf("left behind: %v", es)
	}
}
