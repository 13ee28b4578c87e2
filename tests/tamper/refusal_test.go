//go:build linux

package tamper

import (
	"os"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// lsmList is the kernel's list of active LSMs.
const lsmList = "/sys/kernel/security/lsm"

// tamperRefused says whether the sensor refuses tampering (the BPF LSM path,
// hooks "lsm") or only reports it (hooks "tracepoint"), from what the
// sensor itself said (Sensor.TamperHooks). In a kernel matrix guest whose
// active LSMs include bpf the refusal path is required: the report-only
// path there is a regression, not a choice, and fails the test. The path
// taken is logged, so the matrix output shows which one each guest ran.
func tamperRefused(t *testing.T, hooks, why string) bool {
	t.Helper()
	b, err := os.ReadFile(lsmList)
	active := strings.TrimSpace(string(b))
	bpfActive := err == nil && hasWord(active, "bpf")
	t.Logf("tamper hooks: %s %s (active LSMs: %q)", hooks, why, active)
	switch {
	case hooks == kernel.HooksLSM && !bpfActive:
		t.Fatalf("tamper hooks %q although bpf is not an active LSM (%q, %v)", hooks, active, err)
	case hooks != kernel.HooksLSM && bpfActive && testutil.InVMTest():
		t.Fatalf("tampering only reported (%s: %s) although bpf is an active LSM in this guest (%s): want it refused", hooks, why, active)
	}
	return hooks == kernel.HooksLSM
}

func hasWord(list, w string) bool {
	for _, f := range strings.Split(list, ",") {
		if f == w {
			return true
		}
	}
	return false
}
