package convert

import (
	"github.com/klauspost/compress/flate"
)

// .npz files are zip archives of .npy members, one per array: np.savez
// stores them, np.savez_compressed deflates them.
//
// npz -> mmpkl: every .npy member becomes the key of its name without
// ".npy", in archive order. The npy headers are read first (so that an
// unsupported member is found before any data moves, and the progress
// total is known); then the main goroutine reserves each member's slot in
// archive order, a pool of runtime.NumCPU() workers fills the slots
// concurrently (stored members by copy_file_range, deflated ones inflated
// in 1 MiB pieces), and a committer goroutine commits the slots in archive
// order. At most 2×NumCPU members are in flight, each in constant memory.
// The CRC-32 of every member is checked. For the mmappickle profile
// (C-order data only) a Fortran-ordered member is transposed: stored ones
// from a read-only mapping of the archive, deflated ones after inflating
// them into an unlinked temporary file beside the output.
//
// mmpkl -> npz: every array becomes the member KEY.npy, in file order, as
// np.savez writes it. A masked array becomes KEY.npy (the data),
// KEY.mask.npy (the mask, a bool array of the same shape and order) and
// KEY.fill_value.npy (its fill value, a 0-d array, when the file keeps
// one), read back as one masked array (npz_masked.go). Generic values are left out and
// reported through Options.Skipped. With Options.Compress the members are
// deflated, each member's data in 1 MiB pieces compressed in parallel on
// all cores (as pigz does) and concatenated into one deflate stream.

func init() {
	toMmpkl[Npz] = npzToMmpkl
	fromMmpkl[Npz] = mmpklToNpz
}

// newInflater and deflaters are the deflate implementation:
// github.com/klauspost/compress/flate. Measured on this project's 2-core
// machine against compress/flate, 16 MiB members deflated by numpy's zlib
// (level 6), one core: inflating is 1.3-1.5x faster (random-walk float32:
// 400 vs 300 MB/s; normal float32: 230 vs 155 MB/s; small int32: 270 vs
// 185 MB/s), and deflating at level 6 is 6-70x faster (random walk: 110 vs
// 6 MB/s, for a 3% bigger output). Its level 6 stores pieces its matcher
// finds incompressible where zlib still gains 8% by Huffman coding them:
// those pieces are Huffman-coded instead (huffmanIfSmaller), which brings
// noisy float data to zlib's size. BenchmarkNpzInflate and
// BenchmarkNpzDeflate repeat the comparisons.
var newInflater = flate.NewReader

const pieceSize = 1 << 20 // inflate/deflate unit

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
