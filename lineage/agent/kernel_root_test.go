//go:build linux

package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// kernelRun loads the sensor with the built-in table and collects its
// events until one is an exec whose argv holds marker.
type kernelRun struct {
	t    *testing.T
	s    *kernel.Sensor
	out  chan sensor.Event
	seen []sensor.Event
}

func startKernel(t *testing.T, scope kernel.Scope) *kernelRun {
	t.Helper()
	testutil.RequireRoot(t, "loads BPF programs")
	s, err := kernel.New(kernel.Config{Scope: scope, Recognisers: agent.DefaultTable().Kernel()},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("kernel.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &kernelRun{t: t, s: s, out: make(chan sensor.Event, 4096)}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, k.out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k
}

func (k *kernelRun) untilExecArg(marker string) []sensor.Event {
	k.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-k.out:
			k.seen = append(k.seen, ev)
			if ev.Exec != nil && slices.Contains(ev.Exec.Argv, marker) {
				return k.seen
			}
		case <-deadline:
			k.t.Fatalf("no exec with %q within 20s", marker)
		}
	}
}

func marker(t *testing.T) string {
	return fmt.Sprintf("lineaged-agent-marker-%s-%d", t.Name(), time.Now().UnixNano())
}

// copyShell puts a copy of the shell at path: copies of it play agents.
func copyShell(t *testing.T, path string) string {
	t.Helper()
	src, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// ruleExec builds an exec that a rule's matchers hold for, under dir: each
// matched component in place, and for a script rule, the script as argv[1].
func ruleExec(dir string, r agent.Rule) (string, []string) {
	depth := 0
	for _, m := range r.Exe {
		depth = max(depth, m.Level+1)
	}
	comps := make([]string, depth)
	for i := range comps {
		comps[i] = "d"
	}
	for _, m := range r.Exe {
		comps[m.Level] = m.Text
		if m.Op == sensor.HasPrefix {
			comps[m.Level] += "x"
		}
	}
	slices.Reverse(comps)
	exe := filepath.Join(append([]string{dir}, comps...)...)
	argv := []string{filepath.Base(exe)}
	if r.Script != "" {
		argv = append(argv, filepath.Join(dir, "srv")+r.Script)
	}
	return exe, argv
}

// The kernel decides who is an agent at exec; lineage names the agent with
// the same table evaluated in Go. They must agree on every install form and
// every veto, or a session would be tracked but unnamed (or named and never
// tracked), and the /proc seed would disagree with live recognition.
func TestRootKernelAgreesWithTable(t *testing.T) {
	k := startKernel(t, kernel.ScopeAll)
	tab := agent.DefaultTable()
	type run struct {
		exe  string
		argv []string
	}
	var runs []run
	for i, r := range tab.Rules() {
		exe, argv := ruleExec(filepath.Join(t.TempDir(), fmt.Sprint(i)), r)
		if _, err := os.Stat(exe); err != nil {
			copyShell(t, exe)
		}
		runs = append(runs, run{exe, argv})
		for _, v := range r.NotArgv0 {
			runs = append(runs, run{exe, append([]string{v}, argv[1:]...)})
		}
	}
	dir := t.TempDir()
	for _, p := range []string{
		filepath.Join(dir, "node_modules", "@anthropic-ai", "claude-code", "vendor", "ripgrep", "rg"),
		filepath.Join(dir, "claude", "versions", "1.0"),
		filepath.Join(dir, "bin", "claude"),
	} {
		runs = append(runs, run{copyShell(t, p), []string{"claude"}})
	}
	node := copyShell(t, filepath.Join(dir, "bin", "node"))
	runs = append(runs, run{node, []string{"node", filepath.Join(dir, "srv", "server.js")}},
		run{node, []string{"node", "-e", "1"}})

	pids := map[uint32]run{}
	for _, r := range runs {
		// Only the exec matters: what the copied shell does with its
		// arguments afterwards (fail on a missing script) does not.
		cmd := &exec.Cmd{Path: r.exe, Args: r.argv}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		pids[uint32(cmd.Process.Pid)] = r
	}
	m := marker(t)
	if err := exec.Command("/bin/true", m).Run(); err != nil {
		t.Fatal(err)
	}
	evs := k.untilExecArg(m)
	agents, vetoed := 0, 0
	for pid, r := range pids {
		var x *sensor.Exec
		for _, ev := range evs {
			if ev.Exec != nil && ev.Proc.PID == pid {
				x = ev.Exec
			}
		}
		if x == nil {
			t.Errorf("%s %q: no exec event", r.exe, r.argv)
			continue
		}
		want := tab.Recognise(r.exe, r.argv)
		if x.Recognised != want {
			t.Errorf("%s %q: kernel %v, table %v", r.exe, r.argv, x.Recognised, want)
		}
		if want != sensor.AgentNone {
			agents++
		}
		if tab.Vetoed(r.exe, r.argv) {
			vetoed++
		}
	}
	rules := len(tab.Rules())
	vetoes := 0
	for _, r := range tab.Rules() {
		vetoes += len(r.NotArgv0)
	}
	if agents != rules || vetoed != vetoes {
		t.Errorf("%d runs recognised and %d vetoed, want one per rule (%d) and per veto (%d)", agents, vetoed, rules, vetoes)
	}
}

// An agent running before the sensor started is found in /proc, its
// members go into the kernel's table, and what it starts afterwards is in
// its session.
func TestRootSeedFindsRunningAgent(t *testing.T) {
	k := startKernel(t, kernel.ScopeAgents)
	path := copyShell(t, filepath.Join(t.TempDir(), "home", ".local", "share", "claude", "versions", "2.1.332"))
	m := marker(t)
	agentCmd := &exec.Cmd{Path: path, Args: []string{"claude", "-c", "/bin/sleep 30 & read x; /bin/true " + m + "; kill $!"}}
	stdin, err := agentCmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agentCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentCmd.Process.Kill(); agentCmd.Wait() })
	pid := uint32(agentCmd.Process.Pid)
	sleepPID := waitChild(t, pid)

	found, err := agent.DefaultTable().Seed("/proc", k.s.AddSessionProcs)
	if err != nil {
		t.Fatal(err)
	}
	ref, ok := found[pid]
	if !ok || ref.Agent != sensor.AgentClaudeCode || ref.Root.PID != pid {
		t.Fatalf("seed: agent %d not a session root: %+v", pid, ref)
	}
	if found[sleepPID] != ref {
		t.Errorf("seed: descendant %d: %+v, want %+v", sleepPID, found[sleepPID], ref)
	}
	if _, ok := found[uint32(os.Getpid())]; ok {
		t.Error("seed put the test process in a session")
	}
	stdin.Write([]byte("\n"))
	evs := k.untilExecArg(m)
	if ev := evs[len(evs)-1]; !ev.Session.InSession() || ev.Session.Root != ref.Root {
		t.Errorf("seeded agent's child: session %+v, want %+v", ev.Session, ref)
	}
}

// waitChild returns the pid of parent's first child, once it has exec'd.
func waitChild(t *testing.T, parent uint32) uint32 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent))
		if f := strings.Fields(string(b)); len(f) > 0 {
			var pid uint32
			fmt.Sscan(f[0], &pid)
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); strings.HasSuffix(exe, "sleep") {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the agent's child never ran")
	return 0
}
