#!/usr/bin/env bash
# Objects a shipper adds to a file repository per day, idle and under a
# trickle of writes, this tree against a baseline build, side by side (both
# at once, each with its own primary; the primaries PING their replicas
# every 10 s, the default): after the first generation is stored, W seconds
# with no write, then W seconds with one SET every EVERY seconds. Objects
# counted are the repository's files (a rewritten quiet.json counts once);
# per day = added * 86400 / W. Also checks that the stored log (the newest
# durable point in `redback list --json`) reaches the primary's offset at
# the end of each phase.
# Usage: bench/shipidle.sh   BASE=<git rev> W=180 EVERY=5 INTERVAL=1s
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:?BASE=<git rev of the baseline>}
W=${W:-180}
EVERY=${EVERY:-5}
INTERVAL=${INTERVAL:-1s}
source bench/lib.sh
tmp=$(mktemp -d /tmp/redback-bench-idle.XXXXXX)
pids=()
cleanup() {
  for f in "$tmp"/*/redis.pid; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/base"
git archive "$BASE" | tar -x -C "$tmp/base"
(cd "$tmp/base" && go build -o "$tmp/redback-base" ./cmd/redback)
go build -o "$tmp/redback-new" ./cmd/redback
cli() { redis-cli -p "$1" "${@:2}"; }
startsrv() { # startsrv NAME -> port
  local d=$tmp/$1 p; p=$(freeport); mkdir -p "$d"
  redis-server --port "$p" --bind 127.0.0.1 --dir "$d" --save "" --appendonly no --repl-diskless-sync-delay 0 \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log"
  for _ in $(seq 1 500); do cli "$p" ping >/dev/null 2>&1 && break; sleep 0.02; done
  echo "$p"
}
objects() { find "$tmp/repo-$1" -type f -not -name '*.tmp*' | wc -l; }
durable() { # durable BUILD PORT -> "stored/primary"
  local off to
  off=$(cli "$2" info replication | tr -d '\r' | sed -n 's/^master_repl_offset://p')
  to=$("$tmp/redback-$1" list --repo "$tmp/repo-$1" --json 2>/dev/null | python3 -c '
import json,sys
d=json.load(sys.stdin); ws=d.get("generations") or d.get("Generations") or []
print(max([w.get("to_offset", w.get("ToOffset", 0)) for w in ws] or [0]))' 2>/dev/null || echo "?")
  echo "$to/$off"
}
declare -A port
for b in base new; do
  port[$b]=$(startsrv "primary-$b")
  cli "${port[$b]}" set seed 1 >/dev/null
  "$tmp/redback-$b" ship --source "redis://127.0.0.1:${port[$b]}" --repo "$tmp/repo-$b" --interval "$INTERVAL" \
    >"$tmp/ship-$b.log" 2>&1 &
  pids+=("$!")
done
for b in base new; do
  for _ in $(seq 1 600); do [ -d "$tmp/repo-$b/gens" ] && ls "$tmp/repo-$b"/gens/*.json >/dev/null 2>&1 && break; sleep 0.1; done
done
sleep 3
echo "machine: $(nproc) cores, $(uptime)"
echo "baseline $(git rev-parse --short "$BASE"), this tree $(git rev-parse --short HEAD); W=${W}s, a SET every ${EVERY}s in the trickle, --interval $INTERVAL"
declare -A o0 o1 o2 d1 d2
for b in base new; do o0[$b]=$(objects "$b"); done
sleep "$W"
for b in base new; do o1[$b]=$(objects "$b"); d1[$b]=$(durable "$b" "${port[$b]}"); done
end=$(( $(date +%s) + W ))
i=0
while [ "$(date +%s)" -lt "$end" ]; do
  i=$((i + 1))
  for b in base new; do cli "${port[$b]}" set "k$i" "$i" >/dev/null; done
  sleep "$EVERY"
done
sleep 2
for b in base new; do o2[$b]=$(objects "$b"); d2[$b]=$(durable "$b" "${port[$b]}"); done
echo
echo "| build | idle: objects added in ${W}s | idle: objects/day | trickle ($i SETs): objects added | trickle: objects/day | stored/primary offset after idle, after trickle |"
echo "|---|---|---|---|---|---|"
for b in base new; do
  a=$((o1[$b] - o0[$b])); t=$((o2[$b] - o1[$b]))
  echo "| $b | $a | $((a * 86400 / W)) | $t | $((t * 86400 / W)) | ${d1[$b]}, ${d2[$b]} |"
done
