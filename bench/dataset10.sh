#!/usr/bin/env bash
# Builds the ten-times dataset of issue #17 §2 once (cached in
# bench/out/dataset10/, FORCE=1 rebuilds): the keys of bench/dataset.sh
# copied into dbs 0-9 (bench/bigdata), and in db 10 a 512 MiB string, a
# list of 10M elements, a hash of 5M fields (bench/bigdata) and a stream of
# 2M entries (XADD through redis-cli --pipe); a scratch redis-server on a
# free loopback port loads it and SAVEs it, and its DEBUG DIGEST is kept in
# bench/out/dataset10/digest. About 2.6 GB of RDB; the server needs ~10 GB
# of memory while it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/bench/out/dataset10"
rdb="$out/dump.rdb"
if [ -s "$rdb" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "dataset10: cached $rdb ($(stat -c %s "$rdb") bytes, $(cat "$out/keys" 2>/dev/null || echo '?') keys)"
  exit 0
fi
bash bench/dataset.sh
mkdir -p "$out"
source bench/lib.sh
tmp=$(mktemp -d /tmp/redback-dataset10.XXXXXX); pids=(); trap bench_cleanup EXIT
go run ./bench/bigdata -copies 10 bench/out/dataset/dump.rdb >"$tmp/dump.rdb"
START_TRIES=60000 start "$tmp"
python3 - <<'PY' | redis-cli -p "$port" --pipe >"$tmp/pipe.log"
import sys
out = sys.stdout.buffer
buf = [b"*2\r\n$6\r\nSELECT\r\n$2\r\n10\r\n"]
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
