package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Environment the kernel matrix guests (tests/vmtest) run the test binaries
// with. The guests have no Go toolchain, so the harness builds what the
// tests would build on the host and packs it into the initramfs.
const (
	// EnvVMTest is set (to the guest's BPF object directory) in every
	// kernel matrix guest.
	EnvVMTest = "VMTEST_BPF_OBJECTS"
	// EnvLineagedBinary names a prebuilt cmd/lineaged to run instead of
	// building one with go build.
	EnvLineagedBinary = "LINEAGED_TEST_BINARY"
)

// InVMTest reports whether the test runs in a kernel matrix guest.
func InVMTest() bool { return os.Getenv(EnvVMTest) != "" }

// LineagedBinary returns a cmd/lineaged binary: the one named by
// $LINEAGED_TEST_BINARY when set (the kernel matrix prebuilds it on the
// host), else one built with go build into the test's temporary directory. In a matrix
// guest the variable must be set: there is no toolchain to fall back on.
func LineagedBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(EnvLineagedBinary); p != "" {
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			tb.Fatalf("$%s=%s: not an executable file (%v)", EnvLineagedBinary, p, err)
		}
		return p
	}
	if InVMTest() {
		tb.Fatalf("kernel matrix guest without $%s: the harness must prebuild cmd/lineaged (no Go toolchain in the guest)", EnvLineagedBinary)
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	out := filepath.Join(tb.TempDir(), "lineaged")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/lineaged")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/lineaged: %v\n%s", err, b)
	}
	return out
}

// Bpftool returns the path of bpftool. Where it is missing the test is
// skipped, naming it, except in a kernel matrix guest: the harness copies
// it in (-host-bins), so its absence there is a broken run, not a skip.
func Bpftool(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("bpftool")
	if err == nil {
		return p
	}
	if InVMTest() {
		tb.Fatalf("bpftool missing in the kernel matrix guest (tests/vmtest copies /usr/sbin/bpftool with -host-bins): %v", err)
	}
	tb.Skipf("bpftool not installed: %v", err)
	return ""
}
