# The two entry points the README names: `make run` and `make test`.
GO ?= go

.PHONY: build run node test bench fuzz deps

build:
	$(GO) build -o bin/zrs ./cmd/zrs

# The main job: a local cluster, one ZooKeeper (installed when missing)
# and three nodes with automatic failover (Ctrl-C stops it).
run:
	bash scripts/local-cluster.sh

# A single standalone node serving zrs-data/Data.fs on 127.0.0.1:8100.
node: build
	./bin/zrs node --data-dir zrs-data

# Every test; CI runs exactly this. Installs ZooKeeper and java first when
# they are missing (integration tests run real servers), then ends with a
# short chaos run against the docker compose cluster (images are built
# when missing).
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) chaos-short

# What the tests need besides Go (ZooKeeper, java), installed when missing.
deps:
	bash scripts/install-deps.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./storage/ ./wire/... ./node/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime 60s -fuzzminimizetime 20x ./storage/

# The docker compose cluster of docker-compose.yml (ZooKeeper ensemble and
# three zrs nodes), with images built here from Debian packages and our
# binary: no image registry needed.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: images compose-up compose-down

# Builds zrs/debian-base (debootstrap), zrs/zookeeper and zrs/zrs when they
# are missing or out of date; `make images FORCE=1` rebuilds all of them.
images:
	bash scripts/build-images.sh $(if $(FORCE),--force)

# Builds what is missing, starts the cluster and waits until it is healthy.
compose-up:
	COMPOSE="$(COMPOSE)" bash scripts/compose-up.sh

# Stops the cluster and deletes its containers, network and data volumes.
compose-down:
	$(COMPOSE) --profile workload down --volumes --remove-orphans

# The chaos suite (integration/chaos): the compose cluster under a recorded
# workload while faults are injected on a seeded schedule (kill, pause and
# partitions of the primary, ZooKeeper leader kill and quorum loss, restart
# of a catching-up secondary), then the history is checked with porcupine
# and the end state, logs and data files independently. Needs docker and
# root (partitions are iptables rules in the containers' namespaces).
# Results (report.txt/json, history, logs) go under chaos-results/.
#   make chaos-short                 a handful of faults, a few minutes
#   make chaos ROUNDS=40 SEED=7      a long run
ROUNDS ?= 20
SEED ?= 0
CHAOS_FLAGS = -chaos -chaos.seed=$(SEED) -chaos.results=$(CURDIR)/chaos-results

.PHONY: chaos chaos-short

chaos:
	$(GO) test -count=1 -timeout 0 -v -run '^TestChaos$$' ./integration/chaos $(CHAOS_FLAGS) -chaos.rounds=$(ROUNDS)

chaos-short:
	$(GO) test -count=1 -timeout 0 -v -run '^TestChaos$$' ./integration/chaos $(CHAOS_FLAGS) -chaos.rounds=8
