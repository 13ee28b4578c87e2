# lineaged — build, test and benchmark. Tests and benchmarks load BPF: run as root.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
ARGS      ?=
BENCH_ARGS ?=
# Package versions rise with every commit on main, so dpkg and rpm order them.
PKG_VERSION ?= 0.1.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)
# The architecture built for: this machine's, or `make package ARCH=arm64` (or amd64; aarch64 and
# x86_64 are taken too) to cross-build the binaries and packages (the BPF objects of both are
# committed). Only the command line sets it: an ARCH in the environment is a kernel build's.
HOST_ARCH := $(shell $(GO) env GOARCH 2>/dev/null || echo amd64)
ifeq ($(origin ARCH),command line)
override ARCH := $(patsubst x86_64,amd64,$(patsubst aarch64,arm64,$(ARCH)))
else
ARCH      := $(HOST_ARCH)
endif
PKG_ARCH  ?= $(ARCH)
# A cross-built binary goes beside, not over, this machine's (Go's own layout for them).
ifeq ($(ARCH),$(HOST_ARCH))
BIN       ?= bin/lineaged
else
BIN       ?= bin/linux_$(ARCH)/lineaged
endif
DIST      ?= $(CURDIR)/dist
NFPM      ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
# 6.12-nolsm boots without the BPF LSM: the tracepoint fallback path.
KERNELS   ?= 5.10,6.1,6.12,6.18,newest,6.12-nolsm
# arm64 guests (make vmtest-arm64): Debian's cloud-arm64 kernels. 6.1 is left out by default:
# arm64 has BPF trampolines (fentry, LSM programs) from 6.4 on (docs/kernels.md).
KERNELS_ARM64 ?= 6.12,newest
PKGS_ARM64    ?= ./tests/vmtest/smoke,./sensor/kernel,./tests/denyexec
# What CI runs on arm64 (make vmtest-arm64-ci, once, on newest): the smoke tests (every arm64
# object verified, the attach kinds) and sensor/kernel's exec and file and network tests.
VMTEST_ARM64_RUN ?= TestRingbufExec|TestAttachTypes|TestVerifierBudget|TestFileIO|TestRootExecArgvForkExit|TestRootPathWalkBuilds

.PHONY: all deps generate generate-check tidy-check build test bench lint run demo kafka-demo vmtest vmtest-arm64 vmtest-arm64-ci servicetest check clean package

all: build

## deps: install the Debian packages builds and tests need (root, fresh machine)
deps:
	bash tests/install-deps.sh

## generate: regenerate the BPF objects and Go bindings (needs clang, llvm, libbpf-dev)
generate:
	$(GO) generate ./sensor/... ./tests/vmtest/smoke/...

## generate-check: regenerate and fail if the committed files differ (or new ones are not committed)
generate-check: generate
	git diff --exit-code -- sensor/ bpf/ tests/vmtest/smoke/
	@out=$$(git status --porcelain --untracked-files=all -- sensor/ bpf/ tests/vmtest/smoke/); \
	if [ -n "$$out" ]; then echo "generated files not committed:"; echo "$$out"; exit 1; fi

## tidy-check: fail if `go mod tidy` would change go.mod or go.sum
tidy-check:
	$(GO) mod tidy
	git diff --exit-code -- go.mod go.sum

## build: the lineaged binary and, beside it, the small lineaged-hook (no clang needed: generated files are committed)
build:
	CGO_ENABLED=0 GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/lineaged
	CGO_ENABLED=0 GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '-s -w' -o $(dir $(BIN))lineaged-hook ./cmd/lineaged-hook

## test: every test, as root (real BPF, a Kafka-protocol broker, the real Claude Code).
## tests/packaging installs the package into this machine's /usr and /etc (the default rules
## directory, Claude Code's managed settings), which the other packages' sensors and Claude Code
## runs read: it runs after them, alone.
test:
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/tests/packaging$$')
	$(GO) test -count=1 -timeout 10m ./tests/packaging

## package: $(DIST)/lineaged_VERSION_ARCH.deb and lineaged-VERSION-1.RPMARCH.rpm (nfpm, deploy/package;
## DIST=dist); ARCH=arm64 makes the arm64 ones (_arm64.deb, .aarch64.rpm) on an x86-64 machine
package: build
	rm -rf $(DIST)/.root && mkdir -p $(DIST)/.root/bin
	cp $(BIN) $(dir $(BIN))lineaged-hook $(DIST)/.root/bin/
	ln -s $(CURDIR)/deploy $(CURDIR)/docs $(DIST)/.root/
	cp README.md $(DIST)/.root/
	cd $(DIST)/.root && LINEAGED_PKG_VERSION=$(PKG_VERSION) LINEAGED_PKG_ARCH=$(PKG_ARCH) $(NFPM) package -f deploy/package/nfpm.yaml -p deb -t ..
	cd $(DIST)/.root && LINEAGED_PKG_VERSION=$(PKG_VERSION) LINEAGED_PKG_ARCH=$(PKG_ARCH) $(NFPM) package -f deploy/package/nfpm.yaml -p rpm -t ..
	rm -rf $(DIST)/.root

