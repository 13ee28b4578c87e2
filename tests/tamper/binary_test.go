//go:build linux

package tamper

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// outEvent is what the tests read of an output line.
type outEvent struct {
	Kind    string `json:"kind"`
	Process *struct {
		PID  uint32   `json:"pid"`
		Argv []string `json:"argv"`
	} `json:"process"`
	Agent *struct {
		RootExecID string `json:"root_exec_id"`
		Role       string `json:"role"`
	} `json:"agent"`
	Tamper *struct {
		Action    string `json:"action"`
		SensorPID uint32 `json:"sensor_pid"`
		Signal    int    `json:"signal"`
		Request   string `json:"request"`
		Object    string `json:"object"`
	} `json:"tamper"`
}

func readEvents(t *testing.T, path string) []outEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var evs []outEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev outEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

// sensorProc is a running `lineaged run`.
type sensorProc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan error
}

func startLineaged(t *testing.T, bin, cfg, cache string) *sensorProc {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", cfg)
	// Its state (sequence, audit key, taints) beside its configuration,
	// kept across restarts within a test, never the machine's.
	cmd.Env = append(os.Environ(), "LINEAGED_HASHING_CACHE_DIR="+cache, "LINEAGED_STATE_DIR="+filepath.Join(filepath.Dir(cfg), "state"))
	sp := &sensorProc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = sp.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { sp.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return
		}
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-sp.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	testutil.WaitForText(t, 60*time.Second, sp.stderr, "sensor started")
	return sp
}

// TestRootAgentKillsTheSensor: the stand-in agent (a recognised Claude Code
// install) kills lineaged with SIGKILL in the middle of an exec storm and
// keeps exec'ing. The restarted lineaged, on the same pin path, reports the
// kill as sensor.tamper events (the signal naming the agent, in its
// session; the sensor's death), every exec made while no sensor ran, in
// the session, and the session's later execs.
func TestRootAgentKillsTheSensor(t *testing.T) {
	testutil.RequireRoot(t, "to run lineaged")
	bin := testutil.LineagedBinary(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pin := pinPath(t)
	cache := filepath.Join(dir, "cache")
	agentPath := testutil.CopyFile(t, "/bin/dash", testutil.AgentPath(dir), 0o755)
	out1, out2 := filepath.Join(dir, "events1.jsonl"), filepath.Join(dir, "events2.jsonl")
	conf := func(out string) string {
		p := out + ".yaml"
		body := fmt.Sprintf("output: %s\nkernel:\n  pin_path: %s\nposture:\n  checks: [aslr]\n", out, pin)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := startLineaged(t, bin, conf(out1), cache)
	spid := first.cmd.Process.Pid

	const storm, down = 200, 200
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do i=$((i+1)); /bin/true up-$i; done
kill -9 %d
while [ -e /proc/%d/stat ] && [ "$(cut -d' ' -f3 /proc/%d/stat)" != Z ]; do :; done
i=0; while [ $i -lt %d ]; do i=$((i+1)); /bin/true down-$i; done
: > %s
read go
/bin/true after-restart
`, storm, spid, spid, spid, down, filepath.Join(dir, "storm-done"))
	agent := exec.Command(agentPath, "-c", script)
	stdin, err := agent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	agentOut := &testutil.SyncBuffer{}
	agent.Stdout, agent.Stderr = agentOut, agentOut
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Wait() }()
	// Generous: the kernel matrix guests run under emulation, where the
	// storm before the kill takes a good part of a minute.
	select {
	case <-first.done:
	case err := <-agentDone:
		t.Fatalf("the agent ended (%v) before lineaged died:\n%s", err, agentOut)
	case <-time.After(3 * time.Minute):
		t.Fatalf("the agent's kill -9 did not end lineaged; agent:\n%s\nlineaged:\n%s", agentOut, first.stderr)
	}
	// The storm goes on while no sensor runs; the restart comes after.
	testutil.WaitFor(t, 3*time.Minute, "the agent's storm after the kill", func() bool {
		_, err := os.Stat(filepath.Join(dir, "storm-done"))
		return err == nil
	}, func() string { return agentOut.String() })
	second := startLineaged(t, bin, conf(out2), cache)
	io.WriteString(stdin, "go\n")
	stdin.Close()
	<-agentDone

	var evs []outEvent
	testutil.WaitFor(t, 2*time.Minute, "the restarted sensor's report", func() bool {
		evs = readEvents(t, out2)
		return len(execsIn(evs, "after-restart")) == 1 && len(execsIn(evs, "down-")) == down
	}, func() string {
		return fmt.Sprintf("%d events, %d of %d down- execs", len(evs), len(execsIn(evs, "down-")), down)
	})
	root := execsIn(evs, "after-restart")[0].Agent
	if root == nil || root.RootExecID == "" {
		t.Fatalf("after-restart exec has no session: %+v", root)
	}
	for _, ev := range execsIn(evs, "down-") {
		if ev.Agent == nil || ev.Agent.RootExecID != root.RootExecID {
			t.Fatalf("exec %v made while no sensor ran: agent %+v, want session %s", ev.Process.Argv, ev.Agent, root.RootExecID)
		}
	}
	var signal, death *outEvent
	for i, ev := range evs {
		if ev.Kind != "sensor.tamper" || ev.Tamper == nil {
			continue
		}
		switch ev.Tamper.Action {
		case "signal":
			signal = &evs[i]
		case "sensor-exit":
			death = &evs[i]
		}
	}
	if signal == nil || death == nil {
		t.Fatalf("sensor.tamper: signal %+v, death %+v", signal, death)
	}
	if signal.Tamper.Signal != 9 || signal.Tamper.SensorPID != uint32(spid) || signal.Process == nil ||
		signal.Process.PID != uint32(agent.Process.Pid) || signal.Agent == nil || signal.Agent.RootExecID != root.RootExecID {
		t.Errorf("signal: %+v process %+v agent %+v, want SIGKILL to %d by the agent %d in session %s",
			signal.Tamper, signal.Process, signal.Agent, spid, agent.Process.Pid, root.RootExecID)
	}
	if death.Tamper.Signal != 9 || death.Tamper.SensorPID != uint32(spid) || death.Process == nil ||
		death.Process.PID != uint32(agent.Process.Pid) || death.Agent == nil || death.Agent.RootExecID != root.RootExecID {
		t.Errorf("death: %+v process %+v agent %+v, want lineaged %d dead of SIGKILL from the agent %d in session %s",
			death.Tamper, death.Process, death.Agent, spid, agent.Process.Pid, root.RootExecID)
	}

	// The package's purge: refused while a sensor holds the path, done
	// once it stopped.
	if b, err := exec.Command(bin, "unpin", "--config", conf(out2)).CombinedOutput(); err == nil {
		t.Errorf("unpin while lineaged runs succeeded: %s", b)
	}
	second.cmd.Process.Signal(syscall.SIGINT)
	<-second.done
	if b, err := exec.Command(bin, "unpin", "--config", conf(out2)).CombinedOutput(); err != nil {
		t.Fatalf("unpin: %v\n%s", err, b)
	}
	if _, err := os.Stat(pin); !os.IsNotExist(err) {
		t.Errorf("%s still there after unpin: %v", pin, err)
	}
}

func execsIn(evs []outEvent, prefix string) []outEvent {
	var out []outEvent
	for _, ev := range evs {
		if ev.Kind == "process.exec" && ev.Process != nil && len(ev.Process.Argv) > 1 && strings.HasPrefix(ev.Process.Argv[1], prefix) {
			out = append(out, ev)
		}
	}
	return out
}
