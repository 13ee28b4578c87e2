package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// With events.ancestry: session, the real `lineaged run` writes an agent
// session's events with their ancestry ending at the session's root, and
// the session's agent.session_start (and the root's own exec) with the
// root's whole ancestry, which the cut events share.
func TestRunAncestryAtSessionRoot(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	agentPath := testutil.CopyFile(t, "/bin/dash", testutil.AgentPath(dir), 0o755)
	out := filepath.Join(dir, "events.jsonl")
	stderr, marker := runAgentScript(t, out, []string{"LINEAGED_EVENTS_ANCESTRY=session"}, agentPath, func(marker string) string {
		// A shell that runs echo: echo's ancestry is the shell, the
		// agent, then the agent's own ancestors (this test's chain).
		return "/bin/sh -c '/bin/echo " + marker + "'"
	})

	type proc struct {
		ExecID string   `json:"exec_id"`
		PID    uint32   `json:"pid"`
		Exe    string   `json:"exe"`
		Argv   []string `json:"argv"`
	}
	type ev struct {
		Kind     string `json:"kind"`
		Process  *proc  `json:"process"`
		Ancestry []proc `json:"ancestry"`
		Agent    *struct {
			RootExecID string `json:"root_exec_id"`
			Role       string `json:"role"`
		} `json:"agent"`
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rootExec, start, echo *ev
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e ev
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		switch {
		case e.Kind == "process.exec" && e.Process != nil && e.Process.Exe == agentPath:
			rootExec = &e
		case e.Kind == "agent.session_start" && e.Process != nil && e.Process.Exe == agentPath:
			start = &e
		case e.Kind == "process.exec" && e.Process != nil && strings.Join(e.Process.Argv, " ") == "/bin/echo "+marker:
			echo = &e
		}
	}
	if rootExec == nil || start == nil || echo == nil {
		t.Fatalf("events missing: root exec %v, session start %v, echo %v; stderr:\n%s", rootExec != nil, start != nil, echo != nil, stderr.String())
	}
	root := rootExec.Process.ExecID
	if echo.Agent == nil || echo.Agent.RootExecID != root {
		t.Fatalf("echo's agent %+v, want the session of %s", echo.Agent, root)
	}
	if n := len(echo.Ancestry); n != 2 || echo.Ancestry[n-1].ExecID != root {
		t.Errorf("echo's ancestry %+v: want the shell, then the root %s last", echo.Ancestry, root)
	}
	// Above the root: this test's own chain, up to pid 1, on the root's
	// events.
	for name, e := range map[string]*ev{"root's exec": rootExec, "session_start": start} {
		if n := len(e.Ancestry); n < 2 || e.Ancestry[n-1].PID != 1 {
			t.Errorf("%s: ancestry %+v, want every ancestor up to pid 1", name, e.Ancestry)
		}
	}
}

// runAgentScript runs the real `lineaged run --output out` (with env
// added), has the stand-in agent at agentPath run script(marker) with -c,
// waits for the process.exec naming the marker and stops the sensor; it
// returns the sensor's stderr and the marker.
func runAgentScript(t *testing.T, out string, env []string, agentPath string, script func(marker string) string) (*testutil.SyncBuffer, string) {
	t.Helper()
	cmd := exec.Command(binary, "run", "--output", out)
	cmd.Env = append(append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir()), env...)
	stderr := &testutil.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, stderr, "sensor started")
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	if b, err := exec.Command(agentPath, "-c", script(marker)).CombinedOutput(); err != nil {
		t.Fatalf("agent stand-in: %v: %s", err, b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !fileHasExec(t, out, marker) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	return stderr, marker
}
