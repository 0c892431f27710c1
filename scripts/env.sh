# Sourced by the scripts: where the toolchain and the Python environments are.
#   MMP_CACHE    ~/.cache/mmpbridge: tox itself, the Python environments
#   MMP_PYENVS   $MMP_CACHE/pyenvs: numpy1, numpy2, reference (see tox.ini)
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
export MMP_CACHE="${MMP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmpbridge}"
export MMP_PYENVS="${MMP_PYENVS:-$MMP_CACHE/pyenvs}"
MMP_TOX="$MMP_CACHE/tox/bin/tox"
