package posture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shirou/gopsutil/v3/process"
)

// EndpointProtection requires one of a list of endpoint-protection agents
// to be running. A process is matched by its executable (the target of
// /proc/PID/exe), never by its command name, which any process can set: a
// copy of sleep renamed with prctl or exec -a to "osqueryd" does not pass.
// A name matches the executable's base name, an absolute path the whole
// path.
type EndpointProtection struct {
	// Names are executable names or absolute paths; see
	// Config.EndpointProtection.
	Names []string
}

// Name implements Check.
func (EndpointProtection) Name() string { return CheckEndpoint }

// Run implements Check.
func (e EndpointProtection) Run(ctx context.Context, root Root) Result {
	names := e.Names
	if len(names) == 0 {
		names = DefaultEndpointProtection()
	}
	ctx = root.gopsutil(ctx)
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return fail("cannot determine: listing processes: %v", err)
	}
	var found []string
	unreadable := 0
	for _, pid := range pids {
		// Not process.NewProcess: it probes the pid with a signal when the
		// proc directory is not a mount point, which is wrong for a fake
		// or relocated root.
		exe, err := (&process.Process{Pid: pid}).ExeWithContext(ctx)
		if err != nil {
			// Kernel threads have no executable (ENOENT); exited
			// processes neither. Only a refusal hides a candidate.
			if errors.Is(err, os.ErrPermission) {
				unreadable++
			}
			continue
		}
		path, deleted := strings.CutSuffix(exe, " (deleted)")
		if matchExe(names, path) {
			s := fmt.Sprintf("%s (pid %d)", path, pid)
			if deleted {
				s = fmt.Sprintf("%s (pid %d, executable replaced on disk)", path, pid)
			}
			found = append(found, s)
		}
	}
	if len(found) > 0 {
		return ok("running: %s", strings.Join(found, ", "))
	}
	if unreadable > 0 {
		return fail("cannot determine: none of %s seen, and the executable of %d processes is unreadable (permission denied)", strings.Join(names, ", "), unreadable)
	}
	return fail("none of %s running (checked the executables of %d processes)", strings.Join(names, ", "), len(pids))
}

// matchExe: an absolute entry matches the whole path, a name the base name.
func matchExe(names []string, exe string) bool {
	return slices.ContainsFunc(names, func(n string) bool {
		if filepath.IsAbs(n) {
			return filepath.Clean(n) == exe
		}
		return n == filepath.Base(exe)
	})
}
