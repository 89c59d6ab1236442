.PHONY: build test demo fuzz bench setup
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

build:
	CGO_ENABLED=0 go build -ldflags "-X redback/internal/cli.Version=$(VERSION)" -o bin/redback ./cmd/redback

setup:
	bash scripts/setup.sh

# Every test: unit, integration against real servers, a short fuzz pass.
test:
	bash scripts/test.sh

# The main job on an embedded default: a local redis-server and a file repository.
demo: build
	bash scripts/demo.sh

fuzz:
	bash scripts/fuzz.sh 5m

bench: build
	bash bench/run.sh
