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

# clusterport: a free loopback port whose cluster bus port (+10000) is free.
clusterport() {
  python3 -c '
import socket
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    if p + 10000 > 65535: s.close(); continue
    b = socket.socket()
    try: b.bind(("127.0.0.1", p + 10000))
    except OSError: s.close(); continue
    b.close(); s.close(); print(p); break'
}

# cluster N: starts N cluster-enabled servers in $tmp, gives node i the
# i-th N-th of the slots, joins them, waits (bounded) until every node says
# cluster_state:ok; sets nodes (their ports) and adds them to allnodes.
cluster() {
  local n=$1 i d p
  nodes=()
  for i in $(seq 0 $((n - 1))); do
    d="$tmp/c$n-$i"; rm -rf "$d"; mkdir -p "$d"
    p=$(clusterport)
    redis-server --port "$p" --bind 127.0.0.1 --dir "$d" --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 15000 \
      --enable-debug-command local --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log"
    for _ in $(seq 1 3000); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.01; done
    pids+=("$(cat "$d/redis.pid")"); server_pid[$p]=${pids[-1]}; allnodes+=("$p")
    redis-cli -p "$p" cluster addslotsrange $((i * 16384 / n)) $(((i + 1) * 16384 / n - 1)) >/dev/null
    nodes+=("$p")
  done
  for p in "${nodes[@]:1}"; do redis-cli -p "$p" cluster meet 127.0.0.1 "${nodes[0]}" >/dev/null; done
  for _ in $(seq 1 6000); do
    local ok=1
    for p in "${nodes[@]}"; do
      redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || ok=0
      [ "$(redis-cli -p "$p" cluster nodes | grep -c ' connected')" = "$n" ] || ok=0
    done
    [ "$ok" = 1 ] && return 0
    sleep 0.05
  done
  echo "cluster: $n-node cluster not ok in time" >&2; exit 1
}

# union PORT...: the union of the nodes' DEBUG DIGEST (digest.Union): the
# XOR of the non-empty ones, XORed with SHA1(SHA1(4 zero bytes)) when
# their count is even.
union() {
  local ds=()
  for p in "$@"; do ds+=("$(redis-cli -p "$p" debug digest)"); done
  python3 -c '
import hashlib, sys
c = hashlib.sha1(hashlib.sha1(bytes(4)).digest()).digest()
out, n = bytes(20), 0
for d in sys.argv[1:]:
    if d.strip("0") == "": continue
    n += 1; out = bytes(a ^ b for a, b in zip(out, bytes.fromhex(d)))
if n and n % 2 == 0: out = bytes(a ^ b for a, b in zip(out, c))
print(out.hex())' "${ds[@]}"
}
