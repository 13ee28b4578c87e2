//go:build linux

package exec

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// TestDeniedExecByPidNamespaceInit: a member makes itself the init of a
// new pid namespace (unshare --pid --fork), whose default-disposition
// signals from its own namespace are ignored, and execs a denied binary.
// On the tracepoint path the SIGKILL is forced (bpf_send_signal sends it as
// the kernel, SEND_SIG_PRIV), so the init dies of it: the deny record says
// killed and the exit says signal 9. On the LSM path the exec fails.
func TestDeniedExecByPidNamespaceInit(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs and make a pid namespace")
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare(1)")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	trueBin, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	denied := testutil.CopyFile(t, trueBin, filepath.Join(dir, "denied-in-ns"), 0o700)
	s, evs := runSensor(t, kernel.Config{DenyKeys: policy.DenyKeys([]string{denied}, filepath.EvalSymlinks)})
	hooks, _ := s.Hooks()

	// The member waits until it is one, then becomes the namespace's
	// init through unshare's fork and execs the denied file as pid 1.
	cmd := exec.Command("/bin/sh", "-c", `read x; exec unshare --pid --fork /bin/sh -c 'exec "$0"' "$0"`, denied)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: pid, StartNs: startNs(t, pid)}, Agent: sensor.AgentClaudeCode}
	if err := s.AddSessionMembers(map[uint32]sensor.SessionRef{pid: ref}); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	stdin.Close()
	cmd.Wait()

	var deny sensor.Event
	testutil.WaitFor(t, guard, "the deny record", func() bool {
		for _, ev := range evs.snapshot() {
			if ev.Deny != nil && ev.Deny.Path == denied {
				deny = ev
				return true
			}
		}
		return false
	}, nil)
	if deny.Proc.PID == pid {
		t.Fatalf("the denied exec came from the member itself (%d), not from the namespace's init", pid)
	}
	if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		t.Logf("host pid namespace %s; init of the new one is host pid %d", ns, deny.Proc.PID)
	}
	switch hooks {
	case kernel.HooksLSM:
		if deny.Deny.Action != sensor.DenyBlocked {
			t.Errorf("LSM path: action %v, want blocked", deny.Deny.Action)
		}
		return
	case kernel.HooksTracepoint:
		if deny.Deny.Action != sensor.DenyKilled {
			t.Fatalf("tracepoint path: action %v, want killed", deny.Deny.Action)
		}
	}
	// The init must have died of the SIGKILL, not run the denied image.
	testutil.WaitFor(t, guard, "the namespace init's exit", func() bool {
		for _, ev := range evs.snapshot() {
			if ev.Exit != nil && ev.Proc == deny.Proc {
				if ev.Exit.Signal != 9 {
					t.Fatalf("the pid-namespace init exited with code %d signal %d, want SIGKILL", ev.Exit.Code, ev.Exit.Signal)
				}
				return true
			}
		}
		return false
	}, nil)
}
