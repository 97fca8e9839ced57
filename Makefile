# The two entry points the README names: `make run` and `make test`.
GO ?= go

.PHONY: build run test bench fuzz deps

build:
	$(GO) build -o bin/zrs ./cmd/zrs

# The main job: a node serving zrs-data/Data.fs to ZEO clients on
# 127.0.0.1:8100 (Ctrl-C stops it gracefully).
run: build
	./bin/zrs node --data-dir zrs-data

# Every test; CI runs exactly this. Installs ZooKeeper and java first when
# they are missing (integration tests run real servers).
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# What the tests need besides Go (ZooKeeper, java), installed when missing.
deps:
	bash scripts/install-deps.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./storage/ ./wire/... ./node/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime 60s -fuzzminimizetime 20x ./storage/
