#!/usr/bin/env bash
# Benchmarks `redback snapshot --method sync` into a file repository against
# `redis-cli --rdb` into a file, side by side in one run, from the same
# scratch redis-server (repl-diskless-sync-delay 0) loaded with the shared
# dataset (bench/dataset.sh). RUNS runs each (default 3): median wall time,
# peak RSS (/usr/bin/time %M), MB/s of RDB, and redback's compression ratio.
# Targets: redback <= 1.05x the time of redis-cli --rdb, RSS <= 64 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS=${RUNS:-3}
RB=${RB:-$PWD/bin/redback}
[ -x "$RB" ] || go build -o bin/redback ./cmd/redback
[ -x /usr/bin/time ] || { echo "snapshot bench: apt-get install time" >&2; exit 1; }
bash bench/dataset.sh >&2
work=$(mktemp -d /tmp/redback-bench-snap.XXXXXX)
port=$(freeport)
cleanup() { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
cp bench/out/dataset/dump.rdb "$work/dump.rdb"
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
  --repl-diskless-sync-delay 0 --daemonize yes --logfile "$work/redis.log"
for _ in $(seq 1 300); do
  [ "$(redis-cli -p "$port" info persistence 2>/dev/null | tr -d '\r' | awk -F: '/^loading:/{print $2}')" = 0 ] && break
  sleep 0.1
done
rm -f "$work/dump.rdb"
keys=$(redis-cli -p "$port" dbsize)

# once NAME CMD...: one timed run; appends its seconds to T_NAME and keeps
# the largest RSS (KB) in KB_NAME. The runs of the three commands are
# interleaved (cli, fast, default, cli, ...) so that a change in the
# machine's load during the script hits all three alike.
once() {
  local name=$1; shift; local s kb
  rm -rf "$work/out"; mkdir -p "$work/out"
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
  read -r s kb <"$work/t"
  eval "T_$name+=(\"$s\")"
  local prev; eval "prev=\${KB_$name:-0}"; [ "$kb" -gt "$prev" ] && eval "KB_$name=$kb"
  return 0
}
T_cli=(); T_fast=(); T_def=(); R_fast=()
echo "dataset: $keys keys; $RUNS runs each, interleaved; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$RUNS"); do
  once cli redis-cli -p "$port" --rdb "$work/out/dump.rdb"
  rawsize=$(stat -c %s "$work/out/dump.rdb")
  once fast "$RB" snapshot --source "redis://127.0.0.1:$port" --repo "file://$work/out/repo" --json
  fstored=$(python3 -c 'import json,sys;m=json.load(open(sys.argv[1]));print(m["object"]["stored_bytes"])' "$work/fast.log" 2>/dev/null || echo 0)
  once def "$RB" snapshot --source "redis://127.0.0.1:$port" --repo "file://$work/out/repo" --compression default --json
  stored=$(python3 -c 'import json,sys;m=json.load(open(sys.argv[1]));print(m["object"]["stored_bytes"])' "$work/def.log" 2>/dev/null || echo 0)
  R_fast+=("$(awk -v c="${T_cli[-1]}" -v f="${T_fast[-1]}" 'BEGIN{printf "%.3f", f/c}')")
  echo "run $i: redis-cli ${T_cli[-1]} s, redback ${T_fast[-1]} s (${R_fast[-1]}x), --compression default ${T_def[-1]} s" >&2
done
cli_s=$(med "${T_cli[@]}"); rf_s=$(med "${T_fast[@]}"); rb_s=$(med "${T_def[@]}")
cli_kb=$KB_cli; rf_kb=$KB_fast; rb_kb=$KB_def
echo "median of the per-run ratios (redback / redis-cli, same run): $(med "${R_fast[@]}")x"
awk -v c="$cli_s" -v ck="$cli_kb" -v r="$rb_s" -v rk="$rb_kb" -v f="$rf_s" -v fk="$rf_kb" -v raw="$rawsize" -v st="$stored" -v fst="$fstored" 'BEGIN{
  printf "%-40s %6.2f s %7.1f MB/s %6.1f MB RSS\n", "redis-cli --rdb", c, raw/c/1e6, ck/1024
  printf "%-40s %6.2f s %7.1f MB/s %6.1f MB RSS  time ratio %.2fx (target <= 1.05)  compression %.2fx\n", "redback snapshot (default: fastest)", f, raw/f/1e6, fk/1024, f/c, (fst>0? raw/fst : 0)
  printf "%-40s %6.2f s %7.1f MB/s %6.1f MB RSS  time ratio %.2fx  compression %.2fx\n", "redback snapshot --compression default", r, raw/r/1e6, rk/1024, r/c, (st>0? raw/st : 0)
}'
