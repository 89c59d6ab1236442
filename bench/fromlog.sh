#!/usr/bin/env bash
# Benchmarks `redback snapshot --from-log` against a normal snapshot
# (`redback snapshot --method sync`) of the shared dataset (bench/dataset.sh),
# the source under a steady write load the whole time. Per run, interleaved:
#   normal: `redback snapshot --method sync` into its own file repository:
#           wall, redback CPU and peak RSS (/usr/bin/time), and the source's
#           INFO stats total_forks before/after and latest_fork_usec.
#   log:    `redback ship` runs into another repository (one full sync at the
#           start, then PSYNC); it is stopped for the synthesis (the lease),
#           `redback snapshot --from-log` runs (wall, CPU, peak RSS of redback;
#           the scratch server's CPU from its INFO and its peak RSS, VmHWM,
#           polled every 50 ms), ship is started again and LOGSECS of log
#           accumulate before the next run. total_forks before/after.
# At the end: the source's total_forks and latest_fork_usec, and whether the
# last synthesized snapshot's digest matched (the command verifies it).
# Usage: RUNS=3 LOGSECS=20 [RB=prebuilt-redback] bash bench/fromlog.sh
# (run it under nice -n 10)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
LOGSECS=${LOGSECS:-20}
bash bench/dataset.sh >&2
rdb=$PWD/bench/out/dataset/dump.rdb
tmp=$(mktemp -d /tmp/redback-bench-fromlog.XXXXXX)
RB=${RB:-$tmp/redback}
[ -x "$RB" ] || CGO_ENABLED=0 go build -o "$RB" ./cmd/redback
shippid=
loadpid=
cleanup() {
  touch "$tmp/stop"
  [ -n "$loadpid" ] && wait "$loadpid" 2>/dev/null || true
  [ -n "$shippid" ] && kill "$shippid" 2>/dev/null || true
  [ -s "$tmp/src/redis.pid" ] && kill "$(cat "$tmp/src/redis.pid")" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
stat_of() { redis-cli -p "$port" info stats | tr -d '\r' | sed -n "s/^$1://p"; }

mkdir -p "$tmp/src" "$tmp/scratch"
cp "$rdb" "$tmp/src/dump.rdb"
port=$(freeport)
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp/src" --save "" --appendonly no --repl-diskless-sync-delay 0 \
  --repl-backlog-size 512mb --enable-debug-command local --daemonize yes --pidfile "$tmp/src/redis.pid" --logfile "$tmp/src/redis.log"
for _ in $(seq 1 6000); do
  redis-cli -p "$port" info persistence 2>/dev/null | grep -q '^loading:0' && break
  sleep 0.05
done
src=redis://127.0.0.1:$port
echo "source: $(redis-cli -p "$port" dbsize) keys, used_memory_rss $(redis-cli -p "$port" info memory | tr -d '\r' | sed -n 's/^used_memory_rss_human://p'); load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Steady write load: batches of 20000 SETs of 100 bytes on the dataset's
# string keys, 2 clients, 0.2 s apart.
(while [ ! -e "$tmp/stop" ]; do
  redis-benchmark -p "$port" -t set -n 20000 -c 2 -r 600000 -d 100 -q >/dev/null 2>&1 || true
  sleep 0.2
done) &
loadpid=$!

ship_start() {
  "$RB" ship --source "$src" --repo "file://$tmp/repo" --interval 1s >>"$tmp/ship.log" 2>&1 &
  shippid=$!
  for _ in $(seq 1 3000); do
    find "$tmp/repo" -path '*gens/*/segs/*.json' 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  echo "ship stored no segment; log:" >&2; cat "$tmp/ship.log" >&2; exit 1
}
ship_stop() { kill -TERM "$shippid"; wait "$shippid" || true; shippid=; }
# peak_of DIR: max VmHWM (kB) of redis-server processes working in a
# directory under DIR (a server sets its process title, so its command line
# does not name it; it runs in its --dir), polled every 50 ms until
# $tmp/peak.stop exists.
peak_of() {
  local max=0 p v
  while [ ! -e "$tmp/peak.stop" ]; do
    for p in $(pgrep -x redis-server || true); do
      case $(readlink "/proc/$p/cwd" 2>/dev/null) in "$1"/*) ;; *) continue ;; esac
      v=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
      [ "${v:-0}" -gt "$max" ] && max=$v
    done
    sleep 0.05
  done
  echo "$max"
}

# own_peak PARENT: the peak RSS (VmHWM, kB) of PARENT's child (redback under
# /usr/bin/time), read every 50 ms until it exits. /usr/bin/time's %M is
# not it: wait4 reports the larger of a process's own peak and that of the
# children it reaped, and redback reaps its scratch redis-server.
own_peak() {
  local c="" v max=0
  for _ in $(seq 1 500); do c=$(pgrep -P "$1" | head -n 1 || true); [ -n "$c" ] && break; sleep 0.01; done
  while [ -n "$c" ] && [ -e "/proc/$c/status" ]; do
    v=$(awk '/^VmHWM:/{print $2}' "/proc/$c/status" 2>/dev/null || true)
    [ "${v:-0}" -gt "$max" ] && max=$v
    sleep 0.05
  done
  echo "$max"
}

ship_start
forks0=$(stat_of total_forks)
echo "after ship's first full sync: total_forks $forks0, latest_fork_usec $(stat_of latest_fork_usec)"
sleep "$LOGSECS"
# rss_MB is /usr/bin/time's %M (for "log" the scratch server's peak when it
# is larger), own_MB redback's own peak (VmHWM); cpu_s includes the
# scratch server's CPU (scr_cpu_s), a child redback reaps.
printf '%-4s %-7s %8s %8s %9s %8s %10s %10s %10s %6s %15s\n' run method wall_s cpu_s rss_MB own_MB scr_cpu_s scr_rss_MB forks+ lfu_ms load1
for i in $(seq 1 "$RUNS"); do
  # normal snapshot
  f0=$(stat_of total_forks)
  /usr/bin/time -f "%e %U %S %M" -o "$tmp/time" "$RB" snapshot --source "$src" --repo "file://$tmp/repo-normal" --method sync --json >"$tmp/n.json" 2>"$tmp/n.err" ||
    { cat "$tmp/n.err" >&2; exit 1; }
  read -r e u s m <"$tmp/time"
  f1=$(stat_of total_forks)
  printf '%-4s %-7s %8.2f %8.2f %9.1f %8s %10s %10s %10s %6.1f %15s\n' "$i" sync "$e" "$(echo "$u + $s" | bc)" "$(echo "$m / 1024" | bc -l)" - - - "$((f1 - f0))" \
    "$(echo "$(stat_of latest_fork_usec) / 1000" | bc -l)" "$(cut -d' ' -f1 /proc/loadavg)"
  # synthesized snapshot
  f0=$(stat_of total_forks)
  ship_stop
  rm -f "$tmp/peak.stop"
  peak_of "$tmp/scratch" >"$tmp/peak" &
  pk=$!
  /usr/bin/time -f "%e %U %S %M" -o "$tmp/time" "$RB" snapshot --from-log --repo "file://$tmp/repo" --scratch-dir "$tmp/scratch" --json >"$tmp/l.json" 2>"$tmp/l.err" &
  tp=$!
  own_peak "$tp" >"$tmp/own"
  wait "$tp" || { cat "$tmp/l.err" >&2; exit 1; }
  touch "$tmp/peak.stop"; wait "$pk"
  read -r e u s m <"$tmp/time"
  f1=$(stat_of total_forks)
  printf '%-4s %-7s %8.2f %8.2f %9.1f %8.1f %10.2f %10.1f %10s %6s %15s\n' "$i" log "$e" "$(echo "$u + $s" | bc)" "$(echo "$m / 1024" | bc -l)" "$(echo "$(cat "$tmp/own") / 1024" | bc -l)" \
    "$(jq -r .scratch_cpu_seconds "$tmp/l.json")" "$(echo "$(cat "$tmp/peak") / 1024" | bc -l)" "$((f1 - f0))" - "$(cut -d' ' -f1 /proc/loadavg)"
  jq -c '{offset: .snapshot.source.offset, base: .base_snapshot, segments, commands, rss_at_end: .scratch_rss_bytes, rdb: .snapshot.object.raw_bytes, verified: .snapshot.verified}' "$tmp/l.json"
  ship_start
  sleep "$LOGSECS"
done
ship_stop
touch "$tmp/stop"; wait "$loadpid" || true; loadpid=
echo "end: total_forks $(stat_of total_forks) (after ship's first full sync: $forks0, plus $RUNS normal snapshots), latest_fork_usec $(stat_of latest_fork_usec); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ship log (restarts):"; grep -ciE 'full sync|fullresync' "$tmp/ship.log" || true