## bench: the cost table (tests/costbench: an exec storm as a tool call of the real Claude Code,
## under the real binary, targets next to measured values, ratios against the sensor off in the
## same run), then the replay table (tests/replaybench: replay and sessions --html of the capture
## of the same storm, recorded as a Bash tool call of the real Claude Code; REPLAY_ARGS for its flags), then the Go micro-benchmarks (replay's loading
## too). BENCH_ARGS="-quick" for a smoke run of both tables; docs/performance.md
bench: build
	$(GO) run ./tests/costbench $(BENCH_ARGS)
	$(GO) run ./tests/replaybench $(if $(findstring -quick,$(BENCH_ARGS)),-quick) $(REPLAY_ARGS)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./sensor/... ./lineage/... ./sink/...
	$(GO) test -run '^$$' -bench Replay -benchmem -count 1 ./cmd/lineaged

## lint: formatting and vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## run: build and run the sensor with its defaults (stdout) and the shipped rule set; ARGS="..." adds flags
run: build
	LINEAGED_POLICY_RULES=$${LINEAGED_POLICY_RULES:-deploy/rules} ./$(BIN) run $(ARGS)

## demo: one real Claude Code session under the sensor, its events printed
demo: build
	bash tests/demo.sh

## kafka-demo: a standalone Kafka-protocol broker, the sensor's Kafka sink, kcat reading it
kafka-demo: build
	bash tests/kafka-demo.sh

## vmtest: the real-BPF tests on a kernel matrix under qemu (KERNELS=5.10,6.1,...).
## Every listed kernel must run; VMTEST_ALLOW_MISSING=1 accepts fewer (refused under CI).
## On the matrix (each kernel): ./tests/vmtest/smoke, ./sensor/kernel and ./tests/denyexec.
## A subset, to keep the matrix within the CI budget (the whole CI takes 29 to 43 min, near or over the
## 30 we aim for, the matrix 21 to 30 of them: 5.10 and newest run every suite in about 10 min
## under emulation, the others 3.5 to 7, two at a time, heaviest first): ./tests/tamper on 6.12 (the BPF LSM refusal,
## bpf in lsm=), 6.12-nolsm (report-only) and newest; ./tests/evasion/files,
## ./tests/evasion/net and ./tests/evasion/exec on the ends of the range, 5.10 and newest
## (-pkgs path@k1+k2). The harness prebuilds cmd/lineaged and copies bpftool into the guests.
## Once, on the host (make test): everything, including the evasion suites, the real Claude Code
## end-to-end tests, Kafka, lineage, policy, sinks, cmd, the package install (tests/packaging)
## and the import rules (tests/arch).
vmtest:
	$(GO) run ./tests/vmtest -kernels $(KERNELS)

## vmtest-arm64: the same harness on arm64 guests under qemu-system-aarch64 (apt-get install
## qemu-system-arm): Debian's cloud-arm64 kernels (KERNELS_ARM64), the tests cross-built, busybox
## and the executables the tests run from Debian's arm64 packages (PKGS_ARM64 for the packages).
## docs/kernels.md, "arm64 guests"
vmtest-arm64:
	$(GO) run ./tests/vmtest -arch arm64 -kernels $(KERNELS_ARM64) -pkgs $(PKGS_ARM64)

## vmtest-arm64-ci: the part of the arm64 guests CI runs (about 2 min): one guest, newest, with
## the smoke tests and the exec, file and network tests of sensor/kernel (VMTEST_ARM64_RUN)
vmtest-arm64-ci:
	$(GO) run ./tests/vmtest -arch arm64 -kernels newest -pkgs ./tests/vmtest/smoke,./sensor/kernel -run '$(VMTEST_ARM64_RUN)'

## servicetest: the package under a real systemd, once: a Debian guest (mmdebstrap, cached beside
## the matrix kernels) boots with systemd as pid 1 on the matrix's 6.18 kernel, installs the .deb
## and checks the unit: start, events, doctor, verify, restart, restart after a kill, removal, purge
servicetest: package
	$(GO) run ./tests/servicevm -deb $(DIST)/lineaged_$(PKG_VERSION)_$(PKG_ARCH).deb

## check: everything CI runs (after deps): lint, module tidiness, generated files, tests, kernel
## matrix, one arm64 guest, the service test
check: lint tidy-check generate-check test vmtest vmtest-arm64-ci servicetest

clean:
	rm -rf bin dist
