#!/usr/bin/env bash
# Benchmarks `redback migrate` (live server -> live server) on the shared
# dataset (bench/dataset.sh), side by side in one run:
#   (a) the classic runbook loop, fixed so that it works:
#         redis-cli --scan | while read key; do
#           redis-cli DUMP "$key" | head -c -1 | redis-cli -x RESTORE "$key" 0; done
#       on a sample of SAMPLE keys (default 2000), extrapolated to keys/s
#   (b) a plain go-redis pipelined DUMP+PTTL / RESTORE REPLACE copy with 8
#       connections per server (bench/migrateplain)
#   (c) redback migrate --from SRC --to DST (--parallel $PARALLEL)
#   (d) the same with --method sync (the source's RDB over a full sync; the
#       source runs with repl-diskless-sync-delay 0)
# The source is a redis-server started on the dataset's dump.rdb; each copy
# goes into an emptied target, whose DEBUG DIGEST is checked against the
# source's for (b) and (c).
# Targets: (c) keys/s >= 1000x (a) and >= 1.5x (b). Exits 3 when missed.
# Server CPU (INFO used_cpu_*) and client CPU (/usr/bin/time) are reported
# per run: the machine is shared, so they compare better than wall times.
# Usage: bench/migrate.sh [RDB]   SAMPLE=2000 PARALLEL=2 RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLE=${SAMPLE:-2000}
PARALLEL=${PARALLEL:-2}
RUNS=${RUNS:-3}
RB=${RB:-$PWD/bin/redback}
CGO_ENABLED=0 go build -o "$RB" ./cmd/redback
go build -o bin/migrateplain ./bench/migrateplain
source bench/lib.sh
bench_setup migrate "${1:-}"

mkdir -p "$tmp/src" "$tmp/dst"
cp "$rdb" "$tmp/src/dump.rdb"
start "$tmp/src"; src=$port
redis-cli -p "$src" config set repl-diskless-sync-delay 0 >/dev/null
start "$tmp/dst"; dst=$port
want=$(redis-cli -p "$src" debug digest)
keys=$(keys_of "$src")
echo "dataset: $rdb ($keys keys), source digest $want"
echo "machine: $(nproc) cores, $(uname -sr), $(redis-server --version | awk '{print $3}'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# (a) the fixed classic loop, on a sample (db 0)
redis-cli -p "$dst" flushall >/dev/null
redis-cli -p "$src" --scan | sed -n "1,${SAMPLE}p" >"$tmp/sample"
t0=$(now)
while read -r key; do
  redis-cli -p "$src" DUMP "$key" | head -c -1 | redis-cli -p "$dst" -x RESTORE "$key" 0 >/dev/null
done <"$tmp/sample"
t1=$(now)
a_n=$(keys_of "$dst")
a_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
a_rate=$(awk -v n="$a_n" -v s="$a_s" 'BEGIN{printf "%.1f", n/s}')
echo "(a) loop: $a_n of $(wc -l <"$tmp/sample") sample keys in $a_s s = $a_rate keys/s" >&2

B=(); C=(); D=(); BC=(); CC=(); DC=(); b_dig=""; c_dig=""; d_dig=""; c_kb=0
# cpu_of NAME CLIENT_TIME_FILE S0 D0: total CPU seconds (client + both servers) of one copy
cpu_of() { awk -v c="$(awk '{print $2+$3}' "$1")" -v s="$(awk -v a="$2" -v b="$(srvcpu "$src")" 'BEGIN{print b-a}')" \
  -v d="$(awk -v a="$3" -v b="$(srvcpu "$dst")" 'BEGIN{print b-a}')" 'BEGIN{printf "%.2f %.2f %.2f", c, s, d}'; }
