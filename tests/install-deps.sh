#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the benchmarks need on a
# fresh machine (as root). Idempotent: installs only what is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(
	clang llvm libbpf-dev bpftool   # make generate (BPF objects)
	kcat python3-kafka              # third-party Kafka consumers in tests
	qemu-system-x86 busybox-static  # make vmtest (kernel matrix)
	qemu-system-arm                 # make vmtest-arm64 (arm64 guests)
	qemu-user                       # tests/packaging: the arm64 package's binary run on an arm64 CPU
	npm                             # installs the pinned Claude Code for end-to-end tests
	rpm systemd                     # the package test: rpm -qlp, systemd-analyze verify
	mmdebstrap                      # make servicetest: the systemd guest's root file system
	chromium                        # renders the sessions view's HTML page in its test
)
need=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
# npm may come with Node.js from elsewhere: only ask apt for it when missing.
if command -v npm >/dev/null 2>&1; then
	need=("${need[@]/npm/}")
fi
need=($(printf '%s\n' "${need[@]}" | sed '/^$/d'))
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
