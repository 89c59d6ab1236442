#!/usr/bin/env bash
# Runs every redback test: unit, integration against real redis-server and a
# real S3 server (versitygw), the GCS and Azure Blob emulators
# (fake-gcs-server, Azurite), the timeline page in headless Chromium, then a
# short time-boxed fuzz pass per parser.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$(go env GOPATH)/bin:$PATH"
# The server matrix: the end-to-end families (internal/cli TestServers and
# every test that calls redistest.EachServer) run against each of these.
if [ "${REDBACK_SKIP_SERVERS:-0}" != 1 ]; then
  export PATH="$PATH:${REDBACK_SERVERS_DIR:-$HOME/.cache/redback/servers}/bin"
  export REDBACK_TEST_SERVERS=${REDBACK_TEST_SERVERS:-redis-server,redis-server-8.0,redis-server-8.6,valkey-server-8.1,valkey-server-9.1}
fi
export REDBACK_TEST_REQUIRE_REDIS=${REDBACK_TEST_REQUIRE_REDIS:-1}
export REDBACK_TEST_REQUIRE_S3=${REDBACK_TEST_REQUIRE_S3:-1}
if [ "${REDBACK_SKIP_BROWSER:-0}" != 1 ]; then
  export REDBACK_TEST_REQUIRE_CHROMIUM=${REDBACK_TEST_REQUIRE_CHROMIUM:-1}
fi
export REDBACK_TEST_REQUIRE_GCS=${REDBACK_TEST_REQUIRE_GCS:-1}
export REDBACK_TEST_REQUIRE_AZURE=${REDBACK_TEST_REQUIRE_AZURE:-1}
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -race -timeout 25m ./...
bash scripts/fuzz.sh "${FUZZTIME:-20s}"
