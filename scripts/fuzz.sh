#!/usr/bin/env bash
# Short fuzzing runs of every Go fuzz target (the seed corpora already run in
# `go test`). FUZZTIME per target, default 20s; failures leave the crasher in
# the package's testdata/fuzz/ for a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH
fuzztime="${FUZZTIME:-20s}"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "== fuzz $pkg $target ($fuzztime)"
		go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "${FUZZMINIMIZETIME:-2s}"
	done
done
