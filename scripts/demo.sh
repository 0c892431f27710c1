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
. scripts/env.sh
np1="$MMP_PYENVS/numpy1/bin/python"
np2="$MMP_PYENVS/numpy2/bin/python"

tags=() # as the README builds it: libhdf5.a linked in where installed
for a in /usr/lib/*/hdf5/serial/libhdf5.a /usr/lib/*/libhdf5.a; do
	[ -f "$a" ] && tags=(-tags hdf5static) && break
done
go build "${tags[@]}" -o bin/mmpconv ./cmd/mmpconv
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== mmpconv convert examples/sample.npz sample.mmpkl"
bin/mmpconv convert examples/sample.npz "$out/sample.mmpkl"
bin/mmpconv ls "$out/sample.mmpkl"
echo "== mmpconv verify sample.mmpkl"
bin/mmpconv verify -q "$out/sample.mmpkl"

load='
import pickle, sys, warnings
import numpy as np
warnings.simplefilter("error")
with open(sys.argv[1], "rb") as f:
    d = pickle.load(f)
ref = dict(np.load(sys.argv[2])) if len(sys.argv) > 2 else {}
bad = 0
for k, v in d.items():
    same = ""
    if k in ref:
        # numpy unpickling hands big-endian data back in native order.
        ok = np.array_equal(v, ref[k]) and v.shape == ref[k].shape and v.dtype.str[1:] == ref[k].dtype.str[1:]
        bad += not ok
        same = "  equal to the npz" if ok else "  DIFFERENT"
        if ok and v.dtype != ref[k].dtype:
            same += f" (the npz has {ref[k].dtype.str}: same values, native byte order)"
    print(f"  {k:15} {v.dtype.str:8} {str(v.shape):12}{same}" if hasattr(v, "dtype") else f"  {k:15} {v!r}")
sys.exit(bad)
'
for py in "$np1" "$np2"; do
	echo "== plain pickle.load, numpy $("$py" -c 'import numpy; print(numpy.__version__)') (warnings as errors)"
	"$py" -c "$load" "$out/sample.mmpkl" examples/sample.npz
done

echo "== examples/sample.mmpkl, written by mmappickle 1.0.1, on numpy $("$np2" -c 'import numpy; print(numpy.__version__)'):"
if msg=$("$np2" -c "${load/warnings.simplefilter(\"error\")/}" examples/sample.mmpkl 2>&1); then
	echo "$msg"
	echo "demo: expected plain pickle.load of a mmappickle-profile file to fail on numpy >= 2.3" >&2
	exit 1
fi
echo "  fails as expected: $(echo "$msg" | tail -n 1)"
echo "== after mmpconv convert examples/sample.mmpkl fixed.mmpkl (portable profile):"
bin/mmpconv convert examples/sample.mmpkl "$out/fixed.mmpkl"
"$np2" -c "$load" "$out/fixed.mmpkl"
