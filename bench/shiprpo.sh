#!/usr/bin/env bash
# write→durable (WAIT with --ack durable) under redis-benchmark load, this
# tree against a baseline build, side by side: RUNS rounds, each running
# bench/ship.sh for the baseline and this tree at --interval 1s and 200ms,
# interleaved. Prints each run's row, then per case the probes pooled over
# the runs: p50 / p99 / max and the share over 1 s, and the median segments
# stored per run.
# Usage: bench/shiprpo.sh   BASE=<git rev> RUNS=3 N=2000000 JITTER=200ms
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:?BASE=<git rev of the baseline>}
RUNS=${RUNS:-3}
export N=${N:-2000000} JITTER=${JITTER:-200ms} PLAIN=0 ROW=1
tmp=$(mktemp -d /tmp/redback-bench-rpo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/base"
git archive "$BASE" | tar -x -C "$tmp/base"
(cd "$tmp/base" && go build -o "$tmp/redback-base" ./cmd/redback)
go build -o "$tmp/redback-new" ./cmd/redback
echo "machine: $(nproc) cores, $(uptime)"
echo "baseline $(git rev-parse --short "$BASE"), this tree $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +changes)"
echo "build interval p50 p99 max probes timeouts segments SET/s load"
for r in $(seq 1 "$RUNS"); do
  for iv in 1s 200ms; do
    for b in base new; do
      row=$(REDBACK="$tmp/redback-$b" INTERVAL=$iv KEEP_PROBES="$tmp/probes-$b-$iv-$r" bash bench/ship.sh)
      echo "$b $row"
      echo "$row" | awk '{print $7}' >>"$tmp/segs-$b-$iv"
    done
  done
done
echo
echo "| build | --interval | runs | probes | p50 | p99 | max | > 1 s | segments per run (median) |"
echo "|---|---|---|---|---|---|---|---|---|"
for iv in 1s 200ms; do
  for b in base new; do
    cat "$tmp"/probes-$b-$iv-* 2>/dev/null | sort -g >"$tmp/pool" || true
    segs=$(sort -g "$tmp/segs-$b-$iv" | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    python3 - "$tmp/pool" "$b" "$iv" "$RUNS" "$segs" <<'PY'
import sys, math
xs = [float(l) for l in open(sys.argv[1]) if l.strip()]
b, iv, runs, segs = sys.argv[2:6]
def q(p):
    if not xs: return float('nan')
    return xs[min(len(xs) - 1, max(0, math.ceil(p * len(xs)) - 1))]
over = sum(1 for x in xs if x > 1000)
share = f"{100 * over / len(xs):.0f}%" if xs else "-"
print(f"| {b} | {iv} | {runs} | {len(xs)} | {q(0.5):.0f} ms | {q(0.99):.0f} ms | {q(1.0):.0f} ms | {share} | {segs} |")
PY
  done
done
