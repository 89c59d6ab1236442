#!/usr/bin/env bash
# Benchmarks `redback check rdb` and `redback digest` against redis-check-rdb
# on the shared dataset (bench/dataset.sh), side by side in one run: RUNS runs
# each (default 3), median wall time, throughput, peak RSS (/usr/bin/time %M).
# Targets: check >= 2x redis-check-rdb throughput with RSS <= 32 MB;
# digest <= 1.5x redis-check-rdb time. Exits 3 when a target is missed.
# Usage: [RUNS=n] [RB=redback-binary] bench/check_rdb.sh [RDB]
#        (default: the dataset, built if missing; the checkout, built afresh)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
if [ ! -x /usr/bin/time ]; then
  echo "check_rdb: /usr/bin/time is missing (apt-get install time)" >&2
  exit 1
fi
rdb=${1:-}
if [ -z "$rdb" ]; then
  bash bench/dataset.sh >&2
  rdb=bench/out/dataset/dump.rdb
fi
size=$(stat -c %s "$rdb")
tmp=$(mktemp -d /tmp/redback-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# RB names a redback binary to measure; by default the checkout is built
# afresh (a stale bin/redback would measure old code).
if [ -z "${RB:-}" ]; then
  RB=$tmp/redback
  CGO_ENABLED=0 go build -o "$RB" ./cmd/redback
fi

# measure NAME CMD...: RUNS runs; sets med_s (median seconds) and max_kb
# (largest peak RSS over the runs). Fails when the command fails.
measure() {
  local name=$1; shift
  local times=() cpus=() rss=0 i
  for i in $(seq 1 "$RUNS"); do
    if ! /usr/bin/time -f '%e %M %U %S' -o "$tmp/t" "$@" >"$tmp/out" 2>"$tmp/err"; then
      echo "check_rdb: $name failed:" >&2; cat "$tmp/err" "$tmp/t" >&2; exit 1
    fi
    read -r s kb u sy <"$tmp/t"
    times+=("$s")
    cpus+=("$(awk -v u="$u" -v s="$sy" 'BEGIN{print u+s}')")
    [ "$kb" -gt "$rss" ] && rss=$kb
  done
  med_s=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  med_cpu=$(printf '%s\n' "${cpus[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  max_kb=$rss
  cp "$tmp/out" "$tmp/$name.out"
}

row() { # name seconds kb cpu-seconds
  awk -v n="$1" -v s="$2" -v kb="$3" -v c="$4" -v b="$size" \
    'BEGIN{printf "%-20s %7.2f s wall %8.1f MB/s %7.2f s cpu %7.1f MB RSS\n", n, s, (s>0? b/s/1e6 : 0), c, kb/1024}'
}

echo "file: $rdb ($size bytes), $RUNS runs each, median wall time, max peak RSS"
echo "machine: $(nproc) cores, $(uname -sr), redis-check-rdb $(redis-check-rdb --version 2>/dev/null | head -1 | awk '{print $2}' || true)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (wall times are only comparable on an idle machine)"
measure ref redis-check-rdb "$rdb"; ref_s=$med_s; ref_kb=$max_kb; ref_cpu=$med_cpu
measure check "$RB" check rdb "$rdb"; chk_s=$med_s; chk_kb=$max_kb; chk_cpu=$med_cpu
measure digest "$RB" digest "$rdb"; dig_s=$med_s; dig_kb=$max_kb; dig_cpu=$med_cpu
echo
row "redis-check-rdb" "$ref_s" "$ref_kb" "$ref_cpu"
row "redback check rdb" "$chk_s" "$chk_kb" "$chk_cpu"
row "redback digest" "$dig_s" "$dig_kb" "$dig_cpu"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
fail=0
verdict() { # label ok(1/0) text
  if [ "$2" = 1 ]; then echo "PASS  $1: $3"; else echo "MISS  $1: $3"; fail=1; fi
}
speedup=$(awk -v a="$ref_s" -v b="$chk_s" 'BEGIN{printf "%.2f", (b>0? a/b : 0)}')
verdict "check throughput >= 2x redis-check-rdb" "$(awk -v x="$speedup" 'BEGIN{print (x>=2)?1:0}')" "${speedup}x"
verdict "check peak RSS <= 32 MB" "$(awk -v k="$chk_kb" 'BEGIN{print (k<=32*1024)?1:0}')" "$(awk -v k="$chk_kb" 'BEGIN{printf "%.1f MB", k/1024}')"
echo "      (cpu-time ratios: check $(awk -v a="$ref_cpu" -v b="$chk_cpu" 'BEGIN{printf "%.2f", (b>0? a/b : 0)}')x faster, digest $(awk -v a="$ref_cpu" -v b="$dig_cpu" 'BEGIN{printf "%.2f", (a>0? b/a : 0)}')x the time)"
ratio=$(awk -v a="$ref_s" -v b="$dig_s" 'BEGIN{printf "%.2f", (a>0? b/a : 0)}')
verdict "digest time <= 1.5x redis-check-rdb" "$(awk -v x="$ratio" 'BEGIN{print (x<=1.5)?1:0}')" "${ratio}x"
if [ -s bench/out/dataset/digest ] && [ "$rdb" = bench/out/dataset/dump.rdb ]; then
  want=$(cat bench/out/dataset/digest); got=$(head -1 "$tmp/digest.out")
  verdict "digest equals the server's DEBUG DIGEST" "$([ "$want" = "$got" ] && echo 1 || echo 0)" "$got"
fi
exit $((fail * 3))
