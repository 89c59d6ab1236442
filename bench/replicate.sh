#!/usr/bin/env bash
# Benchmarks `redback restore --to-redis` by replication (issue #17 §1) on
# the shared dataset (bench/dataset.sh), interleaved in each run:
#   (a) redis-server's own cold load of the RDB (start with --dir holding
#       it, until PING answers and INFO says loading:0)
#   (r) `redback restore --repo R --latest --to-redis URL --method replicate`
#       into an empty server, from a snapshot of the dataset (taken, not
#       timed, in the first run): wall time of the whole command (process
#       start to the target detached with its config back and its DEBUG
#       DIGEST compared), and without the DEBUG DIGEST the target answers
#       (the JSON's digest_seconds)
#   (s) (r) with --verify sample: the loaded target proven by 100 keys read
#       back and the key counts instead of its DEBUG DIGEST (the stream is
#       still checked against the snapshot's digest)
#   (f) the same from the RDB file (--from-rdb: the digest is computed
#       beside the stream instead of read from the manifest)
#   (c) `redback restore --from-rdb RDB --to-redis URL --method restore`
#       (RESTORE commands, the path before replication)
# Peak RSS via /usr/bin/time -f %M; every target's DEBUG DIGEST is checked
# against the source's. Targets: (r) <= 1.25x (a) (1.15x on a quiet
# machine), RSS <= 64 MB. Exits 3 when a target is missed.
# Usage: bench/replicate.sh [RDB]   RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RB=${RB:-$PWD/bin/redback}
CGO_ENABLED=0 go build -o "$RB" ./cmd/redback
source bench/lib.sh
bench_setup replicate "${1:-}"
size=$(stat -c %s "$rdb")
digest() { redis-cli -p "$1" debug digest; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
jnum() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))' "$1" "$2"; }

echo "file: $rdb ($size bytes)"
echo "machine: $(nproc) cores, $(uname -sr), $(redis-server --version | awk '{print $3}'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
A=(); R=(); R0=(); S=(); F=(); F0=(); C=(); r_kb=0; s_kb=0; f_kb=0; c_kb=0; fail=0
for run in $(seq 1 "$RUNS"); do
  # (a) cold load
  rm -rf "$tmp/a"; mkdir -p "$tmp/a"; cp "$rdb" "$tmp/a/dump.rdb"; sync
  t0=$(now); start "$tmp/a"; t1=$(now); A+=("$(secs "$t0" "$t1")")
  want=$(digest "$port"); keys=$(keys_of "$port")
  if [ "$run" = 1 ]; then
    redis-cli -p "$port" config set repl-diskless-sync-delay 0 >/dev/null
    "$RB" snapshot --source "redis://127.0.0.1:$port" --repo "file://$tmp/repo" >/dev/null
  fi
  stop "$port"; rm -rf "$tmp/a"

  for m in r s f c; do
    rm -rf "$tmp/$m"; mkdir -p "$tmp/$m"; start "$tmp/$m"; sync
    case $m in
      r) args=(--repo "file://$tmp/repo" --latest --method replicate) ;;
      s) args=(--repo "file://$tmp/repo" --latest --method replicate --verify sample) ;;
      f) args=(--from-rdb "$rdb" --method replicate) ;;
      c) args=(--from-rdb "$rdb" --method restore) ;;
    esac
    /usr/bin/time -f '%e %M' -o "$tmp/$m.time" "$RB" restore "${args[@]}" --to-redis "redis://127.0.0.1:$port" --json >"$tmp/$m.json"
    read -r s kb <"$tmp/$m.time"
    d=$(jnum "$tmp/$m.json" digest_seconds)
    got=$(digest "$port")
    if [ "$got" != "$want" ]; then echo "($m) run $run: DEBUG DIGEST $got, want $want" >&2; fail=1; fi
    role=$(redis-cli -p "$port" role | head -1)
    if [ "$role" != master ]; then echo "($m) run $run: the target is left a $role" >&2; fail=1; fi
    case $m in
      r) R+=("$s"); R0+=("$(secs "$d" "$s")"); [ "$kb" -gt "$r_kb" ] && r_kb=$kb ;;
      s) S+=("$s"); [ "$kb" -gt "$s_kb" ] && s_kb=$kb ;;
      f) F+=("$s"); F0+=("$(secs "$d" "$s")"); [ "$kb" -gt "$f_kb" ] && f_kb=$kb ;;
      c) C+=("$s"); [ "$kb" -gt "$c_kb" ] && c_kb=$kb ;;
    esac
    stop "$port"; rm -rf "$tmp/$m"
  done
  echo "run $run: a ${A[-1]} s, r ${R[-1]} s (${R0[-1]} s without DEBUG DIGEST), s ${S[-1]} s, f ${F[-1]} s (${F0[-1]}), c ${C[-1]} s" >&2
done
a_s=$(med "${A[@]}"); r_s=$(med "${R[@]}"); r0_s=$(med "${R0[@]}"); s_s=$(med "${S[@]}"); f_s=$(med "${F[@]}"); f0_s=$(med "${F0[@]}"); c_s=$(med "${C[@]}")
row() { # name seconds [kb]
  awk -v n="$1" -v s="$2" -v kb="${3:-}" -v k="$keys" -v a="$a_s" \
    'BEGIN{printf "%-58s %6.2f s %8.0f keys/s %5.2fx (a)", n, s, (s>0? k/s : 0), s/a; if (kb!="") printf " %6.1f MB RSS", kb/1024; printf "\n"}'
}
echo "keys: $keys, source digest $want; $RUNS runs, medians"
echo
row "(a) redis-server cold load" "$a_s"
row "(r) restore --repo --to-redis --method replicate" "$r_s" "$r_kb"
row "    (r) without the target's DEBUG DIGEST" "$r0_s"
row "(s) the same as (r) with --verify sample" "$s_s" "$s_kb"
row "(f) restore --from-rdb --to-redis --method replicate" "$f_s" "$f_kb"
row "    (f) without the target's DEBUG DIGEST" "$f0_s"
row "(c) restore --from-rdb --to-redis --method restore" "$c_s" "$c_kb"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
verdict() { if [ "$2" = 1 ]; then echo "PASS  $1: $3"; else echo "MISS  $1: $3"; fail=1; fi; }
x=$(awk -v a="$a_s" -v r="$r_s" 'BEGIN{printf "%.2f", r/a}')
verdict "(r) <= 1.25x cold load" "$(awk -v x="$x" 'BEGIN{print (x<=1.25)?1:0}')" "${x}x"
x=$(awk -v a="$a_s" -v r="$s_s" 'BEGIN{printf "%.2f", r/a}')
verdict "(s) <= 1.25x cold load" "$(awk -v x="$x" 'BEGIN{print (x<=1.25)?1:0}')" "${x}x"
verdict "(r) peak RSS <= 64 MB" "$(awk -v k="$r_kb" 'BEGIN{print (k<=64*1024)?1:0}')" "$(awk -v k="$r_kb" 'BEGIN{printf "%.1f MB", k/1024}')"
verdict "(f) peak RSS <= 64 MB" "$(awk -v k="$f_kb" 'BEGIN{print (k<=64*1024)?1:0}')" "$(awk -v k="$f_kb" 'BEGIN{printf "%.1f MB", k/1024}')"
exit $((fail * 3))
