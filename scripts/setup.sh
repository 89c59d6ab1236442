#!/usr/bin/env bash
# Installs what redback's demo and tests need on a fresh Debian machine with Go:
# redis-server and redis-tools (Debian packages), chromium (the timeline
# page's browser tests; REDBACK_SKIP_BROWSER=1 skips it), versitygw (a real
# S3 server for the S3 backend tests), fake-gcs-server (a GCS emulator),
# Azurite (the Azure Blob emulator, an npm package; nodejs and npm come from
# Debian when missing), and the newer servers the tests also run against --
# Redis 8.0, Valkey 8.1 and 9.1, unpacked from Debian's packages into a cache
# dir by scripts/servers.sh (REDBACK_SKIP_SERVERS=1 skips them).
# Idempotent: it only installs what is missing.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-check-aof >/dev/null 2>&1 || need_apt+=(redis-tools)
if [ "${REDBACK_SKIP_BROWSER:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  need_apt+=(chromium)
fi
if [ "${REDBACK_SKIP_AZURE:-0}" != 1 ] && ! command -v azurite-blob >/dev/null 2>&1; then
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
  command -v npm >/dev/null 2>&1 || need_apt+=(npm)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # Debian's package starts a system redis-server on 6379; redback never uses it.
fi

GOBIN="$(go env GOPATH)/bin"
if [ "${REDBACK_SKIP_S3:-0}" != 1 ] && ! command -v versitygw >/dev/null 2>&1 && [ ! -x "$GOBIN/versitygw" ]; then
  echo "setup: installing versitygw v1.8.0 (go install)" >&2
  go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
if [ "${REDBACK_SKIP_GCS:-0}" != 1 ] && ! command -v fake-gcs-server >/dev/null 2>&1 && [ ! -x "$GOBIN/fake-gcs-server" ]; then
  echo "setup: installing fake-gcs-server v1.56.1 (go install)" >&2
  go install github.com/fsouza/fake-gcs-server@v1.56.1
fi
if [ "${REDBACK_SKIP_AZURE:-0}" != 1 ] && ! command -v azurite-blob >/dev/null 2>&1; then
  echo "setup: installing azurite@3 (npm install -g)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO npm install -g --no-audit --no-fund azurite@3 >/dev/null
fi

if [ "${REDBACK_SKIP_SERVERS:-0}" != 1 ]; then
  bash "$(dirname "$0")/servers.sh"
fi
