#!/usr/bin/env bash
# Peak RSS of redback's commands on the shared dataset (bench/dataset.sh,
# "1x", 239 MB) and on the ten-times one (bench/dataset10.sh, "10x"), issue
# #17 §2: memory must be bounded by configuration, not by the data. For
# each dataset, one after the other (one big server at a time):
#   check rdb, digest, digest --per-key    of the RDB file
#   snapshot --method sync, --method bgsave of a redis-server that loaded it
#   ship: its first start (the full sync), then catching up a backlog of
#         writes made while it was stopped (PSYNC)
#   verify                                 of the repository
#   restore --repo --latest --to-dir
#   restore --repo --latest --to-redis --method replicate   (empty server)
#   restore --repo --latest --to-redis --method restore     (RESTORE=1 only)
#   restore --repo --latest --db N --map-db N:0 --to-redis NODE: into a
#         live 3-primary cluster (one db: 0 of 1x, 1 of big, 10 of 10x),
#         its union digest checked against `redback digest` of the same
#         db written to a file with --to-rdb
#   snapshot of that cluster (a backup set: its 3 shards at once), and
#   restore of the set into another 3-primary cluster (union digest checked)
#   drill --repo                           (redback's own peak, not its scratch server's)
# Peak RSS is /usr/bin/time -v's "Maximum resident set size"; every
# restored server's DEBUG DIGEST is checked against the source's.
# Usage: bench/memory.sh [1 10 big]   (datasets; default 1 10; "big" is
# only the big values of the ten-times one, BIG_ONLY=1 bench/dataset10.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# RB=path runs a prebuilt redback (e.g. main's, for a before/after).
# The binary as shipped (the Makefile's static build): a cgo build maps libc too.
if [ -z "${RB:-}" ]; then RB=$PWD/bin/redback; CGO_ENABLED=0 go build -o "$RB" ./cmd/redback; fi
source bench/lib.sh
sets=("$@"); [ ${#sets[@]} -gt 0 ] || sets=(1 10)
for s in "${sets[@]}"; do
  case $s in
    10) bash bench/dataset10.sh >&2 ;;
    big) BIG_ONLY=1 bash bench/dataset10.sh >&2 ;;
    *) bash bench/dataset.sh >&2 ;;
  esac
