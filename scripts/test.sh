#!/usr/bin/env bash
# The project's single test command (also what CI runs via .ci/run).
set -euo pipefail

cd "$(dirname "$0")/.."

bash scripts/setup.sh

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

# The Go tests (internal/pyrun) look for the numpy-2 root here.
export MMP_NUMPY2_ROOT="${MMP_NUMPY2_ROOT:-/var/cache/mmpbridge/sid-numpy2}"

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 ./...

if [ -x scripts/fuzz.sh ]; then
	echo "== scripts/fuzz.sh"
	scripts/fuzz.sh
fi

# The python-tests suite (pytest under tox) lives behind tox.ini.
if [ -f tox.ini ]; then
	echo "== tox"
	tox
fi

# The README's first command must keep working.
echo "== scripts/demo.sh"
bash scripts/demo.sh

echo "== all tests passed"
