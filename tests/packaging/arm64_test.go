//go:build linux

package packaging

import (
	"debug/elf"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `make package ARCH=arm64` on this machine makes the arm64 .deb and
// .rpm: the package metadata names arm64 (aarch64 for rpm), both binaries
// in them are arm64 executables, the host's bin/ is left alone, and the
// sensor runs on an arm64 CPU (under qemu-user, which make deps installs).
func TestArm64Packages(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "make", "rpm", "qemu-aarch64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (make deps installs it): %v", tool, err)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	// No BIN: the cross-built binaries go to their own place under DIST's
	// bin, never over a host binary.
	out := run(t, root, nil, "make", "package", "ARCH=arm64", "PKG_VERSION=0.0.3", "DIST="+dist,
		"BIN="+filepath.Join(dist, "bin", "linux_arm64", "lineaged"))
	deb := filepath.Join(dist, "lineaged_0.0.3_arm64.deb")
	rpm := filepath.Join(dist, "lineaged-0.0.3-1.aarch64.rpm")
	if got := strings.TrimSpace(run(t, "", nil, "dpkg-deb", "--field", deb, "Architecture")); got != "arm64" {
		t.Errorf("%s: Architecture %q, want arm64\n%s", deb, got, out)
	}
	if got := strings.TrimSpace(run(t, "", nil, "rpm", "-qp", "--queryformat", "%{ARCH}", rpm)); got != "aarch64" {
		t.Errorf("%s: ARCH %q, want aarch64", rpm, got)
	}

	tree := t.TempDir()
	run(t, "", nil, "dpkg-deb", "-x", deb, tree)
	for _, bin := range []string{"usr/bin/lineaged", "usr/bin/lineaged-hook"} {
		f, err := elf.Open(filepath.Join(tree, bin))
		if err != nil {
			t.Fatalf("%s in %s: %v", bin, deb, err)
		}
		if f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
			t.Errorf("%s in %s: %v %v, want an arm64 executable", bin, deb, f.Machine, f.Type)
		}
		f.Close()
	}
	// It runs on an arm64 CPU: the version it was built with, and its
	// refusal of a bad flag (the command-line parsing, not only the start).
	v := run(t, "", nil, "qemu-aarch64", filepath.Join(tree, "usr/bin/lineaged"), "version")
	if !strings.HasPrefix(v, "lineaged ") {
		t.Errorf("arm64 lineaged version: %q", v)
	}
	bad := exec.Command("qemu-aarch64", filepath.Join(tree, "usr/bin/lineaged"), "run", "--no-such-flag")
	if b, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(b), "no-such-flag") {
		t.Errorf("arm64 lineaged run --no-such-flag: %v: %s", err, b)
	}
}
