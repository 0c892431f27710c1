#!/usr/bin/env bash
# Prepare this machine for the mmpbridge test suite. Idempotent: a second run
# only checks things and returns in a few seconds.
#
#   - Debian packages: python3-numpy (numpy 1.x), pytest, h5py, tox, debootstrap, ...
#   - Go module cache (go mod download)
#   - a Debian sid root with numpy >= 2 at ${MMP_NUMPY2_ROOT:-/var/cache/mmpbridge/sid-numpy2}
#     (skipped when MMP_SKIP_NUMPY2=1)
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- Debian packages -------------------------------------------------------
APT_PKGS=(python3-numpy python3-pytest python3-h5py tox debootstrap libhdf5-dev pkg-config)
missing=()
for p in "${APT_PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "apt: installing ${missing[*]}"
	as_root apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${APT_PKGS[@]}"
fi

# --- Go --------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { log "go not found (install Go to /usr/local/go)"; exit 1; }
go mod download

# --- numpy 2 root (Debian sid) -------------------------------------------
NUMPY2_ROOT="${MMP_NUMPY2_ROOT:-/var/cache/mmpbridge/sid-numpy2}"

# Prints the numpy version inside root $1, fails if there is none.
root_numpy_version() {
	[ -x "$1/usr/bin/python3" ] || return 1
	as_root chroot "$1" /usr/bin/python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null
}

# Prints the Debian mirror apt on this machine uses (not the security one).
debian_mirror() {
	local uri=""
	if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
		uri=$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' \
			/etc/apt/sources.list.d/*.sources | grep -v -e security -e '^cdrom:' | grep '/debian/\?$' | head -n1 || true)
	fi
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' \
			/etc/apt/sources.list | grep -v security | grep '/debian/\?$' | head -n1 || true)
	fi
	echo "${uri:-http://deb.debian.org/debian}"
}

# True if version string $1 is numpy 2 or later.
is_numpy2() { [[ "$1" =~ ^([0-9]+)\. ]] && [ "${BASH_REMATCH[1]}" -ge 2 ]; }

# The packages the root is built with; a root built with another set (its
# .mmpbridge-packages marker differs) is rebuilt. h5py is wanted for the
# HDF5 tests under numpy 2; if sid cannot install it, the root is built
# without it and those tests skip.
ROOT_PKGS="python3-numpy,python3-pytest,python3-h5py"

numpy2_version=skipped
if [ "${MMP_SKIP_NUMPY2:-}" = 1 ]; then
	log "MMP_SKIP_NUMPY2=1: not building the numpy-2 root"
else
	v=$(root_numpy_version "$NUMPY2_ROOT" || true)
	if [ "$(cat "$NUMPY2_ROOT/.mmpbridge-packages" 2>/dev/null)" != "$ROOT_PKGS" ]; then
		v=""
	fi
	if ! is_numpy2 "$v"; then
		mirror=$(debian_mirror)
		log "building numpy-2 root $NUMPY2_ROOT (debootstrap sid from $mirror, takes a minute or two)"
		parent=$(dirname "$NUMPY2_ROOT")
		as_root mkdir -p "$parent"
		# Leftovers of an interrupted build.
		as_root rm -rf --one-file-system "$parent/.$(basename "$NUMPY2_ROOT").tmp."*
		tmp=$(as_root mktemp -d "$parent/.$(basename "$NUMPY2_ROOT").tmp.XXXXXX")
		as_root chmod 755 "$tmp"
		# A half-built root never sits at $NUMPY2_ROOT: build aside, rename when done.
		trap 'as_root rm -rf --one-file-system "$tmp"' EXIT
		start=$SECONDS
		if ! as_root debootstrap --variant=minbase --include="$ROOT_PKGS" \
			sid "$tmp" "$mirror" >"$parent/debootstrap.log" 2>&1 &&
			! { log "debootstrap with h5py failed; building the root without it" &&
				as_root rm -rf --one-file-system "$tmp" && as_root mkdir -p "$tmp" && as_root chmod 755 "$tmp" &&
				as_root debootstrap --variant=minbase --include=python3-numpy,python3-pytest \
					sid "$tmp" "$mirror" >"$parent/debootstrap.log" 2>&1; }; then
			tail -n 30 "$parent/debootstrap.log" >&2
			[ -f "$tmp/debootstrap/debootstrap.log" ] && tail -n 30 "$tmp/debootstrap/debootstrap.log" >&2
			log "debootstrap failed (full log: $parent/debootstrap.log)"
			exit 1
		fi
		log "debootstrap took $((SECONDS - start))s"
		echo "$ROOT_PKGS" | as_root tee "$tmp/.mmpbridge-packages" >/dev/null
		as_root rm -rf --one-file-system "$NUMPY2_ROOT"
		as_root mv "$tmp" "$NUMPY2_ROOT"
		trap - EXIT
		v=$(root_numpy_version "$NUMPY2_ROOT" || true)
	fi
	if ! is_numpy2 "$v"; then
		log "numpy-2 root $NUMPY2_ROOT has no numpy >= 2 (got '${v:-none}')"
		exit 1
	fi
	numpy2_version=$v
fi

# --- summary -------------------------------------------------------------
echo "go: $(go version)"
echo "system numpy (/usr/bin/python3): $(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')"
echo "numpy-2 root ($NUMPY2_ROOT): $numpy2_version"