for run in $(seq 1 "$RUNS"); do
  redis-cli -p "$dst" flushall >/dev/null
  s0=$(srvcpu "$src"); d0=$(srvcpu "$dst")
  /usr/bin/time -f '%e %U %S' -o "$tmp/b.time" bin/migrateplain -from "127.0.0.1:$src" -to "127.0.0.1:$dst" -conns 8 >"$tmp/b.out"
  read -r n s r <"$tmp/b.out"
  B+=("$r"); BC+=("$(cpu_of "$tmp/b.time" "$s0" "$d0")"); b_dig=$(redis-cli -p "$dst" debug digest)
  redis-cli -p "$dst" flushall >/dev/null
  s0=$(srvcpu "$src"); d0=$(srvcpu "$dst")
  /usr/bin/time -f '%e %U %S %M' -o "$tmp/c.time" "$RB" migrate --from "redis://127.0.0.1:$src" --to "redis://127.0.0.1:$dst" --parallel "$PARALLEL" --json >"$tmp/c.json"
  read -r s _ _ kb <"$tmp/c.time"; [ "$kb" -gt "$c_kb" ] && c_kb=$kb
  C+=("$(awk -v k="$keys" -v s="$s" 'BEGIN{printf "%.0f", k/s}')"); CC+=("$(cpu_of "$tmp/c.time" "$s0" "$d0")")
  c_dig=$(redis-cli -p "$dst" debug digest)
  redis-cli -p "$dst" flushall >/dev/null
  s0=$(srvcpu "$src"); d0=$(srvcpu "$dst")
  /usr/bin/time -f '%e %U %S %M' -o "$tmp/d.time" "$RB" migrate --from "redis://127.0.0.1:$src" --to "redis://127.0.0.1:$dst" --parallel "$PARALLEL" --method sync --json >"$tmp/d.json"
  read -r s _ _ _ <"$tmp/d.time"
  D+=("$(awk -v k="$keys" -v s="$s" 'BEGIN{printf "%.0f", k/s}')"); DC+=("$(cpu_of "$tmp/d.time" "$s0" "$d0")")
  d_dig=$(redis-cli -p "$dst" debug digest)
  echo "run $run: (b) ${B[-1]} keys/s, CPU client/source/target ${BC[-1]} s; (c) ${C[-1]} keys/s, CPU ${CC[-1]} s; (d) ${D[-1]} keys/s, CPU ${DC[-1]} s (source: parent only)" >&2
done
b_rate=$(med "${B[@]}"); c_rate=$(med "${C[@]}"); d_rate=$(med "${D[@]}")
echo
printf '%-58s %12s keys/s\n' "(a) classic loop, fixed (sample of $SAMPLE, extrapolated)" "$a_rate"
printf '%-58s %12s keys/s\n' "(b) plain go-redis pipelined DUMP/RESTORE, 8 connections" "$b_rate"
printf '%-58s %12s keys/s  %.1f MB RSS\n' "(c) redback migrate --parallel $PARALLEL (wall time)" "$c_rate" "$(awk -v k="$c_kb" 'BEGIN{print k/1024}')"
printf '%-58s %12s keys/s\n' "(d) redback migrate --method sync (wall time)" "$d_rate"
echo "    $RUNS runs of (b), (c), (d), medians; 1M keys: (a) $(awk -v r="$a_rate" 'BEGIN{printf "%.1f h", 1e6/r/3600}'), (b) $(awk -v r="$b_rate" 'BEGIN{printf "%.1f s", 1e6/r}'), (c) $(awk -v r="$c_rate" 'BEGIN{printf "%.1f s", 1e6/r}')"
echo "    CPU seconds per run, client / source server / target server: (b) ${BC[*]}; (c) ${CC[*]}; (d) ${DC[*]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
fail=0
verdict() { if [ "$2" = 1 ]; then echo "PASS  $1: $3"; else echo "MISS  $1: $3"; fail=1; fi; }
r=$(awk -v a="$a_rate" -v c="$c_rate" 'BEGIN{printf "%.0f", c/a}')
verdict "(c) >= 1000x the loop" "$(awk -v x="$r" 'BEGIN{print (x>=1000)?1:0}')" "${r}x"
r=$(awk -v b="$b_rate" -v c="$c_rate" 'BEGIN{printf "%.2f", c/b}')
verdict "(c) >= 1.5x plain go-redis" "$(awk -v x="$r" 'BEGIN{print (x>=1.5)?1:0}')" "${r}x"
verdict "(b) DEBUG DIGEST equals the source" "$([ "$b_dig" = "$want" ] && echo 1 || echo 0)" "$b_dig"
verdict "(c) DEBUG DIGEST equals the source" "$([ "$c_dig" = "$want" ] && echo 1 || echo 0)" "$c_dig"
verdict "(d) DEBUG DIGEST equals the source" "$([ "$d_dig" = "$want" ] && echo 1 || echo 0)" "$d_dig"
r=$(awk -v b="$b_rate" -v d="$d_rate" 'BEGIN{printf "%.2f", d/b}')
verdict "(d) --method sync >= 1.5x plain go-redis" "$(awk -v x="$r" 'BEGIN{print (x>=1.5)?1:0}')" "${r}x"
exit $((fail * 3))
