#!/usr/bin/env bash
# Runs every benchmark side by side with its baseline, one after the other
# (each builds what it needs and prints its own table; see docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")"
for b in check_rdb snapshot restore drill ship migrate; do
  echo "== bench/$b.sh"
  bash "$b.sh"
done
