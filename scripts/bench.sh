#!/usr/bin/env bash
# Benchmarks, side by side in one run (ratios are only taken within a run).
#
# speed (alias convert): scripts/bench_speed.py — every command of the
#   speed table (conversions npz/HDF5 -> mmpkl against cp + fsync, numpy +
#   mmappickle and h5py + pickle.dump; ls/inspect/verify of a 10,000-key
#   file against mmappickle opening it; mmpkl -> npz memory and --compress
#   size against np.savez_compressed; extracting one 1 GiB array against
#   cp + fsync), whole processes, median of RUNS, peak RSS and cores busy,
#   each with its goal.
# python: the Python package against mmappickle 1.0.x (in the reference
#   environment, numpy < 1.24) and joblib (dump + load(mmap_mode="r")):
#   write 10,000 small arrays one by one; open a 10,000-key file and read
#   one array; write one SIZE_MIB MiB array and fsync, against np.save +
#   fsync. Times are taken inside each process (interpreter start excluded).
#
#   bash scripts/bench.sh [speed|python|all]   # BENCH_DIR=/var/tmp/mmpbench RUNS=3 SIZE_MIB=1024 KEYS=10000 ROWS=...
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
# The binary as the README builds it: libhdf5 linked in where its archive
# is installed (-tags hdf5static), else the shared library.
tags=()
for a in /usr/lib/*/hdf5/serial/libhdf5.a /usr/lib/*/libhdf5.a; do
	[ -f "$a" ] && tags=(-tags hdf5static) && break
done
go build "${tags[@]}" -o "$dir/mmpconv" ./cmd/mmpconv
# Every row of issue 10's table, side by side with its peer and the goal
# (ROWS: a subset of stored256 stored1024 deflated ls hdf5 tonpz extract remote diff).
"$py" scripts/bench_speed.py "$dir/mmpconv" "$dir" "$runs" ${ROWS:-}

if [ "$what" = all ]; then
	echo
	python_bench
fi
