#!/usr/bin/env bash
# The main job on an embedded default: starts a scratch redis-server on a free
# loopback port with sample data, then runs redback on it. Everything lives in
# a temp dir that is removed at the end; no other server is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x bin/redback ] || make build
RB="$PWD/bin/redback"
work=$(mktemp -d /tmp/redback-demo.XXXXXX)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null || echo 16399)
cleanup() { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
  --enable-debug-command yes --daemonize yes --logfile "$work/redis.log"
for i in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "== sample data on 127.0.0.1:$port"
redis-cli -p "$port" debug populate 10000 key 64 >/dev/null
redis-cli -p "$port" rpush queue:jobs a b c >/dev/null
redis-cli -p "$port" hset session:1 user alice ttl 3600 >/dev/null
redis-cli -p "$port" expire session:1 3600 >/dev/null
redis-cli -p "$port" zadd ratelimit 1 a 2.5 b >/dev/null
redis-cli -p "$port" xadd audit '*' event login user alice >/dev/null
redis-cli -p "$port" save >/dev/null
echo "== redback check rdb $work/dump.rdb"
"$RB" check rdb "$work/dump.rdb"
echo "== redback digest vs DEBUG DIGEST"
echo "redback: $("$RB" digest "$work/dump.rdb")"
echo "server:  $(redis-cli -p "$port" debug digest)"
