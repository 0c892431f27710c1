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
		log=$(mktemp)
		if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "${FUZZMINIMIZETIME:-2s}" 2>&1 | tee "$log"; then
			# Go's fuzzing coordinator sometimes ends a run on a loaded
			# machine with "context deadline exceeded" and no crasher: run
			# the target once more; a real crash leaves its input in
			# testdata/fuzz and fails again.
			if grep -q "context deadline exceeded" "$log" && ! grep -q "Failing input written" "$log"; then
				echo "== fuzz $pkg $target: the coordinator timed out without a crasher; once more"
				go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "${FUZZMINIMIZETIME:-2s}"
			else
				rm -f "$log"
				exit 1
			fi
		fi
		rm -f "$log"
	done
done
