#!/usr/bin/env bash
# Converter benchmark: a 1 GiB .npz of 16 float32 arrays, stored (np.savez)
# and deflated (np.savez_compressed), converted to mmappickle by mmpconv,
# copied by cp, and converted by numpy + pickle.dump; wall time (median of
# RUNS) and peak RSS, with ratios taken side by side in this one run.
#
#   bash scripts/bench.sh            # BENCH_DIR=/var/tmp/mmpbench RUNS=3 SIZE_MIB=1024
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
dir="${BENCH_DIR:-/var/tmp/mmpbench}"
runs="${RUNS:-3}"
size="${SIZE_MIB:-1024}"
py="$MMP_PYENVS/numpy1/bin/python"
[ -x "$py" ] || { echo "bench: no $py: run scripts/setup.sh" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (/usr/bin/time): run scripts/setup.sh" >&2; exit 1; }
mkdir -p "$dir"
go build -o "$dir/mmpconv" ./cmd/mmpconv

if [ ! -f "$dir/stored-$size.npz" ] || [ ! -f "$dir/deflated-$size.npz" ]; then
	echo "generating $size MiB npz files in $dir ..."
	"$py" - "$dir" "$size" <<'PY'
import sys, numpy as np
d, size = sys.argv[1], int(sys.argv[2])
n = size * 2**20 // 4 // 16
rng = np.random.default_rng(0)
# smooth signal plus noise: compressible, but not trivially
arrs = {f"band{i:02d}": (np.sin(np.arange(n, dtype=np.float32) / (50 + i)) + rng.standard_normal(n, dtype=np.float32) * 0.01).astype(np.float32) for i in range(16)}
np.savez(f"{d}/stored-{size}.npz", **arrs)
np.savez_compressed(f"{d}/deflated-{size}.npz", **arrs)
PY
fi

# measure NAME CMD...: median wall seconds and max RSS (MiB) over $runs runs.
measure() {
	local name=$1; shift
	local walls=() rss=0
	for _ in $(seq "$runs"); do
		rm -f "$dir/out.mmpkl" "$dir/out.pkl" "$dir/out.npz"
		sync
		/usr/bin/time -f "%e %M" -o "$dir/time.txt" "$@" >/dev/null
		read -r wall kb < "$dir/time.txt"
		walls+=("$wall")
		(( kb > rss )) && rss=$kb
	done
	local median
	median=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
	echo "$name $median $(( rss / 1024 ))"
}

pickle_py='
import sys, pickle, numpy as np
d = np.load(sys.argv[1])
with open(sys.argv[2], "wb") as f:
    pickle.dump({k: d[k] for k in d.files}, f, 4)
'
results=()
for kind in stored deflated; do
	npz="$dir/$kind-$size.npz"
	results+=("$(measure "cp/$kind" cp "$npz" "$dir/out.npz")")
	# mmpconv syncs its output before renaming it into place; cp does not.
	results+=("$(measure "cp+fsync/$kind" sh -c 'cp "$1" "$2" && sync "$2"' sh "$npz" "$dir/out.npz")")
	results+=("$(measure "mmpconv/$kind" "$dir/mmpconv" convert --quiet "$npz" "$dir/out.mmpkl")")
	results+=("$(measure "numpy+pickle/$kind" "$py" -c "$pickle_py" "$npz" "$dir/out.pkl")")
done
rm -f "$dir/out.mmpkl" "$dir/out.pkl" "$dir/out.npz" "$dir/time.txt"

echo
echo "1 GiB-class npz ($size MiB of float32 in 16 arrays), $(nproc) cores, median of $runs runs"
printf '%-24s %9s %7s %13s %13s\n' "command" "wall (s)" "× cp" "× cp+fsync" "peak RSS MiB"
for r in "${results[@]}"; do
	set -- $r
	kind=${1#*/}
	cp_wall=$(printf '%s\n' "${results[@]}" | awk -v k="cp/$kind" '$1 == k {print $2}')
	cps_wall=$(printf '%s\n' "${results[@]}" | awk -v k="cp+fsync/$kind" '$1 == k {print $2}')
	printf '%-24s %9s %7s %13s %13s\n' "$1" "$2" "$(awk -v a="$2" -v b="$cp_wall" 'BEGIN {printf "%.2f", a / b}')" \
		"$(awk -v a="$2" -v b="$cps_wall" 'BEGIN {printf "%.2f", a / b}')" "$3"
done
