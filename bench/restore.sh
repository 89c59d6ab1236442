#!/usr/bin/env bash
# Benchmarks `redback restore` on the shared dataset (bench/dataset.sh), side
# by side in one run:
#   (a) redis-server's own cold load of the RDB (start with --dir holding it,
#       until PING answers and INFO says loading:0)
#   (b) `redis-cli --pipe` of the equivalent RESTORE ... ABSTTL commands
#       (generated beforehand by bench/restoregen, not timed)
#   (c) `redback restore --from-rdb RDB --to-redis URL` into an empty server
#       (wall time, peak RSS via /usr/bin/time -f %M)
#   (d) `redback restore --from-rdb RDB --to-dir DIR` + server start on DIR
#   (e) `redback restore --repo R --latest --to-dir DIR` + server start, from
#       a snapshot of the dataset taken (not timed) in the first run
# Every target's DEBUG DIGEST is checked against the source's. Each timed
# step starts after a sync and after the previous server's process is gone.
# Targets: (c) <= 2.5x (a), (c) key rate >= (b), (c) RSS <= 64 MB,
# (d), (e) <= 1.3x (a). Exits 3 when a target is missed.
# Each is run RUNS times (default 3): median wall time, largest peak RSS.
# Usage: bench/restore.sh [RDB]   PARALLEL=1 (redback --parallel) RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
PARALLEL=${PARALLEL:-1}
RUNS=${RUNS:-3}
RB=${RB:-$PWD/bin/redback}
CGO_ENABLED=0 go build -o "$RB" ./cmd/redback
go build -o bin/restoregen ./bench/restoregen
if [ ! -x /usr/bin/time ]; then
  echo "restore: /usr/bin/time is missing (apt-get install time)" >&2
  exit 1
fi
source bench/lib.sh
bench_setup restore "${1:-}"
size=$(stat -c %s "$rdb")

digest() { redis-cli -p "$1" debug digest; }

echo "file: $rdb ($size bytes)"
echo "machine: $(nproc) cores, $(uname -sr), $(redis-server --version | awk '{print $3}'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

bin/restoregen "$rdb" >"$tmp/restore.resp"
A=(); B=(); C=(); D=(); D1=(); D2=(); E=(); E1=(); c_kb=0; d_kb=0; e_kb=0
for run in $(seq 1 "$RUNS"); do
  # (a) cold load
  rm -rf "$tmp/a"; mkdir -p "$tmp/a"; cp "$rdb" "$tmp/a/dump.rdb"; sync
  t0=$(now); start "$tmp/a"; t1=$(now)
  A+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')")
  want=$(digest "$port"); keys=$(redis-cli -p "$port" info keyspace | awk -F'[=,]' '/^db/{n+=$2} END{print n+0}')
  if [ "$run" = 1 ]; then # the repository snapshot (e) restores; not timed
    redis-cli -p "$port" config set repl-diskless-sync-delay 0 >/dev/null
    "$RB" snapshot --source "redis://127.0.0.1:$port" --repo "file://$tmp/repo" >/dev/null
  fi
  stop "$port"; rm -rf "$tmp/a"

  # (b) redis-cli --pipe of RESTORE commands
  rm -rf "$tmp/b"; mkdir -p "$tmp/b"; start "$tmp/b"; sync
  t0=$(now); redis-cli -p "$port" --pipe <"$tmp/restore.resp" >"$tmp/pipe.out"; t1=$(now)
  B+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')")
  b_dig=$(digest "$port"); stop "$port"

  # (c) redback restore --to-redis
  rm -rf "$tmp/c"; mkdir -p "$tmp/c"; start "$tmp/c"; sync
  /usr/bin/time -f '%e %M' -o "$tmp/c.time" "$RB" restore --from-rdb "$rdb" --to-redis "redis://127.0.0.1:$port" --method restore --parallel "$PARALLEL" --json >"$tmp/c.json"
  read -r s kb <"$tmp/c.time"; C+=("$s"); [ "$kb" -gt "$c_kb" ] && c_kb=$kb
  c_dig=$(digest "$port"); stop "$port"

  # (d) redback restore --to-dir + start
  rm -rf "$tmp/d"; mkdir -p "$tmp/d"; sync
  /usr/bin/time -f '%e %M' -o "$tmp/d.time" "$RB" restore --from-rdb "$rdb" --to-dir "$tmp/d" --json >"$tmp/d.json"
  read -r s1 kb <"$tmp/d.time"; [ "$kb" -gt "$d_kb" ] && d_kb=$kb
  t0=$(now); start "$tmp/d"; t1=$(now)
  s2=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  D1+=("$s1"); D2+=("$s2"); D+=("$(awk -v a="$s1" -v b="$s2" 'BEGIN{printf "%.2f", a+b}')")
  d_dig=$(digest "$port"); stop "$port"; rm -rf "$tmp/d"

  # (e) the same from the repository snapshot
  rm -rf "$tmp/e"; mkdir -p "$tmp/e"; sync
  /usr/bin/time -f '%e %M' -o "$tmp/e.time" "$RB" restore --repo "file://$tmp/repo" --latest --to-dir "$tmp/e" --json >"$tmp/e.json"
  read -r s1 kb <"$tmp/e.time"; [ "$kb" -gt "$e_kb" ] && e_kb=$kb
  t0=$(now); start "$tmp/e"; t1=$(now)
  E1+=("$s1"); E+=("$(awk -v a="$s1" -v b="$t1" -v c="$t0" 'BEGIN{printf "%.2f", a+b-c}')")
  e_dig=$(digest "$port"); stop "$port"; rm -rf "$tmp/e"
  echo "run $run: a ${A[-1]} s, b ${B[-1]} s, c ${C[-1]} s, d ${D[-1]} s, e ${E[-1]} s" >&2
