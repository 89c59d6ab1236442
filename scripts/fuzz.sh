#!/usr/bin/env bash
# Runs every fuzz target for a short time each: scripts/fuzz.sh [DURATION]
# (default 10s; run longer by hand, e.g. scripts/fuzz.sh 10m). Crashers land
# in the package's testdata/fuzz/ and must be committed with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz: $pkg $target ($dur)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$dur" "$pkg"
  done
done
echo "fuzz: done"
