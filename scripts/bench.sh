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
#   And a float32 cube of SIZE_MIB MiB (rows x 2048 x 256, C order) in six
#   formats, one at a time on disk (mmpbridge, h5py contiguous, zarr v3's
#   defaults, np.save / np.load(mmap_mode="r"), safetensors, joblib): write
#   + fsync; cold open + one row (cube[i]); cold open + one band
#   (cube[:, :, k]); a dask.distributed mean on a LocalCluster of 2 worker
#   processes, with the bytes the client sent the scheduler and the bytes
#   the workers received. Cold: the page cache of that format's files
#   dropped by fsync + posix_fadvise(POSIX_FADV_DONTNEED) before the open
#   (never the whole machine's).
#   PYROWS selects the tables: mmappickle (the first), cube; both by default.
#
#   bash scripts/bench.sh [speed|python|all]   # BENCH_DIR=/var/tmp/mmpbench RUNS=3 SIZE_MIB=1024 KEYS=10000 ROWS=... PYROWS=...
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

med() { sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
rep() { local out=(); for _ in $(seq "$runs"); do out+=("$("$@")"); done; printf '%s\n' "${out[@]}" | med; }

python_bench() {
	local rows=" ${PYROWS:-mmappickle cube} " envs=(numpy1)
	case "$rows" in *" mmappickle "*) envs+=(reference) ;; esac
	for env in "${envs[@]}"; do
		"$MMP_PYENVS/$env/bin/python" -m pip install --quiet --no-deps --no-build-isolation --force-reinstall ./python
	done
	"$py" -c 'import joblib' 2>/dev/null || "$py" -m pip install --quiet joblib
	case "$rows" in *" mmappickle "*) python_mmappickle ;; esac
	case "$rows" in *" cube "*) python_cube ;; esac
}

python_mmappickle() {
	local keys="${KEYS:-10000}" ref="$MMP_PYENVS/reference/bin/python" bp=scripts/bench_python.py
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

# One SIZE_MIB MiB float32 cube in each format, one format on disk at a time.
python_cube() {
	local bp=scripts/bench_python.py fmts=(mmpbridge h5py zarr numpy safetensors joblib) avail
	# The versions these rows were run with (numpy 1.26, Python 3.11).
	"$py" -c 'import zarr, safetensors' 2>/dev/null ||
		"$py" -m pip install --quiet "zarr==3.1.5" "numcodecs==0.16.6" "safetensors==0.8.0"
	"$py" -c 'import h5py, dask.array, distributed' 2>/dev/null ||
		"$py" -m pip install --quiet "h5py==3.16.0" "dask[array,distributed]==2026.8.0"
	avail=$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')
	if [ "$avail" -lt $(( size * 2 + 1024 )) ]; then  # one format's file, and a zarr store that may not shrink
		echo "bench: $dir has $avail MiB free; the cube rows need $(( size * 2 + 1024 ))" >&2
		exit 1
	fi
	local f w r b d out=() i
	declare -A W R B T G M
	for f in "${fmts[@]}"; do
		echo "python: $size MiB cube, $f ..."
		w=() r=() b=() d=()
		for _ in $(seq "$runs"); do w+=("$("$py" $bp cube-write "$f" "$size" "$dir")"); done  # the last is read
		for _ in $(seq "$runs"); do r+=("$("$py" $bp cube-row "$f" "$dir")"); done
		for _ in $(seq "$runs"); do b+=("$("$py" $bp cube-band "$f" "$dir")"); done
		for _ in $(seq "$runs"); do d+=("$("$py" $bp cube-dask "$f" "$dir")"); done
		"$py" $bp cube-rm "$f" "$dir" >/dev/null
		W[$f]=$(printf '%s\n' "${w[@]}" | med)
		R[$f]=$(printf '%s\n' "${r[@]}" | med)
		B[$f]=$(printf '%s\n' "${b[@]}" | med)
		T[$f]=$(printf '%s\n' "${d[@]}" | awk '{ print $1 }' | med)
		G[$f]=$(printf '%s\n' "${d[@]}" | awk '{ print $2 }' | med)
		M[$f]=$(printf '%s\n' "${d[@]}" | awk '{ print $3 }' | med)
	done
	rm -f "$dir/cube-expect.json"
	echo
	echo "Python, a $size MiB float32 cube ($(( size / 2 > 0 ? size / 2 : 1 )) x 2048 x 256, C order), $(nproc) cores, median of $runs runs; cold: fsync + POSIX_FADV_DONTNEED of its files before the open"
	printf '%-44s' ""; printf ' %12s' mmpbridge h5py zarr np.save safetensors joblib; echo
	row() { local name=$1 fmt=$2; shift 2; printf '%-44s' "$name"; for v in "$@"; do printf " %12$fmt" "$v"; done; echo; }
	out=(); for f in "${fmts[@]}"; do out+=("${W[$f]}"); done; row "write + fsync (s)" .3f "${out[@]}"
	out=(); for f in "${fmts[@]}"; do out+=("${R[$f]}"); done; row "cold open + one row (s)" .4f "${out[@]}"
	out=(); for f in "${fmts[@]}"; do out+=("${B[$f]}"); done; row "cold open + one band (s)" .3f "${out[@]}"
	out=(); for f in "${fmts[@]}"; do out+=("${T[$f]}"); done; row "dask.distributed mean, cold (s)" .3f "${out[@]}"
	out=(); for f in "${fmts[@]}"; do out+=("${G[$f]}"); done; row "  bytes client -> scheduler (graph)" d "${out[@]}"
	out=(); for f in "${fmts[@]}"; do out+=("${M[$f]}"); done; row "  bytes the workers received" d "${out[@]}"
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
