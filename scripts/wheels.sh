#!/usr/bin/env bash
# Makes the Python package's distributions for PyPI, from nothing, into
# dist/: the sdist (with the Go sources) and, built from it, one manylinux
# wheel per architecture that installs with pip alone (no Go, no compiler,
# no C library but glibc):
#
#   mmpbridge-V.tar.gz
#   mmpbridge-V-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
#   mmpbridge-V-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl
#
# A wheel holds the package, libmmp.so (the Go core, loaded with ctypes: so
# any Python 3, "py3-none") and the mmpconv executable, which pip installs
# on PATH. Both are built WITHOUT HDF5 (-tags nohdf5): converting an HDF5
# file raises an error that says how to get HDF5 (the sdist, built with
# libhdf5-dev; see README.md). Go cross-compiles; cgo's C compiler is
# `zig cc -target ARCH-linux-gnu.2.17` (PyPI's ziglang), so that libmmp.so
# asks for nothing newer than glibc 2.17; mmpconv is pure Go and static.
# Every wheel must pass `auditwheel show` as manylinux_2_17 (or older)
# before it is left in the output directory.
#
#   bash scripts/wheels.sh                     # x86_64 and aarch64 into dist/
#   bash scripts/wheels.sh -o DIR x86_64       # one architecture, elsewhere
#
# The tools (ziglang, auditwheel, build, setuptools, wheel; versions pinned
# below) live in a virtualenv of their own, $MMP_CACHE/wheeltools, made on
# first use; a second run reuses it. Go comes from scripts/env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

log() { printf 'wheels: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

out=dist
while getopts o: opt; do
	case $opt in
	o) out=$OPTARG ;;
	*) die "usage: wheels.sh [-o DIR] [x86_64|aarch64]..." ;;
	esac
done
shift $((OPTIND - 1))
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64)
for a in "${arches[@]}"; do
	case $a in x86_64 | aarch64) ;; *) die "unknown architecture $a (x86_64, aarch64)" ;; esac
done

# --- the tools -------------------------------------------------------------
PINS="ziglang==0.15.2 auditwheel==6.8.2 build==1.6.1 setuptools==84.2.1 wheel==0.48.0"
tools="$MMP_CACHE/wheeltools"
py="${MMP_PYTHON:-python3}"
if [ "$(cat "$tools/pins" 2>/dev/null)" != "$PINS" ] || ! "$tools/bin/python" -m ziglang version >/dev/null 2>&1; then
	log "installing $PINS into $tools"
	rm -rf "$tools"
	mkdir -p "$MMP_CACHE"
	"$py" -m venv "$tools"
	# shellcheck disable=SC2086
	"$tools/bin/pip" install -q $PINS
	echo "$PINS" >"$tools/pins"
fi
export ZIG_GLOBAL_CACHE_DIR="$MMP_CACHE/zig"
# cgo's compiler for each target: zig cc for glibc 2.17 (CC must be one
# command for go build).
for a in x86_64 aarch64; do
	printf '#!/bin/sh\nexec "%s" -m ziglang cc -target %s-linux-gnu.2.17 "$@"\n' "$tools/bin/python" "$a" >"$tools/cc-$a.new"
	chmod +x "$tools/cc-$a.new"
	mv "$tools/cc-$a.new" "$tools/cc-$a"
done
command -v go >/dev/null 2>&1 || die "go not found (install Go to /usr/local/go)"

# --- the sdist -------------------------------------------------------------
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "sdist"
"$tools/bin/python" -m build --sdist --no-isolation --outdir "$work/sdist" python >"$work/sdist.log" 2>&1 ||
	{ cat "$work/sdist.log" >&2; die "the sdist failed"; }
sdist=$(ls "$work"/sdist/mmpbridge-*.tar.gz)
name=$(basename "$sdist" .tar.gz)
tar -xzf "$sdist" -C "$work"

# --- the wheels, from the sdist ----------------------------------------------
made=()
for a in "${arches[@]}"; do
	case $a in x86_64) goarch=amd64 ;; aarch64) goarch=arm64 ;; esac
	plat="manylinux_2_17_$a.manylinux2014_$a"
	src="$work/$a/$name"
	mkdir -p "$work/$a"
	cp -r "$work/$name" "$src"
	log "wheel $plat (go build for linux/$goarch with zig cc)"
	start=$SECONDS
	if ! env GOOS=linux GOARCH="$goarch" CGO_ENABLED=1 CC="$tools/cc-$a" \
		MMPBRIDGE_HDF5=0 MMPBRIDGE_MMPCONV=1 MMPBRIDGE_PLAT="$plat" \
		"$tools/bin/python" -m build --wheel --no-isolation --outdir "$work/wheels" "$src" >"$work/$a.log" 2>&1; then
		cat "$work/$a.log" >&2
		die "the $a wheel failed"
	fi
	whl="$work/wheels/$name-py3-none-$plat.whl"
	[ -f "$whl" ] || die "no $whl"
	# auditwheel reads the wheel's ELF files: their architecture, the
	# libraries they need and the glibc symbol versions they ask for.
	show=$("$tools/bin/auditwheel" show "$whl" 2>&1) || { printf '%s\n' "$show" >&2; die "auditwheel show failed on $whl"; }
	# It names the oldest policy the wheel meets; the wheel's tag must be
	# that one or a later one (x86_64 comes out as manylinux_2_5: Go's
	# runtime asks for old symbols only).
	tag=$(printf '%s\n' "$show" | tr -s ' \n' ' ' | sed -n 's/.*consistent with the following platform tag: "\([^"]*\)".*/\1/p')
	minor=$(printf '%s\n' "$tag" | sed -n "s/^manylinux_2_\([0-9][0-9]*\)_$a\$/\1/p")
	[ -n "$minor" ] && [ "$minor" -le 17 ] ||
		{ printf '%s\n' "$show" >&2; die "auditwheel finds $whl ${tag:-outside every policy}, not manylinux_2_17_$a or older"; }
	log "$(basename "$whl"): auditwheel show: $tag ($((SECONDS - start)) s)"
	made+=("$whl")
done

cp "$sdist" "${made[@]}" "$out/"
for f in "$sdist" "${made[@]}"; do
	printf '%s\n' "$out/$(basename "$f")"
done