done
rm -f "$tmp/restore.resp"
a_s=$(med "${A[@]}"); b_s=$(med "${B[@]}"); c_s=$(med "${C[@]}"); d_s=$(med "${D[@]}"); d1_s=$(med "${D1[@]}"); d2_s=$(med "${D2[@]}")

row() { # name seconds [kb]
  awk -v n="$1" -v s="$2" -v kb="${3:-}" -v k="$keys" -v b="$size" \
    'BEGIN{printf "%-40s %7.2f s %10.0f keys/s %8.1f MB/s", n, s, (s>0? k/s : 0), (s>0? b/s/1e6 : 0); if (kb!="") printf " %7.1f MB RSS", kb/1024; printf "\n"}'
}
echo "keys: $keys, source digest $want"
echo
row "(a) redis-server cold load" "$a_s"
row "(b) redis-cli --pipe RESTORE" "$b_s"
row "(c) redback restore --to-redis (-p $PARALLEL)" "$c_s" "$c_kb"
row "(d) redback restore --to-dir + start" "$d_s" "$d_kb"
echo "    (d) = restore $d1_s s + server load $d2_s s (medians); $RUNS runs each, median wall time"
e_s=$(med "${E[@]}"); e1_s=$(med "${E1[@]}")
row "(e) restore --repo --latest --to-dir + start" "$e_s" "$e_kb"
echo "    (e) = restore of the repository snapshot $e1_s s + server load (median)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
fail=0
verdict() { if [ "$2" = 1 ]; then echo "PASS  $1: $3"; else echo "MISS  $1: $3"; fail=1; fi; }
r=$(awk -v a="$a_s" -v c="$c_s" 'BEGIN{printf "%.2f", c/a}')
verdict "(c) time <= 2.5x cold load" "$(awk -v x="$r" 'BEGIN{print (x<=2.5)?1:0}')" "${r}x"
r=$(awk -v b="$b_s" -v c="$c_s" 'BEGIN{printf "%.2f", b/c}')
verdict "(c) rate >= redis-cli --pipe rate" "$(awk -v x="$r" 'BEGIN{print (x>=1)?1:0}')" "${r}x"
verdict "(c) peak RSS <= 64 MB" "$(awk -v k="$c_kb" 'BEGIN{print (k<=64*1024)?1:0}')" "$(awk -v k="$c_kb" 'BEGIN{printf "%.1f MB", k/1024}')"
r=$(awk -v a="$a_s" -v d="$d_s" 'BEGIN{printf "%.2f", d/a}')
verdict "(d) to-dir + start <= 1.3x cold load" "$(awk -v x="$r" 'BEGIN{print (x<=1.3)?1:0}')" "${r}x"
r=$(awk -v a="$a_s" -v e="$e_s" 'BEGIN{printf "%.2f", e/a}')
verdict "(e) repository to-dir + start <= 1.3x cold load" "$(awk -v x="$r" 'BEGIN{print (x<=1.3)?1:0}')" "${r}x"
for n in b c d e; do
  v=${n}_dig
  verdict "($n) DEBUG DIGEST equals the source" "$([ "${!v}" = "$want" ] && echo 1 || echo 0)" "${!v}"
done
exit $((fail * 3))