done
tmp=$(mktemp -d /tmp/redback-bench-memory.XXXXXX); pids=(); allnodes=()
# Cluster nodes are shut down (and waited for) before the temp dir goes.
trap 'for p in "${allnodes[@]}"; do stop "$p"; done; bench_cleanup' EXIT
echo "machine: $(nproc) cores, $(uname -sr), $(redis-server --version | awk '{print $3}'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
fail=0
# m LABEL CMD...: runs CMD under /usr/bin/time -v, prints wall and peak RSS.
m() {
  local label=$1; shift
  if ! /usr/bin/time -v -o "$tmp/time" "$@" >"$tmp/out" 2>"$tmp/err"; then
    echo "$label: failed" >&2; cat "$tmp/err" >&2; fail=1
  fi
  report "$label"
}
# m_self LABEL CMD...: like m, but the peak is CMD's own (VmHWM sampled
# from /proc every 20 ms): /usr/bin/time counts the largest descendant too,
# and a drill's scratch redis-server holds the whole dataset.
m_self() {
  local label=$1 pid hwm=0 h; shift
  "$@" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    h=$(awk '/^VmHWM/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$h" ] && [ "$h" -gt "$hwm" ] && hwm=$h
    sleep 0.02
  done
  if ! wait "$pid"; then echo "$label: failed" >&2; cat "$tmp/err" >&2; fail=1; fi
  printf '%-4s %-44s %10s      %8.1f MB peak RSS (its own)\n' "$ds" "$label" "" "$(awk -v k="$hwm" 'BEGIN{print k/1024}')"
  awk -v k="$hwm" 'BEGIN{exit !(k>64*1024)}' && over+=("$ds $label")
  return 0
}
# report LABEL: prints the wall time and peak RSS in $tmp/time.
report() {
  local label=$1 kb wall
  kb=$(awk -F': ' '/Maximum resident set size/{print $2}' "$tmp/time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$tmp/time")
  printf '%-4s %-44s %10s wall %8.1f MB peak RSS\n' "$ds" "$label" "$wall" "$(awk -v k="$kb" 'BEGIN{print k/1024}')"
  awk -v k="$kb" 'BEGIN{exit !(k>64*1024)}' && over+=("$ds $label")
  return 0
}
# ship_until LABEL OFFSET: runs `ship --ack durable` of the source under
# /usr/bin/time -v until the offset it reports durable (the replica's
# offset in the source's INFO replication) reaches OFFSET, then stops it
# (SIGTERM) and prints its peak RSS. At most 10 minutes.
ship_until() {
  local label=$1 want=$2 tpid got=
  /usr/bin/time -v -o "$tmp/time" "$RB" ship --source "redis://127.0.0.1:$src" --repo "file://$tmp/ship$ds" --name src \
    --ack durable --tick 0 >"$tmp/out" 2>"$tmp/err" &
  tpid=$!
  for _ in $(seq 1 6000); do
    got=$(redis-cli -p "$src" info replication | tr -d '\r' | sed -n 's/^slave0:.*offset=\([0-9]*\).*/\1/p')
    [ -n "$got" ] && [ "$got" -ge "$want" ] && break
    sleep 0.1
  done
  if [ -z "$got" ] || [ "$got" -lt "$want" ]; then echo "$label: durable offset ${got:-none}, want $want" >&2; fail=1; fi
  kill -TERM "$(pgrep -P "$tpid")" 2>/dev/null || true
  wait "$tpid" || true
  report "$label"
}
master_offset() { redis-cli -p "$src" info replication | tr -d '\r' | sed -n 's/^master_repl_offset://p'; }
check_digest() {
  local got; got=$(redis-cli -p "$1" debug digest)
  if [ "$got" != "$want" ]; then echo "$ds $2: DEBUG DIGEST $got, want $want" >&2; fail=1; fi
}
over=()
for ds in "${sets[@]}"; do
  case $ds in
    10) dir=$PWD/bench/out/dataset10 ;;
    big) dir=$PWD/bench/out/datasetbig ;;
    *) dir=$PWD/bench/out/dataset ;;
  esac
  rdb=$dir/dump.rdb; want=$(cat "$dir/digest")
  echo "$ds: $rdb ($(stat -c %s "$rdb") bytes), digest $want" >&2
  repo="file://$tmp/repo$ds"
  m "check rdb" "$RB" check rdb "$rdb"
  m "digest" "$RB" digest "$rdb"
  m "digest --per-key" "$RB" digest --per-key "$rdb"
  rm -rf "$tmp/src"; mkdir -p "$tmp/src"; ln "$rdb" "$tmp/src/dump.rdb" 2>/dev/null || cp "$rdb" "$tmp/src/dump.rdb"
  start "$tmp/src"; src=$port
  redis-cli -p "$src" config set repl-diskless-sync-delay 0 >/dev/null
  m "snapshot --method sync" "$RB" snapshot --source "redis://127.0.0.1:$src" --repo "$repo" --name src --method sync
  m "snapshot --method bgsave" "$RB" snapshot --source "redis://127.0.0.1:$src" --repo "$repo" --name src --method bgsave
  # ship catching up a backlog: a first ship takes the full sync (the base
  # of a generation) and is stopped; BACKLOG_N SETs of 1000 bytes (default
  # 200000, about 210 MB of stream) pile up in the source's replication
  # backlog; a second ship resumes the generation with PSYNC and stores them
  # (in a repository of their own).
  redis-cli -p "$src" config set repl-backlog-size 512mb >/dev/null
  ship_until "ship (full sync: the base)" "$(master_offset)"
  redis-benchmark -p "$src" -t set -P 16 -d 1000 -r 100000 -n "${BACKLOG_N:-200000}" -q >/dev/null 2>&1
  ship_until "ship catching up a backlog" "$(master_offset)"
  rm -rf "$tmp/ship$ds"
  stop "$src"; rm -rf "$tmp/src"
  m "verify" "$RB" verify --repo "$repo" --name src
  mkdir -p "$tmp/dir"
  m "restore --to-dir" "$RB" restore --repo "$repo" --name src --latest --to-dir "$tmp/dir"
  rm -rf "$tmp/dir"
  methods=(replicate); [ "${RESTORE:-0}" = 1 ] && methods+=(restore)
  for meth in "${methods[@]}"; do
    rm -rf "$tmp/t"; mkdir -p "$tmp/t"; start "$tmp/t"
    m "restore --to-redis --method $meth" "$RB" restore --repo "$repo" --name src --latest --to-redis "redis://127.0.0.1:$port" --method "$meth"
    check_digest "$port" "restore --method $meth"
    stop "$port"; rm -rf "$tmp/t"
  done
  db=0; case $ds in big) db=1 ;; 10) db=10 ;; esac
  "$RB" restore --repo "$repo" --name src --latest --db "$db" --map-db "$db:0" --to-rdb "$tmp/db0.rdb" >/dev/null
  wantc=$("$RB" digest "$tmp/db0.rdb"); rm -f "$tmp/db0.rdb"
  cluster 3
  m "restore --db $db --map-db $db:0 into a cluster" "$RB" restore --repo "$repo" --name src --latest --db "$db" --map-db "$db:0" \
    --to-redis "redis://127.0.0.1:${nodes[0]}"
  gotc=$(union "${nodes[@]}")
  if [ "$gotc" != "$wantc" ]; then echo "$ds restore into a cluster: union digest $gotc, want $wantc" >&2; fail=1; fi
  m "snapshot of the cluster (a set)" "$RB" snapshot --source "redis://127.0.0.1:${nodes[0]}" --repo "file://$tmp/crepo$ds" --name cache
  for p in "${nodes[@]}"; do stop "$p"; done
  cluster 3
  m "restore of the set into a cluster" "$RB" restore --repo "file://$tmp/crepo$ds" --name cache --latest --to-redis "redis://127.0.0.1:${nodes[0]}"
  gotc=$(union "${nodes[@]}")
  if [ "$gotc" != "$wantc" ]; then echo "$ds restore of the set: union digest $gotc, want $wantc" >&2; fail=1; fi
  for p in "${nodes[@]}"; do stop "$p"; done
  rm -rf "$tmp/crepo$ds"
  m_self "drill (redback alone)" "$RB" drill --repo "$repo" --name src
  rm -rf "$tmp/repo$ds"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
for o in "${over[@]}"; do echo "OVER 64 MB: $o"; done
[ ${#over[@]} -eq 0 ] || fail=1
exit $((fail * 3))
