.PHONY: build test demo fuzz bench setup reliability
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

# Long fault and soak runs (not in the default CI run): every test named
# TestReliability_* runs its full length when REDBACK_RELIABILITY=1 (without it,
# those tests run a short version or skip). Figures go to docs/reliability.md.
reliability: build
	REDBACK_RELIABILITY=1 go test -count=1 -timeout 60m -run 'Reliability' ./...
