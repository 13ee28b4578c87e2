package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/sensor/procfs"
)

type fakeHookFacts struct {
	procs map[uint32]*procfs.Proc
	env   map[uint32]map[string]string
}

func (f *fakeHookFacts) Proc(pid uint32) (*procfs.Proc, error) {
	if p, ok := f.procs[pid]; ok {
		return p, nil
	}
	return nil, errors.New("no such process")
}

func (f *fakeHookFacts) Env(pid uint32, key string) (string, bool, error) {
	e, ok := f.env[pid]
	if !ok {
		return "", false, errors.New("no such process")
	}
	v, ok := e[key]
	return v, ok, nil
}

const (
	hookSess  = "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77"
	otherSess = "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"
)

// A session: claude (100) started a hook shell (110) running the hook
// (111), a hook exec'd in place by its shell (120), and a Bash tool (130)
// whose command runs the hook binary itself (131), forging its env.
func hookWorld() *fakeHookFacts {
	harness := func(sess string) map[string]string {
		return map[string]string{"CLAUDE_PID": "100", "CLAUDE_CODE_SESSION_ID": sess, "AI_AGENT": "claude-code_2-1-332_harness"}
	}
	f := &fakeHookFacts{procs: map[uint32]*procfs.Proc{}, env: map[uint32]map[string]string{}}
	add := func(pid, ppid uint32, env map[string]string, argv ...string) {
		f.procs[pid] = &procfs.Proc{PID: pid, PPID: ppid, Argv: argv}
		f.env[pid] = env
	}
	add(100, 1, map[string]string{}, "claude", "-p", "x")
	add(110, 100, harness(hookSess), "/bin/sh", "-c", "'/usr/bin/lineaged' hook")
	add(111, 110, harness(hookSess), "/usr/bin/lineaged", "hook")
	add(120, 100, harness(hookSess), "/usr/bin/lineaged", "hook")
	tool := map[string]string{"CLAUDE_PID": "100", "CLAUDE_CODE_SESSION_ID": hookSess, "AI_AGENT": "claude-code_2-1-332_agent"}
	add(130, 100, tool, "/bin/bash", "-c", "source /root/.claude/shell-snapshots/snapshot-bash-1-x.sh && eval 'lineaged hook' < /dev/null && pwd -P >| /tmp/claude-1-cwd")
	add(131, 130, harness(hookSess), "/usr/bin/lineaged", "hook")
	// A shell the tool started (not a child of the agent).
	add(140, 130, harness(hookSess), "/bin/sh", "-c", "lineaged hook")
	add(141, 140, harness(hookSess), "/usr/bin/lineaged", "hook")
	// A hook of this agent whose env names another agent / session.
	add(150, 100, map[string]string{"CLAUDE_PID": "999", "CLAUDE_CODE_SESSION_ID": hookSess}, "/usr/bin/lineaged", "hook")
	add(160, 100, harness(otherSess), "/usr/bin/lineaged", "hook")
	// A direct child given `sh -c` shape but the tool's AI_AGENT.
	add(170, 100, tool, "/bin/sh", "-c", "/usr/bin/lineaged hook")
	add(171, 170, harness(hookSess), "/usr/bin/lineaged", "hook")
	return f
}

func TestVerifyHookCaller(t *testing.T) {
	f := hookWorld()
	for _, c := range []struct {
		pid     uint32
		session string
		refuse  string // "" admits
	}{
		{111, hookSess, ""},
		{111, strings.ToUpper(hookSess), ""},
		{120, hookSess, ""},
		{131, hookSess, "not started by the agent"},
		{141, hookSess, "not started by the agent"},
		{150, hookSess, "CLAUDE_PID"},
		{160, hookSess, "belongs to session " + otherSess},
		{111, otherSess, "not to the session " + otherSess},
		{171, hookSess, "not one the agent started for a hook"},
		{999, hookSess, "no such process"},
	} {
		err := verifyHookCaller(f, c.pid, 100, c.session)
		switch {
		case c.refuse == "" && err != nil:
			t.Errorf("pid %d (%s): refused: %v", c.pid, c.session, err)
		case c.refuse != "" && (err == nil || !strings.Contains(err.Error(), c.refuse)):
			t.Errorf("pid %d (%s): got %v, want refusal naming %q", c.pid, c.session, err, c.refuse)
		}
	}
}
