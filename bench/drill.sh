#!/usr/bin/env bash
# Benchmarks `redback drill` against the floor a recovery cannot beat: a
# redis-server cold-loading the plain RDB (start until it serves: PING
# answers and INFO says loading:0) plus the time to read the stored object.
# Target: drill RTO <= 1.5 x (cold load + read object). Exits 3 when missed.
#
# On the shared dataset (bench/dataset.sh, ~1M keys): one scratch server
# cold-loads the RDB (timed) and is then snapshotted with
# `redback snapshot --method sync` into a file repository; then RUNS cold
# loads and RUNS drills alternate (RUNS=3 by default) and medians are taken.
# Prints a Markdown section (also left in bench/out/drill.md); with
# APPEND_TO=docs/performance.md it is appended there too.
# Usage: bench/drill.sh [RDB]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
rdb=${1:-}
if [ -z "$rdb" ]; then
  bash bench/dataset.sh >&2
  rdb=bench/out/dataset/dump.rdb
fi
tmp=$(mktemp -d /tmp/redback-bench-drill.XXXXXX)
srv_pid=
cleanup() {
  if [ -n "$srv_pid" ]; then kill -9 "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
RB="$tmp/redback"
export PATH=/usr/local/go/bin:$PATH
CGO_ENABLED=0 go build -o "$RB" ./cmd/redback

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# cold_load: start redis-server on a copy of the RDB, wait until it serves;
# sets cold_s and leaves the server running as $srv_pid on $srv_port.
cold_load() {
  local dir="$tmp/cold" t0 t1 i
  rm -rf "$dir"; mkdir -p "$dir"; cp "$rdb" "$dir/dump.rdb"
  # Flush the copy first, as the drill's restore does (it fsyncs dump.rdb):
  # otherwise the load competes with the writeback of 200+ MB.
  sync "$dir/dump.rdb"
  srv_port=$(free_port)
  t0=$(now)
  redis-server --port "$srv_port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
    --repl-diskless-sync-delay 0 --logfile "$dir/redis.log" &
  srv_pid=$!
  # One light poller process (a redis-cli per poll would steal CPU from
  # the load on a small machine): INFO persistence every 10 ms until loading:0.
  python3 - "$srv_port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
deadline = time.time() + 3600
while time.time() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            while True:
                s.sendall(b"INFO persistence\r\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    data += chunk
                    head, sep, rest = data.partition(b"\r\n")
                    if not sep:
                        continue
                    if not head.startswith(b"$") or len(rest) >= int(head[1:]) + 2:
                        break
                if b"\r\nloading:0\r\n" in data:
                    sys.exit(0)
                time.sleep(0.01)
    except OSError:
        time.sleep(0.01)
sys.exit(1)
PY
  t1=$(now)
  redis-cli -p "$srv_port" ping >/dev/null
  cold_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
}
stop_server() { kill -9 "$srv_pid"; wait "$srv_pid" 2>/dev/null || true; srv_pid=; rm -rf "$tmp/cold"; }
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

echo "drill bench: building the repository" >&2
cold_load
keys=$(redis-cli -p "$srv_port" dbsize)
"$RB" snapshot --source "redis://127.0.0.1:$srv_port" --repo "$tmp/repo" --json >"$tmp/snap.json" 2>"$tmp/snap.err"
stop_server
obj=$(ls "$tmp"/repo/data/snapshots/*)
stored=$(stat -c %s "$obj")
raw=$(stat -c %s "$rdb")

colds=(); reads=(); ratios=(); rtos=(); totals=(); fetch=(); restore=(); load=(); checks=()
for r in $(seq 1 "$RUNS"); do
  echo "drill bench: run $r/$RUNS" >&2
  cold_load; colds+=("$cold_s"); stop_server
  t0=$(now); cat "$obj" >/dev/null; t1=$(now)
  reads+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')")
  code=0
  "$RB" drill --repo "$tmp/repo" --json >"$tmp/drill.json" 2>"$tmp/drill.err" || code=$?
  if [ "$code" != 0 ]; then echo "drill bench: redback drill exited $code:" >&2; cat "$tmp/drill.err" "$tmp/drill.json" >&2; exit 1; fi
  read -r rto total f rs l c < <(python3 -c '
import json,sys
d=json.load(open(sys.argv[1])); p=d["phases"]
print(d["rto_seconds"], d["total_seconds"], p["fetch"], p["restore"], p["load"], p["checks"])' "$tmp/drill.json")
  rtos+=("$rto"); totals+=("$total"); fetch+=("$f"); restore+=("$rs"); load+=("$l"); checks+=("$c")
  ratios+=("$(awk -v d="$rto" -v c="$cold_s" -v r="${reads[-1]}" 'BEGIN{printf "%.2f", d/(c+r)}')")
done

m() { printf '%s\n' "$@" | median | awk '{printf "%.3f", $1}'; }
cold_m=$(m "${colds[@]}"); read_m=$(m "${reads[@]}"); rto_m=$(m "${rtos[@]}"); total_m=$(m "${totals[@]}")
floor=$(awk -v a="$cold_m" -v b="$read_m" 'BEGIN{printf "%.3f", a+b}')
ratio=$(awk -v a="$rto_m" -v b="$floor" 'BEGIN{printf "%.2f", a/b}')
verdict=met; status=0
if awk -v r="$ratio" 'BEGIN{exit !(r > 1.5)}'; then verdict=MISSED; status=3; fi
load_avg=$(cut -d' ' -f1-3 /proc/loadavg)

section=$(cat <<EOF

## Drill RTO vs cold load (\`bench/drill.sh\`)

Command: \`RUNS=$RUNS bench/drill.sh\` (dataset: \`bench/dataset.sh\`, $keys keys,
$(awk -v b="$raw" 'BEGIN{printf "%.1f MB", b/1e6}') RDB, $(awk -v b="$stored" 'BEGIN{printf "%.1f MB", b/1e6}') stored with zstd; file repository; redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/');
$(nproc) cores, load average $load_avg at the end). Medians of $RUNS runs, in seconds.

| measurement | seconds |
|---|---:|
| redis-server cold load of the plain RDB (start to \`loading:0\` + PING) | $cold_m |
| read the stored object (\`cat\`, page cache) | $read_m |
| **floor** = cold load + read | **$floor** |
| drill phase fetch (copy the object out of the repository) | $(m "${fetch[@]}") |
| drill phase restore (decompress, sha256, full RDB parse, write dump.rdb: \`restore.ToDir\`) | $(m "${restore[@]}") |
| drill phase load (scratch replica start to serving) | $(m "${load[@]}") |
| **drill RTO** = fetch + restore + load | **$rto_m** |
| drill phase checks (INFO keyspace, DEBUG DIGEST, 100-key sample, FUNCTION LIST) | $(m "${checks[@]}") |
| drill total | $total_m |

Ratio drill RTO / floor: **$ratio** (target <= 1.5: $verdict); per run
(drill RTO / that run's cold load + read): $(echo "${ratios[@]}"). The checks are
not part of the RTO: a real recovery serves as soon as the load ends, and
DEBUG DIGEST alone is O(N) on the server (it dominates the checks phase).
EOF
)
mkdir -p bench/out
printf '%s\n' "$section" | tee bench/out/drill.md
if [ -n "${APPEND_TO:-}" ]; then printf '%s\n' "$section" >>"$APPEND_TO"; fi
exit $status
