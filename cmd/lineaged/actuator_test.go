package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// A rule with kill-session ends the agent session that triggered it, the
// root and a daemonized member included, and nothing outside it; the
// policy.action says so, names the rule and its trigger, and is numbered in
// the one sequence.
func TestRunKillSession(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	agentPath := testutil.AgentPath(dir)
	testutil.CopyFile(t, "/bin/dash", agentPath, 0o755)
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(`rules:
  - id: kill-on-trigger
    description: the session ran the trigger
    severity: critical
    condition: kind == "process.exec" && has(agent.root_exec_id) && process.argv.exists(a, a == "lineaged-kill-trigger")
    actions: [alert, kill-session]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "lineaged.yaml")
	if err := os.WriteFile(cfgPath, []byte("policy:\n  rules: "+rules+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "events.jsonl")
	cmd := exec.Command(binary, "run", "--config", cfgPath, "--output", out)
	// Its own sequence state: seq from 1, whatever ran before.
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir())
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, &stderr, "sensor started")

	outsider := exec.Command("/bin/sleep", "1000")
	if err := outsider.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { outsider.Process.Kill(); outsider.Wait() }()

	// The agent starts a child and a daemon (setsid, reparented), then
	// runs the trigger and waits.
	childPID, daemonPID := filepath.Join(dir, "child.pid"), filepath.Join(dir, "daemon.pid")
	script := `/bin/sleep 1000 & echo $! > ` + childPID + `
(setsid /bin/sh -c 'echo $$ > ` + daemonPID + `.tmp; mv ` + daemonPID + `.tmp ` + daemonPID + `; exec /bin/sleep 1000' </dev/null >/dev/null 2>&1 &)
while [ ! -s ` + daemonPID + ` ]; do /bin/sleep 0.05; done
/bin/true lineaged-kill-trigger
read x`
	// The agent waits in the shell's builtin read on a pipe the test keeps
	// open, not on a child: a child killed first must not end the agent by
	// itself (dash would exit 137), only the kill of the agent may.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	agent := exec.Command(agentPath, "-c", script)
	agent.Stdin = stdinR
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	stdinR.Close()
	defer agent.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- agent.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("agent ended with %v, want SIGKILL; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent was not killed; stderr:\n%s", stderr.String())
	}
	for _, f := range []string{childPID, daemonPID} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 10*time.Second, "session member "+strconv.Itoa(pid)+" to die",
			func() bool { return syscall.Kill(pid, 0) != nil }, nil)
	}
	if err := outsider.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the process outside the session was killed: %v", err)
	}
	var action map[string]any
	testutil.WaitFor(t, 20*time.Second, "a policy.action", func() bool {
		action = findEvent(t, out, "policy.action")
		return action != nil
	}, stderr.String)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()

	a, _ := action["alert"].(map[string]any)
	if a["rule"] != "kill-on-trigger" || a["action"] != "kill-session" || a["result"] != "done" {
		t.Fatalf("policy.action alert = %v", a)
	}
	if k, _ := a["killed"].(float64); k < 3 {
		t.Errorf("killed %v, want the root, the child and the daemon at least", a["killed"])
	}
	// Its trigger is the exec of the trigger, in the stream before it.
	var trig map[string]any
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if seq, _ := ev["seq"].(float64); int(seq) != i+1 {
			t.Fatalf("event %d (%v) has seq %v: a gap or a duplicate", i, ev["kind"], ev["seq"])
		}
		if ev["event_id"] == a["trigger_event_id"] {
			trig = ev
		}
	}
	p, _ := trig["process"].(map[string]any)
	argv, _ := p["argv"].([]any)
	if trig["kind"] != "process.exec" || len(argv) != 2 || argv[1] != "lineaged-kill-trigger" {
		t.Errorf("trigger_event_id %v names %v", a["trigger_event_id"], trig)
	}
}
