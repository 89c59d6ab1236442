#!/usr/bin/env bash
# Builds the ten-times dataset of issue #17 §2 once (cached in
# bench/out/dataset10/, FORCE=1 rebuilds): the keys of bench/dataset.sh
# copied into dbs 0-9 (bench/bigdata), and in db 10 a 512 MiB string, a
# list of 10M elements, a hash of 5M fields (bench/bigdata) and a stream of
# 2M entries (XADD through redis-cli --pipe); a scratch redis-server on a
# free loopback port loads it and SAVEs it, and its DEBUG DIGEST is kept in
# bench/out/dataset10/digest. About 2.6 GB of RDB; the server needs ~10 GB
# of memory while it runs.
# BIG_ONLY=1 builds only the big values (in db 1 of bench/out/datasetbig/,
# about 0.9 GB of RDB, a server of ~1.5 GB): the part of the ten-times
# dataset that made memory grow, when disk or time is short.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/bench/out/dataset10"
[ "${BIG_ONLY:-0}" = 1 ] && out="$PWD/bench/out/datasetbig"
rdb="$out/dump.rdb"
if [ -s "$rdb" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "dataset10: cached $rdb ($(stat -c %s "$rdb") bytes, $(cat "$out/keys" 2>/dev/null || echo '?') keys)"
  exit 0
fi
mkdir -p "$out"
source bench/lib.sh
tmp=$(mktemp -d /tmp/redback-dataset10.XXXXXX); pids=(); trap bench_cleanup EXIT
if [ "${BIG_ONLY:-0}" = 1 ]; then
  # An empty RDB of this redis-server as the "copied" dataset.
  mkdir -p "$tmp/empty"; start "$tmp/empty"; redis-cli -p "$port" save >/dev/null; stop "$port"
  go run ./bench/bigdata -copies 1 "$tmp/empty/dump.rdb" >"$tmp/dump.rdb"
  bigdb=1
else
  bash bench/dataset.sh
  go run ./bench/bigdata -copies 10 bench/out/dataset/dump.rdb >"$tmp/dump.rdb"
  bigdb=10
fi
START_TRIES=60000 start "$tmp"
python3 - "$bigdb" <<'PY' | redis-cli -p "$port" --pipe >"$tmp/pipe.log"
import sys
out = sys.stdout.buffer
db = sys.argv[1].encode()
buf = [b"*2\r\n$6\r\nSELECT\r\n$%d\r\n%s\r\n" % (len(db), db)]
for e in range(2_000_000):
    v = b"%d" % (e * 31 % 1000003)
    buf.append(b"*7\r\n$4\r\nXADD\r\n$10\r\nbig:stream\r\n$%d\r\n%d-1\r\n$5\r\nevent\r\n$%d\r\n%s\r\n$4\r\nuser\r\n$%d\r\n%s\r\n"
               % (len(b"%d-1" % (e + 1)), e + 1, len(v), v, len(v), v))
    if len(buf) >= 5000:
        out.write(b"".join(buf)); buf.clear()
out.write(b"".join(buf))
PY
grep -E "errors|replies" "$tmp/pipe.log" | tail -n 1
redis-cli -p "$port" save >/dev/null
keys=$(keys_of "$port")
redis-cli -p "$port" debug digest >"$out/digest"
redis-cli -p "$port" info memory | grep '^used_memory_human' >"$out/memory"
mv "$tmp/dump.rdb" "$rdb"
echo "$keys" >"$out/keys"
stop "$port"
echo "dataset10: $rdb ($(stat -c %s "$rdb") bytes, $keys keys, server $(cat "$out/memory"))"
