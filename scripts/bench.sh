#!/usr/bin/env bash
# Benchmarks, side by side in one run (ratios are only taken within a run).
#
# convert: a 1 GiB .npz of 16 float32 arrays, stored (np.savez) and deflated
#   (np.savez_compressed), converted to mmappickle by mmpconv, copied by cp,
#   and converted by numpy + pickle.dump; wall time (median of RUNS) and
#   peak RSS.
# python: the Python package against mmappickle 1.0.x (in the reference
#   environment, numpy < 1.24) and joblib (dump + load(mmap_mode="r")):
#   write 10,000 small arrays one by one; open a 10,000-key file and read
#   one array; write one SIZE_MIB MiB array and fsync, against np.save +
#   fsync. Times are taken inside each process (interpreter start excluded).
#
#   bash scripts/bench.sh [convert|python|all]   # BENCH_DIR=/var/tmp/mmpbench RUNS=3 SIZE_MIB=1024 KEYS=10000
set -euo pipefail
what="${1:-all}"
cd "$(dirname "$0")/.."
. scripts/env.sh
dir="${BENCH_DIR:-/var/tmp/mmpbench}"
runs="${RUNS:-3}"
size="${SIZE_MIB:-1024}"
py="$MMP_PYENVS/numpy1/bin/python"
[ -x "$py" ] || { echo "bench: no $py: run scripts/setup.sh" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (/usr/bin/time): run scripts/setup.sh" >&2; exit 1; }
mkdir -p "$dir"

python_bench() {
	local keys="${KEYS:-10000}" ref="$MMP_PYENVS/reference/bin/python" bp=scripts/bench_python.py
	for env in numpy1 reference; do
		"$MMP_PYENVS/$env/bin/python" -m pip install --quiet --no-deps --no-build-isolation --force-reinstall ./python
	done
	"$py" -c 'import joblib' 2>/dev/null || "$py" -m pip install --quiet joblib
	med() { sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
	rep() { local out=(); for _ in $(seq "$runs"); do out+=("$("$@")"); done; printf '%s\n' "${out[@]}" | med; }
	echo "python: write $keys small arrays ..."
	local ws_b ws_j ws_m
	ws_b=$(rep "$py" $bp write-small mmpbridge "$keys" "$dir")
	ws_j=$(rep "$py" $bp write-small joblib "$keys" "$dir")
	ws_m=$("$ref" $bp write-small mmappickle "$keys" "$dir")   # one run: minutes
	echo "python: open a $keys-key file, read one array ..."
	"$py" $bp make-keys "$keys" "$dir/keys.mmpkl" >/dev/null
	local last="a$(( keys - 1 ))" or_b or_m or_j
	or_b=$(rep "$py" $bp open-read mmpbridge "$dir/keys.mmpkl" "$last")
	or_m=$(rep "$ref" $bp open-read mmappickle "$dir/keys.mmpkl" "$last")
	or_j=$(rep "$py" $bp open-read joblib "$dir/small-joblib.pkl" "$last")
	echo "python: write one $size MiB array ..."
	local n=() b=() j=() mm=() wb_n wb_b wb_j wb_m
	for _ in $(seq "$runs"); do  # interleaved: each run sees the same disk
		n+=("$("$py" $bp write-big numpy "$size" "$dir")")
		b+=("$("$py" $bp write-big mmpbridge "$size" "$dir")")
		j+=("$("$py" $bp write-big joblib "$size" "$dir")")
		mm+=("$("$ref" $bp write-big mmappickle "$size" "$dir")")
	done
	wb_n=$(printf '%s\n' "${n[@]}" | med)
	wb_b=$(printf '%s\n' "${b[@]}" | med)
	wb_j=$(printf '%s\n' "${j[@]}" | med)
	wb_m=$(printf '%s\n' "${mm[@]}" | med)
	rm -f "$dir"/small-*.pkl "$dir/keys.mmpkl"
	echo
	echo "Python, $(nproc) cores, median of $runs runs (mmappickle's $keys writes: one run)"
	printf '%-40s %12s %12s %12s %12s\n' "" "mmpbridge" "mmappickle" "joblib" "np.save"
	printf '%-40s %12.3f %12.3f %12.3f %12s\n' "write $keys small arrays (s)" "$ws_b" "$ws_m" "$ws_j" "-"
	printf '%-40s %12.4f %12.4f %12.4f %12s\n' "open $keys keys, read one array (s)" "$or_b" "$or_m" "$or_j" "-"
	printf '%-40s %12.3f %12.3f %12.3f %12.3f\n' "write one $size MiB array + fsync (s)" "$wb_b" "$wb_m" "$wb_j" "$wb_n"
	awk -v a="$ws_m" -v b="$ws_b" -v c="$or_m" -v d="$or_b" -v e="$wb_b" -v f="$wb_n" 'BEGIN {
		printf "mmappickle / mmpbridge: writes %.0fx, open+read %.1fx; mmpbridge / (np.save + fsync): %.2fx\n", a / b, c / d, e / f }'
}

if [ "$what" = python ]; then
	python_bench
	exit 0
fi
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

if [ "$what" = all ]; then
	echo
	python_bench
fi
