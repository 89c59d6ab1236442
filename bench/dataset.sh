#!/usr/bin/env bash
# Builds the benchmark dataset once: a scratch redis-server on a free loopback
# port in a temp dir is loaded with ~1M keys of mixed types (100-byte strings,
# listpack and hashtable hashes, quicklists, intset/hashtable sets, zsets, a
# few streams with a consumer group) through `redis-cli --pipe`, then SAVEd.
# Leaves bench/out/dataset/dump.rdb (~200 MB) and prints its size and keys.
# Cached: does nothing when the file exists (delete it, or FORCE=1, to rebuild).
# Other benchmarks source the path from here: bench/out/dataset/dump.rdb.
set -euo pipefail
cd "$(dirname "$0")"
out="$PWD/out/dataset"
rdb="$out/dump.rdb"
if [ -s "$rdb" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "dataset: cached $rdb ($(stat -c %s "$rdb") bytes, $(cat "$out/keys" 2>/dev/null || echo '?') keys)"
  exit 0
fi
mkdir -p "$out"
work=$(mktemp -d /tmp/redback-dataset.XXXXXX)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
pidfile="$work/redis.pid"
cleanup() {
  if [ -s "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
  --repl-diskless-sync-delay 0 --enable-debug-command local --daemonize yes --pidfile "$pidfile" --logfile "$work/redis.log"
for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# Deterministic generator of RESP commands (seeded), streamed into --pipe.
python3 - <<'PY' | redis-cli -p "$port" --pipe >"$work/pipe.log"
import os, random, sys
rnd = random.Random(42)
out = sys.stdout.buffer
buf = []
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    buf.append(b"".join(parts))
    if len(buf) >= 2000:
        out.write(b"".join(buf)); buf.clear()
def rb(n):  # n random hex characters (LZF barely compresses them)
    return rnd.getrandbits(4 * n).to_bytes((4 * n + 7) // 8, "big").hex()[:n].encode()
# 600k strings of 100 bytes, 5% with a TTL far in the future
for i in range(600_000):
    cmd("SET", b"str:%d" % i, rb(100))
    if i % 20 == 0:
        cmd("PEXPIRE", b"str:%d" % i, 10**12)
# 120k hashes: most listpack (10 fields), 1% hashtable (200 fields with
# values over hash-max-listpack-value, which 7.0 converts reliably)
for i in range(120_000):
    n, vlen = (200, 80) if i % 100 == 0 else (10, 24)
    args = ["HSET", b"hash:%d" % i]
    for f in range(n):
        args += [b"f%d" % f, rb(vlen)]
    cmd(*args)
# 100k lists of 16 elements (quicklist), some long ones
for i in range(80_000):
    n = 400 if i % 200 == 0 else 16
    cmd("RPUSH", b"list:%d" % i, *[rb(30) for _ in range(n)])
# 60k sets: half intset, half hashtable (string members)
for i in range(60_000):
    if i % 2:
        cmd("SADD", b"set:%d" % i, *[str(rnd.randrange(10**9)).encode() for _ in range(16)])
    else:
        cmd("SADD", b"set:%d" % i, *[rb(12) for _ in range(16)])
# 90k zsets of 16 members with float scores, some skiplist ones (200 members)
for i in range(90_000):
    n = 200 if i % 100 == 0 else 16
    args = ["ZADD", b"zset:%d" % i]
    for m in range(n):
        args += [repr(rnd.uniform(-1e6, 1e6)).encode(), rb(12)]
    cmd(*args)
# 10 streams of 5000 entries, each with a consumer group
for i in range(10):
    k = b"stream:%d" % i
    for e in range(5000):
        cmd("XADD", k, "*", "event", rb(16), "user", b"u%d" % rnd.randrange(1000))
    cmd("XGROUP", "CREATE", k, "g1", "0")
out.write(b"".join(buf))
PY
grep -E "errors|replies" "$work/pipe.log" | tail -n 1
redis-cli -p "$port" save >/dev/null
keys=$(redis-cli -p "$port" dbsize)
redis-cli -p "$port" debug digest >"$out/digest" 2>/dev/null || true
cp "$work/dump.rdb" "$rdb.tmp" && mv "$rdb.tmp" "$rdb"
echo "$keys" >"$out/keys"
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
echo "dataset: $rdb ($(stat -c %s "$rdb") bytes, $keys keys)"
