#!/usr/bin/env bash
# Prepares this machine for the mmpbridge tests and demo, from nothing.
# Idempotent: a second run only checks, in a few seconds.
#
#   - Debian packages: the C libraries (libhdf5-dev, pkg-config)
#   - the Go module cache (go mod download)
#   - tox, in its own virtualenv, and with it the Python environments of
#     tox.ini (numpy1, numpy2, reference, and debian on Debian's own
#     /usr/bin/python3.11 with its venv module), installed from PyPI into
#     $MMP_PYENVS (scripts/env.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

log() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages: C libraries, GNU time for scripts/bench.sh, nginx for the remote-file tests,
# python3.11-venv for the debian environment, qemu-user-static and libc6-arm64-cross to run the
# aarch64 wheel (python-tests/test_wheels.py)
APT_PKGS=(libhdf5-dev pkg-config time nginx-light python3.11-venv qemu-user-static libc6-arm64-cross)
missing=()
for p in "${APT_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "apt: installing ${missing[*]}"
	as_root apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- Go ------------------------------------------------------------------
command -v go >/dev/null 2>&1 || { log "go not found (install Go 1.26 to /usr/local/go)"; exit 1; }
go mod download

# --- Python: tox and the environments of tox.ini -------------------------
py="${MMP_PYTHON:-python3}"
command -v "$py" >/dev/null 2>&1 || { log "$py not found (set MMP_PYTHON)"; exit 1; }
if ! "$MMP_TOX" --version >/dev/null 2>&1; then
	log "installing tox into $MMP_CACHE/tox"
	rm -rf "$MMP_CACHE/tox"
	mkdir -p "$MMP_CACHE"
	"$py" -m venv "$MMP_CACHE/tox"
	"$MMP_CACHE/tox/bin/pip" install -q 'tox>=4.11'
fi
# --notest: create or update the environments, run nothing.
if ! log_out=$("$MMP_TOX" run --notest -e numpy1,numpy2,reference,debian 2>&1); then
	printf '%s\n' "$log_out" >&2
	log "tox could not create the Python environments"
	exit 1
fi

for e in numpy1 numpy2 reference debian; do
	printf '%-9s %s\n' "$e" "$("$MMP_PYENVS/$e/bin/python" -c 'import sys, numpy; print("Python", sys.version.split()[0], "numpy", numpy.__version__)')"
done
echo "go: $(go version)"
