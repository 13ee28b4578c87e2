//go:build linux

package kernel

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(t *testing.T, pid uint32) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

func procKey(t *testing.T, pid uint32) sensor.ProcKey {
	t.Helper()
	p, err := procfs.Read("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	return p.Key
}

// startOutsider runs a process outside every session, killed at cleanup.
func startOutsider(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command("/bin/sleep", "1000")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Process.Kill()
		c.Wait()
	})
	return c
}

// KillSession kills every member of the session the kernel holds: the
// root, a child, and a grandchild that daemonized (double fork and setsid,
// reparented away from the session's tree); and nothing else: not a
// process outside, not another agent session's members, not the test.
func TestRootKillSessionKillsMembersOnly(t *testing.T) {
	h := startSensor(t, Config{})
	agent := startAgentShell(t, fakeAgentPath(t))
	outsider := startOutsider(t)
	other := startAgentShell(t, fakeAgentPath(t)) // another session
	other.send(t, `/bin/sleep 1000 & echo $!`)
	otherChild, err := strconv.ParseUint(other.readLine(t), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscallKill(uint32(otherChild)) })

	agent.send(t, `/bin/sleep 1000 >/dev/null & echo $!`)
	child, err := strconv.ParseUint(agent.readLine(t), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	// The subshell forks the daemon and exits: the daemon is reparented
	// and leads a session of its own.
	agent.send(t, `(setsid /bin/sh -c 'echo $$; exec /bin/sleep 1000 >/dev/null 2>&1' </dev/null &)`)
	daemon, err := strconv.ParseUint(agent.readLine(t), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscallKill(uint32(daemon)) })
	m := marker(t)
	agent.send(t, "/bin/true "+m)
	h.untilExecArg(m)

	p, err := procfs.Read("/proc", uint32(daemon))
	if err != nil {
		t.Fatal(err)
	}
	if p.PPID == agent.pid() {
		t.Fatalf("the daemon %d is still the agent's child", daemon)
	}
	root := procKey(t, agent.pid())
	members, err := h.s.SessionMembers(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []uint32{agent.pid(), uint32(child), uint32(daemon)} {
		if !slices.Contains(members, pid) {
			t.Errorf("session members %v lack %d", members, pid)
		}
	}
	for _, pid := range []uint32{uint32(outsider.Process.Pid), other.pid(), uint32(otherChild), uint32(os.Getpid())} {
		if slices.Contains(members, pid) {
			t.Errorf("session members %v include outsider %d", members, pid)
		}
	}

	killed, err := h.s.KillSession("/proc", root)
	if err != nil {
		t.Fatalf("KillSession: %v", err)
	}
	// A member may end on its own between the listing and the kill (the
	// subshell that forked the daemon exits as it likes): it is not
	// counted as killed, so the count is bounded, not exact.
	if killed < 3 || killed > len(members) {
		t.Errorf("killed %d, members %v", killed, members)
	}
	for _, pid := range []uint32{agent.pid(), uint32(child), uint32(daemon)} {
		deadline := time.Now().Add(guard)
		for alive(t, pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if alive(t, pid) {
			t.Errorf("session member %d survived", pid)
		}
	}
	for _, pid := range []uint32{uint32(outsider.Process.Pid), other.pid(), uint32(otherChild), uint32(os.Getpid())} {
		if !alive(t, pid) {
			t.Errorf("process %d outside the session was killed", pid)
		}
	}
	// The session is empty now; a second kill finds nobody.
	testutilWait(t, func() bool { ms, _ := h.s.SessionMembers(root); return len(ms) == 0 })
	if n, err := h.s.KillSession("/proc", root); n != 0 || err != nil {
		t.Errorf("second KillSession: %d, %v", n, err)
	}
}

// KillProcess refuses a pid whose start time is not the one named (the pid
// was reused) and a process outside every session, kills the right one,
// and reports a gone one as gone.
func TestRootKillProcessChecksStartTime(t *testing.T) {
	h := startSensor(t, Config{})
	outsider := startOutsider(t)
	if err := h.s.KillProcess("/proc", procKey(t, uint32(outsider.Process.Pid))); !errors.Is(err, ErrNotInSession) {
		t.Errorf("killing a process outside every session: %v, want ErrNotInSession", err)
	}
	agent := startAgentShell(t, fakeAgentPath(t))
	agent.send(t, `/bin/sleep 1000 >/dev/null & echo $!`)
	cpid, err := strconv.ParseUint(agent.readLine(t), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscallKill(uint32(cpid)) })
	pid := uint32(cpid)
	key := procKey(t, pid)
	for _, wrong := range []uint64{key.StartNs + procfs.TicksToNs, key.StartNs - procfs.TicksToNs} {
		err := h.s.KillProcess("/proc", sensor.ProcKey{PID: pid, StartNs: wrong})
		if !errors.Is(err, ErrNotSameProcess) {
			t.Errorf("start %d (real %d): %v, want ErrNotSameProcess", wrong, key.StartNs, err)
		}
	}
	// A SIGKILL sent by mistake would have landed by now.
	time.Sleep(20 * time.Millisecond)
	if !alive(t, pid) {
		t.Fatal("a process with another start time was killed")
	}
	if err := h.s.KillProcess("/proc", key); err != nil {
		t.Fatalf("KillProcess: %v", err)
	}
	// The agent shell reaps it and reports how it ended.
	agent.send(t, `wait `+strconv.FormatUint(cpid, 10)+`; echo $?`)
	if st := agent.readLine(t); st != "137" {
		t.Errorf("process ended with status %s, want 137 (SIGKILL)", st)
	}
	if err := h.s.KillProcess("/proc", key); !errors.Is(err, procfs.ErrGone) {
		t.Errorf("killing it again: %v, want procfs.ErrGone", err)
	}
	if !alive(t, agent.pid()) || !alive(t, uint32(outsider.Process.Pid)) {
		t.Error("KillProcess killed another process than the one named")
	}
}

func syscallKill(pid uint32) {
	if p, err := os.FindProcess(int(pid)); err == nil {
		p.Kill()
	}
}

func testutilWait(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(guard); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met")
}
