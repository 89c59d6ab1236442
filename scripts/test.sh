#!/usr/bin/env bash
# Runs every redback test: unit, integration against real redis-server and a
# real S3 server (versitygw), then a short time-boxed fuzz pass per parser.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$(go env GOPATH)/bin:$PATH"
export REDBACK_TEST_REQUIRE_REDIS=${REDBACK_TEST_REQUIRE_REDIS:-1}
export REDBACK_TEST_REQUIRE_S3=${REDBACK_TEST_REQUIRE_S3:-1}
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -race -timeout 25m ./...
bash scripts/fuzz.sh "${FUZZTIME:-10s}"
