# The two entry points the README names: `make run` and `make test`.
GO ?= go

.PHONY: build run test bench fuzz

build:
	$(GO) build -o bin/zrs ./cmd/zrs

# The main job: check and list a FileStorage file (DATA=path to override).
DATA ?= ../shared/fixtures/filestorage/basic.fs
run: build
	./bin/zrs verify $(DATA)

# Every test; CI runs exactly this.
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./storage/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime 60s -fuzzminimizetime 20x ./storage/
