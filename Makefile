# shardgate: `make run` starts a local sharded cluster, `make test` runs every test.
GO ?= go
BIN := bin

.PHONY: all build run test vet bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/shardgate ./cmd/shardctl ./internal/devcluster

# Two local Postgres shards (installed with apt-get if missing), a gateway with
# embedded etcd, and the sample keyspace `app`; data under .run/ (as root, the
# shards' under /var/tmp, where the OS user postgres can reach it).
run: build
	$(BIN)/devcluster --bin $(BIN)

vet:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	@# The engine builds and tests without cgo (pg_query stays in planner).
	CGO_ENABLED=0 $(GO) vet ./planner/engine

# The whole suite against real Postgres and real etcd. The harness installs
# PostgreSQL with apt-get when it is missing.
test: vet
	$(GO) test -count=1 -timeout 30m ./...

# Every fuzz target in the module for FUZZTIME each, one after another. A
# crasher is written to the package's testdata/fuzz, where every `go test`
# runs it from then on.
FUZZTIME ?= 30s
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$(dirname $$f) $$target"; \
			$(GO) test $$(dirname $$f) -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s; \
		done; \
	done

# pgbench directly, through pgbouncer and through shardgate (BENCHFLAGS=-quick
# for a short try); results also in bench-results/<timestamp>.json.
BENCHFLAGS ?=
bench:
	$(GO) run ./internal/bench $(BENCHFLAGS)

# devcluster knows where `make run` keeps the shards' data.
clean:
	$(GO) run ./internal/devcluster -clean
	rm -rf $(BIN)
