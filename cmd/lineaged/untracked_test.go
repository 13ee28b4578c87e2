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

// With a sessions map too small for an agent's children, a child that did
// not fit is a process.fork with "untracked": true in the agent's session
// (fork events are otherwise not emitted), its exec is not reported, and
// the sensor.loss events of where "sessions" and the metric
// lineaged_sensor_sessions_full_total count exactly the untracked forks.
func TestRunUntrackedForkInOutput(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	// The two-entry map is the host's: an agent another test package
	// starts meanwhile (a stand-in at the same path) takes its slots too.
	// Such a run says nothing; it is run again.
	var r untrackedRun
	for attempt := 1; ; attempt++ {
		r = runUntracked(t)
		if r.foreign == 0 {
			break
		}
		if attempt == 3 {
			t.Fatalf("every run shared the sessions map with another agent (%d sessions of others in the last)", r.foreign)
		}
		t.Logf("run %d: %d sessions of other agents shared the map; again", attempt, r.foreign)
	}
	evs, root, full, stderr := r.evs, r.root, r.full, r.stderr
	if root.Process.ExecID == "" {
		t.Fatalf("no process.exec of the agent stand-in; stderr:\n%s", stderr)
	}
	untracked := map[uint32]bool{}
	for _, e := range evs {
		switch {
		case e.Untracked != nil:
			if e.Kind != "process.fork" || !*e.Untracked {
				t.Errorf("%s with untracked %v", e.Kind, *e.Untracked)
				continue
			}
			if e.Process.PPID != root.Process.PID || e.Agent == nil || e.Agent.RootExecID != root.Process.ExecID {
				t.Errorf("untracked fork of pid %d (ppid %d, agent %+v) is not the agent's child in its session %s",
					e.Process.PID, e.Process.PPID, e.Agent, root.Process.ExecID)
			}
			untracked[e.Process.PID] = true
		case e.Kind == "process.fork":
			t.Errorf("process.fork of pid %d without untracked: fork events are off", e.Process.PID)
		case e.Kind == "sensor.loss" && e.Loss != nil && e.Loss.Where == "sessions" && e.Loss.Of != "fork":
			t.Errorf("sessions loss of %q, want fork", e.Loss.Of)
		}
	}
	if len(untracked) == 0 {
		t.Fatalf("no untracked process.fork; stderr:\n%s", stderr)
	}
	if n, lost := untrackedCounts(evs); lost != uint64(n) || full != float64(n) {
		t.Errorf("sensor.loss counts %d sessions losses, lineaged_sensor_sessions_full_total %v, %d forks say untracked", lost, full, n)
	}
	// In the default scope an untracked child's own records are not sent.
	for _, e := range evs {
		if e.Kind == "process.exec" && untracked[e.Process.PID] {
			t.Errorf("process.exec of the untracked child %d: %v", e.Process.PID, e.Process.Argv)
		}
	}
}

// untrackedEvent is what TestRunUntrackedForkInOutput reads of an event.
type untrackedEvent struct {
	Kind      string `json:"kind"`
	Untracked *bool  `json:"untracked"`
	Process   struct {
		ExecID string   `json:"exec_id"`
		PID    uint32   `json:"pid"`
		PPID   uint32   `json:"ppid"`
		Exe    string   `json:"exe"`
		Argv   []string `json:"argv"`
	} `json:"process"`
	Agent *struct {
		RootExecID string `json:"root_exec_id"`
		Role       string `json:"role"`
	} `json:"agent"`
	Loss *struct {
		Where string `json:"where"`
		Of    string `json:"of"`
		Count uint64 `json:"count"`
	} `json:"loss"`
}

func readUntracked(t *testing.T, path string) []untrackedEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var evs []untrackedEvent
	for _, line := range strings.Split(string(b), "\n") {
		var e untrackedEvent
		if json.Unmarshal([]byte(line), &e) == nil {
			evs = append(evs, e) // a line still being written is skipped
		}
	}
	return evs
}

// untrackedRun is one run of TestRunUntrackedForkInOutput's scenario.
type untrackedRun struct {
	evs     []untrackedEvent
	root    untrackedEvent // the stand-in agent's exec
	full    float64        // lineaged_sensor_sessions_full_total at the end
	stderr  string
	foreign int // session roots of other agents in the output
}

// runUntracked starts lineaged with a two-entry sessions map and runs a
// stand-in agent with three children in it.
func runUntracked(t *testing.T) untrackedRun {
	t.Helper()
	dir := t.TempDir()
	// A stand-in agent: a shell at Claude Code's native install path. The
	// map holds it and its first child; the others do not fit.
	agentPath := testutil.CopyFile(t, "/bin/dash", testutil.AgentPath(dir), 0o755)
	cfgPath := filepath.Join(dir, "lineaged.yaml")
	if err := os.WriteFile(cfgPath, []byte("sensor:\n  session_map_size: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "events.jsonl")
	addr := freeAddr(t)
	cmd := exec.Command(binary, "run", "--config", cfgPath, "--output", out, "--metrics-listen", addr)
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir())
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, &stderr, "sensor started")

	marker := fmt.Sprintf("untracked-%d", time.Now().UnixNano())
	script := "/bin/sleep 0.5 & /bin/sleep 0.6 & /bin/sleep 0.7 & wait; /bin/echo " + marker
	if err := exec.Command(agentPath, "-c", script).Run(); err != nil {
		t.Fatalf("agent stand-in: %v", err)
	}
	// The loss counters are read every second: wait until they count the
	// untracked forks (at the deadline, check what came).
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if fileHasExec(t, out, marker) {
			if n, lost := untrackedCounts(readUntracked(t, out)); n > 0 && lost >= uint64(n) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	full, _ := value(t, scrape(t, addr), "lineaged_sensor_sessions_full_total", nil)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	evs := readUntracked(t, out)

	var root untrackedEvent
	for _, e := range evs {
		if e.Kind == "process.exec" && e.Agent != nil && e.Agent.Role == "root" && e.Process.Exe == agentPath {
			root = e
		}
	}
	foreign := map[string]bool{}
	for _, e := range evs {
		if e.Agent != nil && e.Agent.RootExecID != "" && e.Agent.RootExecID != root.Process.ExecID {
			foreign[e.Agent.RootExecID] = true
		}
	}
	return untrackedRun{evs: evs, root: root, full: full, stderr: stderr.String(), foreign: len(foreign)}
}

// untrackedCounts counts the forks marked untracked and the losses of
// where "sessions" in evs.
func untrackedCounts(evs []untrackedEvent) (forks int, lost uint64) {
	for _, e := range evs {
		if e.Untracked != nil {
			forks++
		}
		if e.Kind == "sensor.loss" && e.Loss != nil && e.Loss.Where == "sessions" {
			lost += e.Loss.Count
		}
	}
	return forks, lost
}
