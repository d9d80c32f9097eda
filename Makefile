# signerd — `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
VAR       := $(CURDIR)/var
BIN       := $(CURDIR)/bin
TOOLS     := $(BIN)/tools
BUF_VERSION            := v1.75.0
PROTOC_GEN_GO_VERSION  := v1.36.12
PROTOC_GEN_GRPC_VERSION := v1.6.2
NFPM_VERSION           := v2.48.0
GRPCURL_VERSION        := v1.9.4
# Where signctl finds the daemon `make run` starts.
SOCKET    := $(VAR)/signerd.sock
TOKEN     := signerd
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The first SoftHSM2 library present (evaluated when used, after deps).
MODULE     = $(firstword $(wildcard /usr/lib/softhsm/libsofthsm2.so /usr/lib/*-linux-gnu/softhsm/libsofthsm2.so))
# Each fuzz target in `make test` runs a number of inputs, not a time: a
# time budget made Go's fuzzing coordinator fail with "context deadline
# exceeded" when a loaded machine was still running the seed corpus.
FUZZTIME  ?= 20000x

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install SoftHSM2, openssl, util-linux (setpriv, prlimit), the modules of the test matrix, a C compiler, systemd's tools, lintian and the Python loader's gRPC and protoc when missing (Debian/Ubuntu)
	@missing=""; for pkg in softhsm2 openssl util-linux opensc opensc-pkcs11 p11-kit p11-kit-modules gcc libc6-dev systemd lintian python3-grpcio protobuf-compiler protobuf-compiler-grpc; do \
		dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (apt-get)"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# What the binaries cannot read from runtime/debug.ReadBuildInfo (the
# build time always; version and revision under -buildvcs=false or outside
# Git) is stamped into internal/version. SOURCE_DATE_EPOCH fixes the time.
VERSION_PKG := github.com/signerd/signerd/internal/version
BUILD_TIME   = $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(date +%s)} +%Y-%m-%dT%H:%M:%SZ)
GIT_REV      = $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
GIT_TAG      = $(shell git describe --tags --dirty 2>/dev/null)
LDFLAGS      = -X $(VERSION_PKG).stampedVersion=$(GIT_TAG) -X $(VERSION_PKG).stampedRevision=$(GIT_REV) -X $(VERSION_PKG).stampedBuildTime=$(BUILD_TIME)

.PHONY: build
build: ## build bin/signerd and bin/signctl (version, revision and build time stamped)
	CGO_ENABLED=1 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/signerd ./cmd/signerd
	CGO_ENABLED=1 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/signctl ./cmd/signctl

.PHONY: run
run: deps build ## run signerd on ./var/signerd.sock with a SoftHSM2 token under ./var/
	@mkdir -p $(VAR)/tokens && chmod 700 $(VAR)
	@[ -f $(VAR)/softhsm2.conf ] || printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$(VAR)" > $(VAR)/softhsm2.conf
	@SOFTHSM2_CONF=$(VAR)/softhsm2.conf $(BIN)/signerd init-token --pkcs11-module $(MODULE) \
		--token-label $(TOKEN) --pin-file $(VAR)/pin --so-pin-file $(VAR)/so-pin
	@echo
	@echo "signerd is starting on $(SOCKET). In another terminal:"
	@echo "  export SIGNCTL_SOCKET=$(SOCKET) PATH=$(BIN):\$$PATH"
	@echo "  signctl key create release --algorithm ed25519"
	@echo "  signctl trust add --org acme --key release"
	@echo "  signctl sign FILE --key release && signctl verify FILE --org acme"
	@echo
	SOFTHSM2_CONF=$(VAR)/softhsm2.conf exec $(BIN)/signerd --pkcs11-module $(MODULE) --token-label $(TOKEN) \
		--pin-file $(VAR)/pin --db $(VAR)/signerd.db --socket $(SOCKET)

.PHONY: test
test: deps proto-check vet $(TOOLS)/grpcurl ## every test, the SoftHSM2 end-to-end suite included
	CGO_ENABLED=1 SIGNERD_GRPCURL=$(TOOLS)/grpcurl $(GO) test -race -count=1 -timeout 40m ./...
	$(MAKE) fuzz-short

# make test LOAD_RUNS times in a row beside stress-ng --cpu 2 (Debian's
# stress-ng, installed when missing): the suite counts operations and never
# races a clock, and this is how that is shown (README, "Quick start").
LOAD_RUNS ?= 3
.PHONY: test-under-load
test-under-load: deps ## make test 3 times in a row (LOAD_RUNS) while stress-ng --cpu 2 keeps both cores busy
	@dpkg -s stress-ng >/dev/null 2>&1 || { echo "installing stress-ng (apt-get)"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null; }
	@stress-ng --cpu 2 --timeout 0 --quiet & load=$$!; trap 'kill $$load 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq $(LOAD_RUNS)); do \
		start=$$(date +%s); echo "== make test beside stress-ng --cpu 2: run $$i of $(LOAD_RUNS)"; \
		$(MAKE) --no-print-directory test || { echo "== run $$i of $(LOAD_RUNS) FAILED under load"; exit 1; }; \
		echo "== run $$i of $(LOAD_RUNS) passed in $$(( $$(date +%s) - start )) s (stress-ng pid $$load still running: $$(kill -0 $$load && echo yes))"; \
	done; echo "== $(LOAD_RUNS) consecutive runs of make test passed beside stress-ng --cpu 2"

# The tests over the third-party SchemaPin corpus (other people's files,
# never copied into the repository) read it from ../shared or
# SIGNERD_SHARED; without it this target fails, it never skips.
SIGNERD_SHARED ?= $(abspath $(CURDIR)/../shared)
.PHONY: conformance
conformance: deps ## the SchemaPin conformance tests over ../shared (or SIGNERD_SHARED)
	@if [ ! -d "$(SIGNERD_SHARED)/fixtures/schemapin/real-world-signed-skills" ] || \
		[ ! -d "$(SIGNERD_SHARED)/fixtures/schemapin/upstream-repo" ]; then \
		echo "make conformance: no third-party SchemaPin corpus at $(SIGNERD_SHARED)/fixtures/schemapin" >&2; \
		echo "  (put shared/ beside the checkout or set SIGNERD_SHARED=/path/to/shared)" >&2; exit 1; \
	fi
	CGO_ENABLED=1 SIGNERD_SHARED=$(SIGNERD_SHARED) $(GO) test -race -count=1 -tags conformance -run 'Conformance|^Fuzz' ./internal/skill/ ./internal/cli/

.PHONY: vet
vet: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '^gen/' || true); \
		if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags conformance ./internal/skill/ ./internal/cli/

.PHONY: fuzz-short
fuzz-short: ## run each fuzz target briefly (seeds are checked in)
	@mkdir -p $(VAR)
	@set -e; for pkg in $$($(GO) list ./internal/...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			dir=$$($(GO) list -f '{{.Dir}}' $$pkg)/testdata/fuzz/$$f; \
			before=$$(ls $$dir 2>/dev/null | wc -l); \
			if ! $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg > $(VAR)/fuzz.log 2>&1; then \
				after=$$(ls $$dir 2>/dev/null | wc -l); \
				if [ "$$after" != "$$before" ]; then cat $(VAR)/fuzz.log; echo "fuzzer found a failing input: see $$dir"; exit 1; fi; \
				echo "fuzz worker failed without a finding (overloaded machine?); retrying once"; tail -5 $(VAR)/fuzz.log; \
				$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg > $(VAR)/fuzz.log 2>&1 || { cat $(VAR)/fuzz.log; exit 1; }; \
			fi; \
		done; \
	done

# The reliability tests run in `make test` in a short form; SIGNERD_SOAK=1
# makes them long (README, "Reliability").
SOAK_TESTS := ^(TestHSMFault|TestCrashSafety|TestLoad|TestBadClients|TestConnectionLimit|TestRefusalFlood|TestMadeUpOrgsMemory|TestTLSHandshakeFlood|TestMetricsFlood)$$
.PHONY: soak
soak: deps ## long reliability runs: 100 kill -9s under load, 64 clients for 60s, HSM faults, bad clients
	CGO_ENABLED=1 SIGNERD_SOAK=1 $(GO) test -count=1 -timeout 60m -v -run '$(SOAK_TESTS)' ./softhsm-test/

# `make test` runs a miniature of it (TestBenchSmoke); README, "Performance".
.PHONY: bench
bench: deps ## the benchmark suite: ratios to ceilings; writes var/bench/results.json
	CGO_ENABLED=1 SIGNERD_BENCH=1 SIGNERD_BENCH_OUT=$(VAR)/bench/results.json $(GO) test -run '^TestBench$$' -count=1 -timeout 60m -v ./softhsm-test/bench/

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)
# The README's "From another language" commands; softhsm-test runs them.
$(TOOLS)/grpcurl:
	GOBIN=$(TOOLS) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
PROTO_TOOLS := $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc

.PHONY: proto
proto: $(PROTO_TOOLS) ## buf lint and buf generate into gen/
	PATH=$(TOOLS):$$PATH buf lint
	PATH=$(TOOLS):$$PATH buf generate

.PHONY: proto-check
proto-check: $(PROTO_TOOLS) ## fail if gen/ is stale against proto/
	PATH=$(TOOLS):$$PATH buf lint
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
		PATH=$(TOOLS):$$PATH buf generate -o $$tmp && \
		if ! diff -r $$tmp/gen gen >/dev/null; then \
			diff -r $$tmp/gen gen | head -20; echo "gen/ is stale: run make proto and commit"; exit 1; \
		fi && echo "gen/ is up to date"

# The package's version: the newest v* tag (v1.2.0-3-gabc1234 becomes
# 1.2.0+3.gabc1234), or 0.0.0~git<date>.<commit> before the first tag.
DEB_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//; s/-\([0-9]*\)-g/+\1.g/'); \
	[ -n "$$v" ] || v=0.0.0~git$$(git log -1 --format=%cd --date=format:%Y%m%d).$$(git rev-parse --short HEAD); echo $$v)
DEB_ARCH    ?= $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
DEB_STAGE   := $(VAR)/deb
$(TOOLS)/nfpm:
	GOBIN=$(TOOLS) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

.PHONY: deb
deb: $(TOOLS)/nfpm ## bin/signerd_VERSION-1_ARCH.deb: binaries, systemd units, config, man pages, completions
	rm -rf $(DEB_STAGE) && mkdir -p $(DEB_STAGE) $(BIN)
	@# make build as it is, as position-independent executables, stripped
	$(MAKE) build BIN=$(DEB_STAGE) GOFLAGS='$(GOFLAGS) -buildmode=pie -trimpath'
	strip --strip-unneeded $(DEB_STAGE)/signerd $(DEB_STAGE)/signctl
	$(GO) run ./deploy/gendocs -out $(DEB_STAGE)
	gzip -9n $(DEB_STAGE)/man/*.1
	printf 'signerd (%s-1) unstable; urgency=medium\n\n  * Built from %s.\n\n -- signerd maintainers <signerd@example.org>  %s\n' \
		'$(DEB_VERSION)' "$$(git rev-parse HEAD)" "$$(git log -1 --format=%cD)" | gzip -9n > $(DEB_STAGE)/changelog.Debian.gz
	DEB_VERSION='$(DEB_VERSION)' DEB_ARCH=$(DEB_ARCH) DEB_STAGE=$(DEB_STAGE) $(TOOLS)/nfpm package -f deploy/deb/nfpm.yaml -p deb -t $(BIN)/
	@ls $(BIN)/signerd_$(DEB_VERSION)-1_$(DEB_ARCH).deb

.PHONY: clean
clean: ## remove bin/ (var/ holds your token and database: remove it by hand)
	rm -rf $(BIN)
