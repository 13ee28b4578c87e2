//go:build linux

package kernel

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
	"github.com/lineaged/lineaged/tests/testutil"
)

// procState is the state letter of /proc/<pid>/stat ("" when gone).
func procState(pid uint32) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// With HoldExeFlags, a member's memfd exec is stopped before the image
// runs, its record says ExecHeld and OnHeld sees it; the process runs on
// once continued through OpenHeld. With the mask 0 the same exec is
// neither stopped nor flagged.
func TestRootHoldStopsMemberAtExec(t *testing.T) {
	for _, hold := range []bool{true, false} {
		t.Run(fmt.Sprintf("hold=%t", hold), func(t *testing.T) {
			held := make(chan sensor.Event, 16)
			cfg := Config{}
			if hold {
				cfg.HoldExeFlags = sensor.ExecExePseudo
				cfg.OnHeld = func(ev sensor.Event) { held <- ev }
			}
			h := startSensor(t, cfg)
			m := marker(t)
			cmd, in, stderr := startExeHelper(t, "memfd", trueBinary(t), t.TempDir(), m)
			pid := uint32(cmd.Process.Pid)
			key := goAsMember(t, h, cmd, in)
			if hold {
				var ev sensor.Event
				select {
				case ev = <-held:
				case <-time.After(guard):
					t.Fatalf("no held exec (helper: %s)", stderr)
				}
				if ev.Proc != key || ev.Exec.Flags&sensor.ExecHeld == 0 {
					t.Fatalf("held exec of %+v flags %#x, want %+v with ExecHeld", ev.Proc, ev.Exec.Flags, key)
				}
				testutil.WaitFor(t, guard, "the member stopped", func() bool { return procState(pid) == "T" },
					func() string { return procState(pid) })
				p, err := OpenHeld("/proc", key)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				if err := p.Continue(); err != nil {
					t.Fatal(err)
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("memfd true: %v (helper: %s)", err, stderr)
			}
			x, _ := h.untilExecArg(m + "-memfd")
			if got := x.Exec.Flags&sensor.ExecHeld != 0; got != hold {
				t.Errorf("exec flags %#x: held %v, want %v", x.Exec.Flags, got, hold)
			}
		})
	}
}

// With HoldUnseen, a member's exec of an image on disk is held until the
// reader has judged it; once MarkSeen registered the image, its next exec
// is not held. OnHeld here continues what it is given and marks it seen.
func TestRootHoldUnseenUntilMarkedSeen(t *testing.T) {
	var h *harness
	cfg := Config{HoldUnseen: true, OnHeld: func(ev sensor.Event) {
		go func() {
			if p, err := OpenHeld("/proc", ev.Proc); err == nil {
				if err := h.s.MarkSeen(ev.Exec.Binary); err != nil {
					t.Errorf("MarkSeen: %v", err)
				}
				p.Continue()
				p.Close()
			}
		}()
	}}
	h = startSensor(t, cfg)
	bin := testutil.CopyFile(t, trueBinary(t), filepath.Join(t.TempDir(), "unseen-true"), 0o755)
	m := marker(t)
	cmd, in, stderr := startExeHelper(t, "twice", bin, t.TempDir(), m)
	goAsMember(t, h, cmd, in)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v (%s)", err, stderr)
	}
	first, _ := h.untilExecArg(m + "-1")
	second, _ := h.untilExecArg(m + "-2")
	if first.Exec.Flags&sensor.ExecHeld == 0 || second.Exec.Flags&sensor.ExecHeld != 0 {
		t.Errorf("held: first %v, second %v; want the first only",
			first.Exec.Flags&sensor.ExecHeld != 0, second.Exec.Flags&sensor.ExecHeld != 0)
	}
}

// goAsMember puts the helper cmd in a session of its own, as its root, and
// lets it go; it returns the helper's key.
func goAsMember(t *testing.T, h *harness, cmd *exec.Cmd, in io.WriteCloser) sensor.ProcKey {
	t.Helper()
	pid := uint32(cmd.Process.Pid)
	start, err := startTicks("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	key := sensor.ProcKey{PID: pid, StartNs: start * procfs.TicksToNs}
	if err := h.s.AddSessionMembers(map[uint32]sensor.SessionRef{pid: {Root: key, Agent: sensor.AgentClaudeCode}}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "go\n")
	in.Close()
	return key
}

// OpenHeld refuses a pid whose start time is not the exec's: it is
// another process, not to be signalled.
func TestRootOpenHeldChecksStartTime(t *testing.T) {
	testutil.RequireRoot(t, "to open pidfds")
	pid := uint32(os.Getpid())
	start, err := startTicks("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenHeld("/proc", sensor.ProcKey{PID: pid, StartNs: (start + 1) * procfs.TicksToNs}); err == nil {
		t.Fatal("OpenHeld accepted another start time")
	}
	p, err := OpenHeld("/proc", sensor.ProcKey{PID: pid, StartNs: start * procfs.TicksToNs})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

// The hold is a load-time setting: a pinned object loaded without it (or
// with another mask) is not reused, and one loaded before the option
// existed is (no hold, same version).
func TestPinVersionHasTheHold(t *testing.T) {
	base := Config{SessionMapSize: 1, RingBufferSize: 4096}
	memfd, deleted := base, base
	memfd.HoldExeFlags = sensor.ExecExePseudo
	deleted.HoldExeFlags = sensor.ExecExeDeleted
	unseen := base
	unseen.HoldUnseen = true
	if pinVersion(base) == pinVersion(unseen) {
		t.Error("the hold of unseen images does not change the pin version")
	}
	if pinVersion(base) == pinVersion(memfd) || pinVersion(memfd) == pinVersion(deleted) {
		t.Error("the hold mask does not change the pin version")
	}
	if pinVersion(base) != pinVersion(Config{SessionMapSize: 1, RingBufferSize: 4096}) {
		t.Error("the pin version is not stable")
	}
}

// A hold with nothing to continue the stopped processes is refused, as is
// a mask naming other flags.
func TestHoldConfigRefused(t *testing.T) {
	if _, err := (Config{HoldUnseen: true}).withDefaults(); err == nil || !strings.Contains(err.Error(), "OnHeld") {
		t.Errorf("the hold of unseen images without OnHeld: %v, want refused", err)
	}
	if _, err := (Config{HoldExeFlags: sensor.ExecExePseudo}).withDefaults(); err == nil || !strings.Contains(err.Error(), "OnHeld") {
		t.Errorf("a hold without OnHeld: %v, want refused", err)
	}
	if _, err := (Config{HoldExeFlags: sensor.ExecArgvTruncated, OnHeld: func(sensor.Event) {}}).withDefaults(); err == nil {
		t.Error("a hold on argv truncation accepted")
	}
	if _, err := (Config{HoldExeFlags: sensor.ExecExePseudo | sensor.ExecExeDeleted, OnHeld: func(sensor.Event) {}}).withDefaults(); err != nil {
		t.Errorf("memfd and deleted: %v", err)
	}
}
