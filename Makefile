# quiesce — see README.md. `make run` starts a gateway, `make test` runs every test.
GO        ?= go
BIN       := bin/quiesce
PKGS      := ./...
BENCHTIME ?= 1s

.PHONY: all build run test test-short bench diagrams soak fuzz fmt vet mutate

all: build

build:
	$(GO) build -o $(BIN) ./cmd/quiesce

run: build
	./$(BIN) run --dev $(ARGS)

# test: vet, then every test (unit, rapid properties, fuzz seeds,
# end-to-end, and that every planted-bug patch still applies) under the
# race detector. Rapid reads RAPID_* env vars.
test: vet
	$(GO) test -race -count=1 $(PKGS)

test-short: vet
	$(GO) test -short -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

# bench: Go benchmarks; every figure is also printed as a ratio against the
# baseline measured in the same run.
# Then the end-to-end driver (bench/driver) runs the real binary against
# the baselines in bench/ and writes docs/PERFORMANCE.md (BENCH_ARGS: its
# flags, e.g. BENCH_ARGS="-drain-trials 50 -skip flat"; see docs/PERFORMANCE.md).
BENCH_ARGS ?=
bench:
	$(GO) test -run=NONE -bench=. -benchtime=$(BENCHTIME) $(PKGS) | $(GO) run ./internal/benchreport
	$(GO) run ./bench/driver $(BENCH_ARGS)

# diagrams: regenerate docs/diagrams and README's diagram from the lifecycle.
diagrams:
	$(GO) test ./fsm -run '^TestDiagrams$$' -count=1 -update

# soak: the reliability drills at full scale (docs/RELIABILITY.md): the
# marker writer killed 1000 times, the real binary killed with -9 at least
# 200 times under load, and the outside I1 monitor at 10k turns.
SOAK_KILLS ?= 200
soak:
	QUIESCE_SOAK=1 $(GO) test -count=1 -run 'TestCrashSafety' ./marker
	QUIESCE_SOAK_KILLS=$(SOAK_KILLS) QUIESCE_SOAK_SCALE=5 $(GO) test -count=1 -timeout 60m -v -run 'TestSoak' ./cmd/quiesce

# mutate: apply each planted bug of testdata/mutants to a temporary copy of
# the tree and run the tests it names; fails unless every one is caught by
# an assertion (docs/RELIABILITY.md). MUTANTS filters: a name, a package or
# a pattern, e.g. make mutate MUTANTS=fsm/split-gate or MUTANTS=notify.
MUTANTS ?=
mutate:
	$(GO) run ./internal/mutate $(MUTANT_ARGS) $(MUTANTS)

# fuzz: every fuzz target for FUZZTIME each (their seed corpora also run
# in make test).
FUZZTIME ?= 60s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run=NONE -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done
