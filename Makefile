# quiesce — see README.md. `make run` starts a gateway, `make test` runs every test.
GO        ?= go
BIN       := bin/quiesce
PKGS      := ./...
BENCHTIME ?= 1s

.PHONY: all build run test test-short bench fleet diagrams soak fuzz fmt vet staticcheck image need-browser need-haproxy mutate

all: build

# The binary and the image are stamped with this checkout's version and
# revision (quiesce version, status's version, quiesce_build_info).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILDINFO := github.com/quiesce-dev/quiesce/internal/buildinfo
build:
	$(GO) build -ldflags "-X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).Revision=$(REVISION)" -o $(BIN) ./cmd/quiesce

# image: the container image (Dockerfile), stamped the same way (the build
# context has no .git to read them from).
IMAGE    ?= quiesce
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE) .

run: build
	./$(BIN) run --dev $(ARGS)

# test: vet and staticcheck, then every test (unit, rapid properties, fuzz
# seeds, end-to-end, and that every planted-bug patch under testdata/mutants
# still applies) under the race detector. Rapid reads RAPID_* env vars.
# The status page test drives a real headless Chromium: need-browser checks
# for one first, so a machine without it learns so at once, with the
# install command, rather than minutes later (QUIESCE_NO_BROWSER=1 skips
# that test instead). The load balancer tests (deploy, bench/fleet) run
# the checked-in HAProxy configuration: need-haproxy checks for haproxy
# the same way (QUIESCE_NO_HAPROXY=1 skips them).
test: need-browser need-haproxy vet staticcheck
	$(GO) test -race -count=1 $(PKGS)

# staticcheck: the pinned release, fetched through the module proxy by
# `go run` (nothing to install beforehand).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
staticcheck:
	$(GO) run $(STATICCHECK) $(PKGS)

BROWSERS := chromium chromium-browser google-chrome google-chrome-stable
need-browser:
	@if [ "$(QUIESCE_NO_BROWSER)" != 1 ]; then \
	  for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && exit 0; done; \
	  echo "make test needs Chromium for the status page test, and none of $(BROWSERS) is on PATH." >&2; \
	  echo "Install it (Debian, Ubuntu): sudo apt-get install chromium   (.ci/run does this)" >&2; \
	  echo "or skip that one test: make test QUIESCE_NO_BROWSER=1" >&2; \
	  exit 1; \
	fi

# Debian installs haproxy in /usr/sbin, which is not on a user's PATH.
SBIN := /usr/sbin /usr/local/sbin
need-haproxy:
	@if [ "$(QUIESCE_NO_HAPROXY)" != 1 ]; then \
	  for d in $(subst :, ,$(PATH)) $(SBIN); do [ -x "$$d/haproxy" ] && exit 0; done; \
	  echo "make test and make fleet need HAProxy for the load balancer drill, and haproxy is not installed." >&2; \
	  echo "Install it (Debian, Ubuntu): sudo apt-get install -y --no-install-recommends haproxy   (.ci/run does this)" >&2; \
	  echo "or skip those tests: make test QUIESCE_NO_HAPROXY=1" >&2; \
	  exit 1; \
	fi

test-short: vet
	$(GO) test -short -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

# bench: Go benchmarks; every figure is also printed as a ratio against the
# baseline measured in the same run.
# Then the end-to-end driver (bench/driver) runs the real binary against
# the baselines in bench/ and prints its report (BENCH_ARGS: its flags, e.g.
# BENCH_ARGS="-drain-trials 50 -skip flat"; see docs/PERFORMANCE.md). It
# leaves docs/PERFORMANCE.md alone unless asked: make bench UPDATE=1
# rewrites it with this run's figures.
BENCH_ARGS ?=
UPDATE     ?=
BENCH_OUT  := $(if $(filter 1 yes true,$(UPDATE)),docs/PERFORMANCE.md,)
bench:
	$(GO) test -run=NONE -bench=. -benchtime=$(BENCHTIME) $(PKGS) | $(GO) run ./internal/benchreport
	$(GO) run ./bench/driver -out "$(BENCH_OUT)" $(BENCH_ARGS)

# fleet: the load balancer drill (docs/RELIABILITY.md, "Behind a load
# balancer"): HAProxy with deploy/haproxy/haproxy.cfg in front of 3
# gateways, 32 keep-alive clients sending turns and internal events, 3
# rolling restarts with drain --announce, then the same without it (the
# baseline); it prints what the clients saw and exits 1 if the announce
# run missed its goal. FLEET_ARGS: the driver's flags (go run ./bench/fleet
# -h), e.g. FLEET_ARGS="-rollouts 1 -modes announce". make test runs a
# short version (TestFleetDrillShort).
FLEET_ARGS ?=
fleet: need-haproxy
	$(GO) run ./bench/fleet $(FLEET_ARGS)

# diagrams: regenerate docs/diagrams and README's diagram from the lifecycle.
diagrams:
	$(GO) test ./fsm -run '^TestDiagrams$$' -count=1 -update

# soak: the reliability drills at full scale (docs/RELIABILITY.md): the
# marker writer killed 1000 times, the real binary killed with -9 at least
# 200 times under load, the outside I1 monitor at 10k turns, and the
# linearizability check of what LIN_CLIENTS clients of the real binary saw
# (about LIN_OPS operations, checked in windows of LIN_WINDOW_OPS; it
# prints the operations checked, the verdict and the checking time).
SOAK_KILLS     ?= 200
LIN_OPS        ?= 13000
LIN_CLIENTS    ?= 16
LIN_WINDOW_OPS ?= 3000
soak:
	QUIESCE_SOAK=1 $(GO) test -count=1 -run 'TestCrashSafety' ./marker
	QUIESCE_SOAK_KILLS=$(SOAK_KILLS) QUIESCE_SOAK_SCALE=5 $(GO) test -count=1 -timeout 60m -v -run 'TestSoak' ./cmd/quiesce
	QUIESCE_LIN_OPS=$(LIN_OPS) QUIESCE_LIN_CLIENTS=$(LIN_CLIENTS) QUIESCE_LIN_WINDOW_OPS=$(LIN_WINDOW_OPS) \
	  $(GO) test -count=1 -timeout 30m -v -run '^TestLinearizability$$' ./cmd/quiesce

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
