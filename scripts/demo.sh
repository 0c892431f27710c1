#!/usr/bin/env bash
# Demo: convert the shipped sample .npz (made by numpy: a small hyperspectral
# cube, wavelengths, a mask, timestamps, a big-endian Fortran-ordered matrix)
# to mmappickle with mmpconv, then load the result with plain pickle.load —
# numpy only, none of our code — on numpy 1.x and numpy 2.x. Then the same
# for a file written by mmappickle 1.0.1 itself, which numpy 2 cannot load
# until mmpconv rewrites it in the portable profile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH
root="${MMP_NUMPY2_ROOT:-/var/cache/mmpbridge/sid-numpy2}"

go build -o bin/mmpconv ./cmd/mmpconv
out=$(mktemp -d)
trap 'rm -rf "$out"; rm -rf "$root/tmp/mmpbridge-demo"' EXIT

echo "== mmpconv convert examples/sample.npz sample.mmpkl"
bin/mmpconv convert examples/sample.npz "$out/sample.mmpkl"
bin/mmpconv ls "$out/sample.mmpkl"

load='
import pickle, sys, warnings
import numpy as np
warnings.simplefilter("error")
with open(sys.argv[1], "rb") as f:
    d = pickle.load(f)
ref = dict(np.load(sys.argv[2])) if len(sys.argv) > 2 else {}
for k, v in d.items():
    same = "" if k not in ref else ("  equal to the npz" if np.array_equal(v, ref[k]) and v.shape == ref[k].shape else "  DIFFERENT")
    print(f"  {k:15} {v.dtype.str:8} {str(v.shape):12}{same}" if hasattr(v, "dtype") else f"  {k:15} {v!r}")
'
echo "== plain pickle.load, numpy $(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)') (Debian python3, warnings as errors)"
/usr/bin/python3 -c "$load" "$out/sample.mmpkl" examples/sample.npz
if [ -x "$root/usr/bin/python3" ]; then
	d="$root/tmp/mmpbridge-demo"
	mkdir -p "$d"
	cp "$out/sample.mmpkl" "$d/converted.mmpkl"
	cp examples/sample.npz "$d/sample.npz"
	cp examples/sample.mmpkl "$d/legacy.mmpkl"
	echo "== plain pickle.load, numpy $(chroot "$root" /usr/bin/python3 -c 'import numpy; print(numpy.__version__)') (Debian sid root)"
	chroot "$root" /usr/bin/python3 -c "$load" /tmp/mmpbridge-demo/converted.mmpkl /tmp/mmpbridge-demo/sample.npz

	echo "== examples/sample.mmpkl, written by mmappickle 1.0.1, on numpy 2:"
	chroot "$root" /usr/bin/python3 -c "${load/warnings.simplefilter(\"error\")/}" /tmp/mmpbridge-demo/legacy.mmpkl 2>&1 | tail -1 || true
	echo "== after mmpconv convert examples/sample.mmpkl fixed.mmpkl (portable profile):"
	bin/mmpconv convert examples/sample.mmpkl "$d/fixed.mmpkl"
	chroot "$root" /usr/bin/python3 -c "$load" /tmp/mmpbridge-demo/fixed.mmpkl
fi
