#!/usr/bin/env bash
# The main job on an embedded default: a scratch redis-server on a free
# loopback port with sample data and a file repository in a temp dir.
# It takes a verified snapshot, simulates an accidental FLUSHALL, restores the
# snapshot into the live server, proves the data by DEBUG DIGEST, and runs a
# restore drill. Everything is removed at the end; no other server is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -s build
RB="$PWD/bin/redback"
work=$(mktemp -d /tmp/redback-demo.XXXXXX)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null || echo 16399)
cleanup() { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
cli() { redis-cli -p "$port" "$@"; }
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
  --enable-debug-command local --repl-diskless-sync-delay 0 --daemonize yes --logfile "$work/redis.log"
for _ in $(seq 1 100); do cli ping >/dev/null 2>&1 && break; sleep 0.1; done
repo="file://$work/repo"

echo "== 1. sample data on 127.0.0.1:$port (sessions, a job queue, rate limits, an audit stream)"
cli debug populate 20000 cache 64 >/dev/null
for i in $(seq 1 200); do echo "HSET session:$i user u$i role admin"; echo "PEXPIRE session:$i 86400000"; done | cli >/dev/null
cli rpush queue:jobs job1 job2 job3 >/dev/null
cli zadd ratelimit 1 ip1 2.5 ip2 >/dev/null
cli xadd audit '*' event login user alice >/dev/null
before=$(cli debug digest)
echo "   keys: $(cli dbsize), DEBUG DIGEST $before"

echo "== 2. redback snapshot (replication protocol, verified while streaming)"
"$RB" snapshot --source "redis://127.0.0.1:$port" --repo "$repo"
"$RB" list --repo "$repo"

echo "== 3. accident: FLUSHALL"
cli flushall >/dev/null
echo "   keys now: $(cli dbsize)"

echo "== 4. redback restore --latest --to-redis (RESTORE ... ABSTTL, exact TTLs)"
"$RB" restore --repo "$repo" --latest --to-redis "redis://127.0.0.1:$port"
after=$(cli debug digest)
echo "   DEBUG DIGEST before $before"
echo "   DEBUG DIGEST after  $after"
[ "$before" = "$after" ] || { echo "demo: digests differ" >&2; exit 3; }
echo "   the data came back: digests are equal"

echo "== 5. redback drill (scratch server, RTO, proof by digest)"
"$RB" drill --repo "$repo" --rto-objective 1m
echo "== done"
