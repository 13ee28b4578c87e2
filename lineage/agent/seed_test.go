package agent

import (
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

func TestSessionsFromProcs(t *testing.T) {
	agentKey := sensor.ProcKey{PID: 10, StartNs: 1_000_000_000}
	inner := sensor.ProcKey{PID: 30, StartNs: 3_000_000_000}
	procs := []*procfs.Proc{
		{Key: sensor.ProcKey{PID: 1}, PPID: 0, Exe: "/usr/lib/systemd/systemd"},
		{Key: sensor.ProcKey{PID: 5, StartNs: 1}, PPID: 1, Exe: "/usr/bin/bash"},
		{Key: agentKey, PPID: 5, Exe: "/home/u/.local/share/claude/versions/2.1.332", Argv: []string{"claude"}},
		{Key: sensor.ProcKey{PID: 20, StartNs: 2_000_000_000}, PPID: 10, Exe: "/usr/bin/bash"},
		{Key: sensor.ProcKey{PID: 21, StartNs: 2_100_000_000}, PPID: 20, Exe: "/usr/bin/sleep"},
		{Key: inner, PPID: 21, Exe: "/usr/bin/node", Argv: []string{"node", "/x/node_modules/@openai/codex/bin/codex.js"}},
		{Key: sensor.ProcKey{PID: 31, StartNs: 3_100_000_000}, PPID: 30, Exe: "/usr/bin/git"},
		// The agent's binary as its embedded grep: a member, not a root.
		{Key: sensor.ProcKey{PID: 22, StartNs: 2_200_000_000}, PPID: 20, Exe: "/home/u/.local/share/claude/versions/2.1.332", Argv: []string{"ugrep", "x"}},
		{Key: sensor.ProcKey{PID: 40, StartNs: 5}, PPID: 1, Exe: "/usr/bin/sshd"},
		{Key: sensor.ProcKey{PID: 50}, PPID: 999, Exe: "/usr/bin/orphan"}, // parent not in the scan
	}
	got := DefaultTable().SessionsFromProcs(procs)
	claude := sensor.SessionRef{Root: agentKey, Agent: sensor.AgentClaudeCode}
	codex := sensor.SessionRef{Root: inner, Agent: sensor.AgentCodex}
	want := map[uint32]sensor.SessionRef{10: claude, 20: claude, 21: claude, 22: claude, 30: codex, 31: codex}
	if len(got) != len(want) {
		t.Errorf("got %d members, want %d: %+v", len(got), len(want), got)
	}
	for pid, ref := range want {
		if got[pid] != ref {
			t.Errorf("pid %d: %+v, want %+v", pid, got[pid], ref)
		}
	}
}

func TestSessionsFromProcsCycleTerminates(t *testing.T) {
	// A pid-reuse race can make a scan's parent links loop.
	procs := []*procfs.Proc{{Key: sensor.ProcKey{PID: 2}, PPID: 3}, {Key: sensor.ProcKey{PID: 3}, PPID: 2}}
	if got := DefaultTable().SessionsFromProcs(procs); len(got) != 0 {
		t.Errorf("got %+v", got)
	}
}

func TestSessionsFromProcsReusedParentPid(t *testing.T) {
	// pid 10 was an agent's child's parent once; it exited and an agent
	// got the pid after the child started: the child is no member.
	procs := []*procfs.Proc{
		{Key: sensor.ProcKey{PID: 10, StartNs: 9_000_000_000}, PPID: 1, Exe: "/home/u/.local/share/claude/versions/2.1.332", Argv: []string{"claude"}},
		{Key: sensor.ProcKey{PID: 20, StartNs: 2_000_000_000}, PPID: 10, Exe: "/usr/bin/sleep"},
	}
	got := DefaultTable().SessionsFromProcs(procs)
	if _, ok := got[20]; ok || len(got) != 1 {
		t.Errorf("got %+v, want only pid 10", got)
	}
}
