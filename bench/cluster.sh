#!/usr/bin/env bash
# Benchmarks `redback restore` into a Redis Cluster against the same
# restore into a standalone server, on the shared dataset (bench/dataset.sh,
# ~1M keys, all in db 0: a cluster has db 0 only, so no --map-db is
# needed; for an RDB with keys in another db give EXTRA="--db N --map-db
# N:0" and the reference is then that db alone, loaded into db 0).
#   (s)  `redback restore --from-rdb RDB --to-redis URL --method restore`
#        into an empty standalone server
#   (c1) the same into an empty 1-primary cluster (all 16384 slots)
#   (c2) into a 2-primary cluster, (c3) into a 3-primary cluster: the keys
#        routed by slot, one pipelined writer per primary, all at once
# Interleaved: each run restores into s, c1, c2, c3 in turn (targets
# emptied with FLUSHALL between runs, and synced before each timing);
# RUNS runs (default 3), medians. Each target's DEBUG DIGEST (a cluster's:
# the union of its primaries', computed here) must equal the digest of a
# server that loaded the RDB (not timed). Prints each median, the key rate
# and its ratio to (s). Every server is on loopback, in a temp dir.
# Usage: nice -n 10 bench/cluster.sh [RDB]   RUNS=3 PARALLEL=1 EXTRA=...
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
PARALLEL=${PARALLEL:-1}
EXTRA=${EXTRA:-}
RB=${RB:-$PWD/bin/redback}
CGO_ENABLED=0 go build -o "$RB" ./cmd/redback
source bench/lib.sh
bench_setup cluster "${1:-}"
# Shut the cluster nodes down and wait for them before the temp dir goes
# (a node killed mid-way still rewrites its nodes.conf).
allnodes=()
cluster_cleanup() { for p in "${allnodes[@]}"; do stop "$p"; done; bench_cleanup; }
trap cluster_cleanup EXIT
size=$(stat -c %s "$rdb")
echo "file: $rdb ($size bytes)"
echo "machine: $(nproc) cores, $(uname -sr), $(redis-server --version | awk '{print $3}'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

flush() { for p in "$@"; do redis-cli -p "$p" flushall >/dev/null; done; }

# The reference digest: a server that loaded the RDB (not timed); with
# EXTRA, a server the filtered keys were restored into.
mkdir -p "$tmp/ref"
if [ -z "$EXTRA" ]; then
  cp "$rdb" "$tmp/ref/dump.rdb"; start "$tmp/ref"
else
  start "$tmp/ref"
  # shellcheck disable=SC2086
  "$RB" restore --from-rdb "$rdb" --to-redis "redis://127.0.0.1:$port" --method restore $EXTRA >/dev/null
fi
want=$(redis-cli -p "$port" debug digest); keys=$(keys_of "$port"); stop "$port"; rm -rf "$tmp/ref"
echo "keys: $keys, digest $want"

mkdir -p "$tmp/s"; start "$tmp/s"; S=$port; allnodes+=("$S")
cluster 1; C1=("${nodes[@]}")
cluster 2; C2=("${nodes[@]}")
cluster 3; C3=("${nodes[@]}")

declare -A T=()
restore_into() { # name port...
  local name=$1; shift
  flush "$@"; sync
  /usr/bin/env time -f '%e' -o "$tmp/$name.time" "$RB" restore --from-rdb "$rdb" --to-redis "redis://127.0.0.1:$1" \
    --method restore --parallel "$PARALLEL" $EXTRA --json >"$tmp/$name.json"
  local got
  if [ "$name" = s ]; then got=$(redis-cli -p "$1" debug digest); else got=$(union "$@"); fi
  if [ "$got" != "$want" ]; then
    echo "cluster: $name: digest $got, want $want" >&2; cat "$tmp/$name.json" >&2; exit 3
  fi
  T[$name]="${T[$name]:-} $(cat "$tmp/$name.time")"
  flush "$@"
}
for run in $(seq 1 "$RUNS"); do
  restore_into s "$S"
  restore_into c1 "${C1[@]}"
  restore_into c2 "${C2[@]}"
  restore_into c3 "${C3[@]}"
  echo "run $run: s$(echo "${T[s]}" | awk '{print $NF}') s, c1 $(echo "${T[c1]}" | awk '{print $NF}') s, c2 $(echo "${T[c2]}" | awk '{print $NF}') s, c3 $(echo "${T[c3]}" | awk '{print $NF}') s; load $(cut -d' ' -f1 /proc/loadavg)" >&2
done
# shellcheck disable=SC2086
s_s=$(med ${T[s]})
echo
printf '%-44s %8s %12s %8s\n' "restore --from-rdb --to-redis (-p $PARALLEL)" median keys/s "vs (s)"
for name in s c1 c2 c3; do
  # shellcheck disable=SC2086
  m=$(med ${T[$name]})
  label=$(case $name in s) echo "(s)  standalone server";; c1) echo "(c1) 1-primary cluster";; c2) echo "(c2) 2-primary cluster";; c3) echo "(c3) 3-primary cluster";; esac)
  awk -v n="$label" -v m="$m" -v s="$s_s" -v k="$keys" 'BEGIN{printf "%-44s %7.2fs %12.0f %7.2fx\n", n, m, (m>0? k/m : 0), (m>0? s/m : 0)}'
done
echo "$RUNS interleaved runs each, median wall time; every target's digest equals the source's"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
