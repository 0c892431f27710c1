#!/usr/bin/env bash
# Demo: convert the shipped sample (written by mmappickle 1.0.1 itself, in its
# own array encoding) to the portable profile, then load the result with plain
# pickle.load — numpy only, none of our code — on numpy 1.x and numpy 2.x.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH
root="${MMP_NUMPY2_ROOT:-/var/cache/mmpbridge/sid-numpy2}"

go build ${MMP_BUILD_TAGS:+-tags $MMP_BUILD_TAGS} -o bin/mmpconv ./cmd/mmpconv
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== mmpconv ls examples/sample.mmpkl"
bin/mmpconv ls examples/sample.mmpkl
echo "== mmpconv convert examples/sample.mmpkl sample.mmpkl   (portable profile, arrays 64-byte aligned)"
bin/mmpconv convert examples/sample.mmpkl "$out/sample.mmpkl"
bin/mmpconv inspect --json "$out/sample.mmpkl"

load='
import pickle, sys, warnings
import numpy as np
warnings.simplefilter("error")
with open(sys.argv[1], "rb") as f:
    d = pickle.load(f)
print("numpy", np.__version__, "plain pickle.load:", {k: (v.dtype.str, v.shape) if hasattr(v, "dtype") else v for k, v in d.items()})
'
echo "== plain pickle.load with numpy 1.x (Debian's python3)"
/usr/bin/python3 -c "$load" "$out/sample.mmpkl"
if [ -x "$root/usr/bin/python3" ]; then
	echo "== plain pickle.load with numpy 2.x (Debian sid root)"
	mkdir -p "$root/tmp/demo"
	cp examples/sample.mmpkl "$root/tmp/demo/original.mmpkl"
	cp "$out/sample.mmpkl" "$root/tmp/demo/converted.mmpkl"
	chroot "$root" /usr/bin/python3 -c "$load" /tmp/demo/converted.mmpkl
	echo "-- the original file, for comparison (mmappickle's encoding fails on numpy >= 2.3):"
	chroot "$root" /usr/bin/python3 -c "${load/warnings.simplefilter(\"error\")/}" /tmp/demo/original.mmpkl 2>&1 | tail -1 || true
	rm -rf "$root/tmp/demo"
fi
