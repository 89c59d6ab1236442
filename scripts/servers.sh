#!/usr/bin/env bash
# Fetches the newer servers redback is tested against -- Redis 8.0 and 8.6,
# Valkey 8.1 and Valkey 9.1 -- from Debian's own packages, without installing them: they
# need a newer C library than this machine's, so the .debs (the server, and
# the libraries it links, from Debian sid) are downloaded with a private apt
# configuration, unpacked with dpkg-deb -x into a cache dir, and run through
# the unpacked loader by small wrapper scripts:
#
#   $REDBACK_SERVERS_DIR/bin/redis-server-8.0   (redis-cli-8.0, redis-check-aof-8.0)
#   $REDBACK_SERVERS_DIR/bin/redis-server-8.6   (RDB 13; from Debian experimental)
#   $REDBACK_SERVERS_DIR/bin/valkey-server-8.1  (valkey-cli-8.1, ...)
#   $REDBACK_SERVERS_DIR/bin/valkey-server-9.1  (valkey-cli-9.1, ...)
#
# (in these packages redis-check-rdb / valkey-check-rdb is the server binary;
# the name it runs under picks the mode). REDBACK_SERVERS_DIR defaults to
# ~/.cache/redback/servers. The series are pinned (8.0, 8.6, 8.1, 9.1); within a
# series the newest version the lists offer is taken. A second run with
# every wrapper answering --version does nothing. When Debian no longer
# serves a series, it fails and says which.
set -euo pipefail

dir=${REDBACK_SERVERS_DIR:-$HOME/.cache/redback/servers}
# package:series:suite:name (name: the server's own name, redis or valkey)
wanted=(
  "redis-tools:8.0:sid:redis"
  "redis-tools:8.6:experimental:redis"
  "valkey-tools:8.1:trixie:valkey"
  "valkey-tools:9.1:sid:valkey"
)
libs=(libc6 libatomic1 libjemalloc2 liblzf1 libssl3t64 libsystemd0 "libstdc++6" libgcc-s1 libcap2)

ready() {
  local w series name
  for w in "${wanted[@]}"; do
    IFS=: read -r _ series _ name <<<"$w"
    "$dir/bin/$name-server-$series" --version 2>/dev/null | grep -q "v=$series\." || return 1
  done
}
if ready; then
  exit 0
fi

mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/debs" "$dir/bin"
cat >"$dir/apt/sources.list" <<'EOF'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian experimental main
EOF
aptopts=(
  -o "Dir::Etc::sourcelist=$dir/apt/sources.list" -o Dir::Etc::sourceparts=/dev/null
  -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache"
  -o Dir::State::status=/dev/null
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false
  -o APT::Sandbox::User=root
)
echo "setup: reading Debian trixie's, sid's and experimental's package lists (private apt config in $dir/apt)" >&2
apt-get "${aptopts[@]}" -qq update >&2

# newest version of package $1 in series $2 that suite $3 offers, or nothing
pick() {
  apt-cache "${aptopts[@]}" madison "$1" | awk -F'|' -v s="$2" -v suite="$3" '
    { gsub(/ /, "", $2); v = $2; if ($3 !~ (" " suite "/")) next
      u = v; sub(/^[0-9]+:/, "", u)
      if (index(u, s ".") == 1) print v }' | head -n 1
}

downloads=()
versions=()
for w in "${wanted[@]}"; do
  IFS=: read -r pkg series suite name <<<"$w"
  v=$(pick "$pkg" "$series" "$suite")
  if [ -z "$v" ]; then
    echo "setup: Debian $suite no longer offers $pkg $series.x (it offers: $(apt-cache "${aptopts[@]}" madison "$pkg" | awk -F'|' '{gsub(/ /,"",$2); printf "%s ", $2}')); update the series in scripts/servers.sh" >&2
    exit 1
  fi
  downloads+=("$pkg=$v")
  versions+=("$w:$v")
done
for l in "${libs[@]}"; do downloads+=("$l/sid"); done

rm -f "$dir"/debs/*.deb
echo "setup: downloading ${downloads[*]}" >&2
(cd "$dir/debs" && apt-get "${aptopts[@]}" -qq download "${downloads[@]}" >&2)

rm -rf "$dir/lib" "$dir/root"
mkdir -p "$dir/lib" "$dir/root"
for d in "$dir"/debs/lib*.deb; do dpkg-deb -x "$d" "$dir/lib"; done
ld="$dir/lib/usr/lib64/ld-linux-x86-64.so.2"
libpath="$dir/lib/usr/lib/x86_64-linux-gnu:$dir/lib/lib/x86_64-linux-gnu"
[ -x "$ld" ] || { echo "setup: $ld missing after unpacking libc6" >&2; exit 1; }

wrap() { # wrap NAME ROLE BINARY: a script that runs BINARY as ROLE through the unpacked loader
  cat >"$dir/bin/$1" <<EOF
#!/bin/sh
# Made by redback's scripts/servers.sh: Debian's $4 run with its own C library.
exec "$ld" --library-path "$libpath" --argv0 "$2" "$3" "\$@"
EOF
  chmod +x "$dir/bin/$1"
}
for w in "${versions[@]}"; do
  IFS=: read -r pkg series suite name v <<<"$w"
  up=${v#*:}; up=${up%%[-+]*}
  root="$dir/root/$name-$up"
  mkdir -p "$root"
  deb=$(ls "$dir"/debs/"${pkg}"_*"${up}"*.deb | head -n 1)
  dpkg-deb -x "$deb" "$root"
  wrap "$name-server-$series" "$name-server" "$root/usr/bin/$name-check-rdb" "$pkg $v ($suite)"
  wrap "$name-check-aof-$series" "$name-check-aof" "$root/usr/bin/$name-check-rdb" "$pkg $v ($suite)"
  wrap "$name-check-rdb-$series" "$name-check-rdb" "$root/usr/bin/$name-check-rdb" "$pkg $v ($suite)"
  wrap "$name-cli-$series" "$name-cli" "$root/usr/bin/$name-cli" "$pkg $v ($suite)"
done
rm -rf "$dir/apt/cache" "$dir/apt/lists"
if ! ready; then
  echo "setup: the unpacked servers in $dir do not start; try: $dir/bin/valkey-server-9.1 --version" >&2
  exit 1
fi
for w in "${wanted[@]}"; do
  IFS=: read -r _ series _ name <<<"$w"
  echo "setup: $("$dir/bin/$name-server-$series" --version | cut -d' ' -f1-3) as $dir/bin/$name-server-$series" >&2
done
