//go:build linux

package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// tracefsDir is where the sensor mounts tracefs when no tracefs is
// mounted: the tamper programs attach to syscall tracepoints
// (tamperTracepoints), whose ids cilium/ebpf reads from tracefs. A host
// whose init does not mount it (no systemd) has none at boot.
const tracefsDir = "/sys/kernel/tracing"

// ensureTracefs mounts tracefs at tracefsDir unless tracefs is mounted
// there or at the older debugfs place. mounted says whether it did.
func ensureTracefs() (mounted bool, err error) {
	if checkTracefs() == nil {
		return false, nil
	}
	if err := unix.Mount("tracefs", tracefsDir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return false, fmt.Errorf("mount tracefs at %s: %w", tracefsDir, err)
	}
	if _, err := os.Stat(filepath.Join(tracefsDir, "events")); err != nil {
		return true, errors.New("tracefs mounted at " + tracefsDir + " has no events directory")
	}
	return true, nil
}
