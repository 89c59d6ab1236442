# Shared helpers of the bench scripts (sourced, not run). A script that
# uses start sets pids=() first and kills "${pids[@]}" on exit.

freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# med X...: the median of the numbers given.
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# srvcpu PORT: the server's CPU seconds so far (user + sys).
srvcpu() { redis-cli -p "$1" info cpu | awk -F: '/^used_cpu_(sys|user):/{s+=$2} END{printf "%.2f", s}'; }
# keys_of PORT: keys in all dbs.
keys_of() { redis-cli -p "$1" info keyspace | awk -F'[=,]' '/^db/{n+=$2} END{print n+0}'; }
# stop PORT: shuts the server down and waits (up to 10 s) until its process
# is gone, so that freeing its memory does not run into the next timing.
stop() {
  local pid=${server_pid[$1]:-}
  redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true
  [ -n "$pid" ] || return 0
  for _ in $(seq 1 1000); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.01; done
}
declare -A server_pid=()

# start DIR: starts redis-server on DIR (loading DIR/dump.rdb if present),
# waits (START_TRIES × 10 ms, default 60 s) until it answers PING and has
# finished loading; sets port.
start() {
  local dir=$1
  port=$(freeport)
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
    --enable-debug-command local --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  for _ in $(seq 1 "${START_TRIES:-6000}"); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG &&
       redis-cli -p "$port" info persistence 2>/dev/null | grep -q '^loading:0'; then
      pids+=("$(cat "$dir/redis.pid")"); server_pid[$port]=${pids[-1]}
      return 0
    fi
    sleep 0.01
  done
  echo "$(basename "$0"): redis-server on $dir did not start; log:" >&2; cat "$dir/redis.log" >&2; exit 1
}

# bench_setup NAME [RDB]: sets rdb (the given file, or the shared dataset,
# built when missing) and tmp (a fresh dir, removed on exit together with
# every server start recorded in pids).
bench_setup() {
  rdb=${2:-}
  if [ -z "$rdb" ]; then
    bash bench/dataset.sh >&2
    rdb=bench/out/dataset/dump.rdb
  fi
  rdb=$(realpath "$rdb")
  tmp=$(mktemp -d "/tmp/redback-bench-$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
