#!/usr/bin/env bash
# Benchmarks `redback ship` against a plain replica, in one run:
#   (a) primary + `redis-server --replicaof` replica:  SET throughput
#   (b) primary + `redback ship --ack durable` into a file repository:
#       SET throughput, max durable lag (primary offset - ship's ACKed
#       offset, sampled every 100 ms from INFO replication), catch-up time
#       after the load, peak RSS and CPU time (/usr/bin/time), and whether the
#       stored log ends at the primary's offset.
#       During the load, bench/shiplag probes write→durable latency on one
#       connection: SET probe:<i> <ts>; WAIT 1 5000, every 100 ms + U(0,1s)
#       (WAIT counts that connection's writes; with --ack durable ship ACKs
#       only stored offsets). p50/p99/max over the probes, and how many
#       timed out (WAIT returned 0).
# Load: redis-benchmark -t set -P 16 -d $D -r 1000000 -n $N (defaults 100, 2M).
# Usage: bench/ship.sh      N=2000000 D=100 INTERVAL=1s [KEEP_PROBES=file]
#        [REDBACK=binary] (another build, e.g. a baseline; default: this tree)
#        [JITTER=1s] (the probes' random pause; smaller: more probes)
#        [PLAIN=0] (skip the plain-replica run)
#        [ROW=1] (print only the ship row, for bench/shiprpo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000000}
D=${D:-100}
INTERVAL=${INTERVAL:-1s}
tmp=$(mktemp -d /tmp/redback-bench-ship.XXXXXX)
RB=$tmp/redback
if [ -n "${REDBACK:-}" ]; then cp "$REDBACK" "$RB"; else CGO_ENABLED=0 go build -o "$RB" ./cmd/redback; fi
JITTER=${JITTER:-1s}
go build -o "$tmp/shiplag" ./bench/shiplag
pids=()
cleanup() {
  # start() runs in a command substitution (a subshell), so its pids+= is
  # lost: stop every server by its pidfile instead.
  for f in "$tmp"/*/redis.pid; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # A server killed just now may still write its log: try again briefly.
  for _ in 1 2 3 4 5; do rm -rf "$tmp" 2>/dev/null && break; sleep 0.2; done
  return 0
}
trap cleanup EXIT
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
now() { date +%s.%N; }
cli() { redis-cli -p "$1" "${@:2}"; }
start() { # start NAME [args...] -> port
  local d=$tmp/$1 p; p=$(freeport); mkdir -p "$d"
  redis-server --port "$p" --bind 127.0.0.1 --dir "$d" --save "" --appendonly no --repl-diskless-sync-delay 0 \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" "${@:2}"
  for _ in $(seq 1 500); do cli "$p" ping >/dev/null 2>&1 && break; sleep 0.02; done
  pids+=("$(cat "$d/redis.pid")")
  echo "$p"
}
info() { cli "$1" info replication | tr -d '\r' | grep "^$2:" | cut -d: -f2; }
slave_off() { cli "$1" info replication | tr -d '\r' | sed -n 's/^slave0:.*offset=\([0-9]*\).*/\1/p'; }
wait_online() { for _ in $(seq 1 1500); do cli "$1" info replication | grep -q 'slave0:.*state=online' && return 0; sleep 0.02; done; echo "no replica online" >&2; exit 1; }
bench() { redis-benchmark -p "$1" -t set -P 16 -d "$D" -r 1000000 -n "$N" -q 2>/dev/null | tr '\r' '\n' | grep -o 'SET: [0-9.]*' | tail -1 | cut -d' ' -f2; }

# (a) plain replica
rps_a=
if [ "${PLAIN:-1}" != 0 ]; then
  pa=$(start primary-a)
  start replica-a --replicaof 127.0.0.1 "$pa" >/dev/null
  wait_online "$pa"
  rps_a=$(bench "$pa")
  kill "$(cat "$tmp/replica-a/redis.pid")" "$(cat "$tmp/primary-a/redis.pid")"
fi

# (b) ship
pb=$(start primary-b)
/usr/bin/time -f "%M %U %S" -o "$tmp/rss" "$RB" ship --source "redis://127.0.0.1:$pb" --repo "$tmp/repo" \
  --ack durable --interval "$INTERVAL" --json >"$tmp/ship.json" 2>"$tmp/ship.log" &
shippid=$!
pids+=("$shippid")
wait_online "$pb"
maxlag=0
( for _ in $(seq 1 3000); do  # bounded: killed after the load, <= ~5 min anyway
    sleep 0.1; m=$(info "$pb" master_repl_offset); s=$(slave_off "$pb"); [ -n "$s" ] && echo $((m - s))
  done ) >"$tmp/lag" &
sampler=$!
pids+=("$sampler")
"$tmp/shiplag" -addr "127.0.0.1:$pb" -every 100ms -jitter "$JITTER" -max 600 -duration 150s -timeout 5s \
  -raw "$tmp/probes" >"$tmp/shiplag.out" 2>"$tmp/shiplag.err" &
prober=$!
pids+=("$prober")
t0=$(now)
rps_b=$(bench "$pb")
t1=$(now)
kill -INT "$prober" 2>/dev/null || true; wait "$prober" || true  # finishes its in-flight WAIT (<= 5 s)
read -r _ probes _ timeouts _ perrs _ p50 _ p99 _ pmax <"$tmp/shiplag.out" || true
cat "$tmp/shiplag.err" >&2
if [ -n "${KEEP_PROBES:-}" ]; then cp "$tmp/probes" "$KEEP_PROBES" || true; fi
target=$(info "$pb" master_repl_offset)
caught=no
for _ in $(seq 1 3000); do
  s=$(slave_off "$pb"); if [ -n "$s" ] && [ "$s" -ge "$target" ]; then caught=yes; break; fi; sleep 0.02
done
t2=$(now)
kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
maxlag=$(sort -n "$tmp/lag" | tail -1)
kill -INT "$(pgrep -P "$shippid")"; wait "$shippid" || true  # time(1) ignores SIGINT; signal redback
read -r rss_kb cpu_u cpu_s <"$tmp/rss"
cpu=$(python3 -c "print(round($cpu_u+$cpu_s,1))")
durable=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["DurableOffset"])' "$tmp/ship.json")
stream_mb=$(python3 -c "print(round($target/1e6/($t1-$t0),1))")
catchup=$(python3 -c "print(round($t2-$t1,2))")
segs=$(find "$tmp/repo" -name '*.json' -path '*/segs/*' | wc -l)
stored=$(find "$tmp/repo" -path '*data/gens/*' -type f -printf '%s\n' | awk '{n+=$1} END{print n+0}')
grep -E 'level=(WARN|ERROR)' "$tmp/ship.log" >&2 || true
if [ -n "${ROW:-}" ]; then
  echo "$INTERVAL ${p50:-nan} ${p99:-nan} ${pmax:-nan} ${probes:-0} ${timeouts:-0} $segs $rps_b $(uptime | sed 's/.*average: //; s/,.*//')"
  exit 0
fi
cat <<OUT
| case | primary SET/s | stream | max durable lag | catch-up after load | RSS | CPU | kept up | write→durable p50 / p99 / max (probes, timeouts, errors) |
|---|---|---|---|---|---|---|---|---|
| plain replica (--replicaof) | $rps_a | | | | | | | |
| redback ship --ack durable --interval $INTERVAL | $rps_b | $target B in $(python3 -c "print(round($t1-$t0,1))") s = $stream_mb MB/s | $(python3 -c "print(round(${maxlag:-0}/1e6,2))") MB | ${catchup} s ($caught) | $((rss_kb/1024)) MB | ${cpu} s | durable $durable of $target; $segs segments, $((stored/1024/1024)) MiB stored | ${p50:-?} / ${p99:-?} / ${pmax:-?} ms (${probes:-0}, ${timeouts:-?} timed out, ${perrs:-?} errors) |
OUT
