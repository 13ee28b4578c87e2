//go:build linux

package exec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/sensor/procfs"
	"github.com/lineaged/lineaged/tests/testutil"
)

// nsLastPid is the init pid namespace's last allocated pid: writing n - 1
// makes the next fork get n if n is free (CAP_CHECKPOINT_RESTORE). The maps
// are keyed on init-namespace pids, so this is the reuse that matters.
const nsLastPid = "/proc/sys/kernel/ns_last_pid"

// forkMu serialises the test's forks on a chosen pid.
var forkMu sync.Mutex

// startOnPid starts cmd on pid (free, just reaped), retrying while other
// processes of the host take it first. The caller owns the started process.
func startOnPid(t *testing.T, pid int, newCmd func() *exec.Cmd) *exec.Cmd {
	t.Helper()
	forkMu.Lock()
	defer forkMu.Unlock()
	for try := 0; try < 500; try++ {
		cmd := newCmd()
		if err := os.WriteFile(nsLastPid, []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot choose the next pid: %v", err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if cmd.Process.Pid == pid {
			return cmd
		}
		cmd.Process.Kill()
		cmd.Wait()
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Skipf("pid %d taken by another process of the host", pid)
		}
	}
	t.Skipf("pid %d: never allocated in 500 tries", pid)
	return nil
}

// TestSeedRaceThenPidReuse: the agent's child exits between the /proc scan
// of the seed and the insert of its entry, and an unrelated process (the
// test's own, outside every session) gets its pid before the insert. The
// seed must not make that process a member: killing the session leaves it
// alive, and its exec is not reported (sessions scope: members only).
func TestSeedRaceThenPidReuse(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs and choose pids")
	home := t.TempDir()
	// dash, not /bin/sh: where /bin/sh is busybox (the kernel matrix
	// guests) the copy run as "claude" finds no applet of that name.
	agentPath := testutil.CopyFile(t, "/bin/dash", testutil.AgentPath(home), 0o755)
	// The stand-in agent: its child sleeps; the agent reaps it, then waits on stdin.
	ag := exec.Command(agentPath, "-c", `sleep 1000 & echo $!; wait; read x`)
	ag.Args[0] = "claude"
	stdin, err := ag.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out testutil.SyncBuffer
	ag.Stdout = &out
	if err := ag.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); ag.Process.Kill(); ag.Wait() })
	testutil.WaitFor(t, guard, "child pid", func() bool { return strings.Contains(out.String(), "\n") }, out.String)
	child, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("child pid %q: %v", out.String(), err)
	}

	s, evs := runSensor(t, kernel.Config{Recognisers: agent.DefaultTable().Kernel()})

	// The outsider that will hold the child's pid: a shell of the test
	// (no member) that execs a marker once told to.
	marker := filepath.Join(t.TempDir(), "outsider-marker")
	testutil.CopyFile(t, "/bin/true", marker, 0o755)
	var outsider *exec.Cmd
	var outsiderIn io.WriteCloser
	var root sensor.ProcKey
	seeded, err := agent.DefaultTable().Seed("/proc", func(m map[sensor.ProcKey]sensor.SessionRef) error {
		if outsider == nil {
			// The race, made certain: the child exits after the
			// scan and before the insert, and its pid is reused.
			var inScan bool
			for k, ref := range m {
				if int(k.PID) == child {
					inScan, root = true, ref.Root
				}
			}
			if !inScan {
				return fmt.Errorf("the scan missed the agent's child %d: %v", child, m)
			}
			syscall.Kill(child, syscall.SIGKILL)
			testutil.WaitFor(t, guard, "the child reaped", func() bool {
				return errors.Is(syscall.Kill(child, 0), syscall.ESRCH)
			}, nil)
			outsider = startOnPid(t, child, func() *exec.Cmd {
				c := exec.Command("/bin/sh", "-c", `read x; exec "$0"`, marker)
				outsiderIn, _ = c.StdinPipe()
				return c
			})
			t.Cleanup(func() { outsider.Process.Kill(); outsider.Wait() })
		}
		return s.AddSessionProcs(m)
	})
	if err != nil {
		t.Fatalf("Seed: %v", err)
	}
	if outsider == nil {
		t.Fatal("the seed never inserted")
	}
	if ref, ok := seeded[uint32(ag.Process.Pid)]; !ok || ref.Root.PID != uint32(ag.Process.Pid) {
		t.Fatalf("the seed did not find the stand-in agent %d: %v", ag.Process.Pid, seeded)
	}
	p, err := procfs.Read("/proc", uint32(child))
	if err != nil {
		t.Fatal(err)
	}
	outsiderKey := sensor.ProcKey{PID: uint32(child), StartNs: p.StartTicks * procfs.TicksToNs}

	// Ending the session must spare the outsider.
	if err := s.KillProcess("/proc", outsiderKey); !errors.Is(err, kernel.ErrNotInSession) {
		t.Errorf("KillProcess(outsider on the dead member's pid %d): %v, want ErrNotInSession", child, err)
	}
	if _, err := s.KillSession("/proc", root); err != nil {
		t.Errorf("KillSession: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := syscall.Kill(child, 0); err != nil {
		t.Fatalf("the outsider on pid %d was killed with the session: %v", child, err)
	}

	// Its exec must not be reported as a member's.
	io.WriteString(outsiderIn, "go\n")
	outsiderIn.Close()
	if err := outsider.Wait(); err != nil {
		t.Fatalf("outsider: %v", err)
	}
	// A member's exec after it is the marker that the outsider's exec
	// record, if any, has been read.
	after := exec.Command(agentPath, "-c", "exit 0")
	after.Args[0] = "claude"
	if err := after.Run(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, guard, "the later agent's exec record", func() bool {
		return len(evs.execsOf(uint32(after.Process.Pid))) > 0
	}, func() string { return fmt.Sprintf("%d records: %v", len(evs.snapshot()), kinds(evs.snapshot())) })
	for _, ev := range evs.execsOf(uint32(child)) {
		if ev.Session.InSession() {
			t.Errorf("the outsider on the dead member's pid %d was reported as a member of %v: exec %q", child, ev.Session.Root, ev.Exec.Exe)
		}
	}
}

func kinds(evs []sensor.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%v:%d:%v ", ev.Kind, ev.Proc.PID, ev.Session.Root.PID)
	}
	return b.String()
}
