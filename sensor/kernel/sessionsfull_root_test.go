//go:build linux

package kernel

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/tests/testutil"
)

// Tests of a full sessions map: the processes the kernel cannot make
// members are counted and their records say so (FORK_UNTRACKED,
// EXEC_UNTRACKED).

// ownAgent is a path for a stand-in agent and recognisers that name only
// it: with a map this small, any agent another test package starts on the
// host at the same time would take a slot.
func ownAgent(t *testing.T) (string, []sensor.Recogniser) {
	name := fmt.Sprintf("sessfull-agent-%d", os.Getpid())
	return filepath.Join(t.TempDir(), name), []sensor.Recogniser{{Name: "own", Agent: sensor.AgentClaudeCode,
		Exe: []sensor.Matcher{{Op: sensor.Equals, Level: 0, Text: name}}}}
}

func TestRootSessionsMapFullIsCounted(t *testing.T) {
	// A 4-entry sessions map: the agent and its first three children fill
	// it, and the fourth child is the first the kernel cannot track. The
	// children stay alive (an exited member frees its slot). The loop's
	// bound only keeps a broken count from running forever: on 5.10 and 6.1
	// a `< 0` test of the update's result never saw the failure (see
	// bpf/maps.h), and 1024 untracked children went uncounted.
	const size = 4
	path, recs := ownAgent(t)
	h := startSensor(t, Config{SessionMapSize: size, Recognisers: recs})
	m := marker(t)
	// The agent: this test binary at a path only its recogniser names,
	// "fill" helper.
	agent := testutil.CopyFile(t, testBinary(t), path, 0o700)
	cmd := exec.Command(agent, m)
	cmd.Env = append(os.Environ(), "LINEAGED_SENSOR_HELPER=fill")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	replies := bufio.NewScanner(out)
	children := 0
	for ; children < 1024 && h.s.Stats().SessionsFull == 0; children++ {
		if _, err := io.WriteString(in, "child\n"); err != nil {
			t.Fatal(err)
		}
		if !replies.Scan() {
			t.Fatalf("agent stopped: %v", replies.Err())
		}
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent: %v", err)
	}
	if st := h.s.Stats(); st.SessionsFull == 0 {
		t.Fatalf("no sessions-full count after %d children: %+v", children, st)
	}
	if children != size {
		t.Errorf("first sessions-full count after %d children, want %d (the agent and %d children fill the map)",
			children, size, size-1)
	}
	// The agent itself stays tracked: its last exec is the marker
	// (/bin/true; its first exec, the agent's, has the marker too).
	agentPID := uint32(cmd.Process.Pid)
	isMarker := func(ev sensor.Event) bool {
		return ev.Exec != nil && ev.Proc.PID == agentPID && len(ev.Exec.Argv) == 2 && ev.Exec.Argv[0] == "/bin/true" && ev.Exec.Argv[1] == m
	}
	evs := h.until(isMarker)
	if ev := evs[len(evs)-1]; !inSession(ev, agentPID) {
		t.Fatalf("marker: %+v", ev.Header)
	}
	// The agent (a Go program: more than one thread) has every child's
	// fork record sent. The children fill the map; the one that did not
	// fit is the last, and its record says so, in the session it was born
	// in. The others are members: each exec'd /bin/sh in the session.
	var forks []sensor.Event
	execd := map[sensor.ProcKey]bool{}
	for _, ev := range evs {
		if ev.Fork != nil && ev.Fork.Parent.PID == agentPID {
			forks = append(forks, ev)
		}
		if ev.Exec != nil && ev.Proc.PID != agentPID && inSession(ev, agentPID) {
			execd[ev.Proc] = true
		}
	}
	if len(forks) < size {
		t.Fatalf("%d fork records of the agent's children, want at least %d", len(forks), size)
	}
	untracked := 0
	for i, f := range forks {
		last := i == len(forks)-1
		if f.Fork.Untracked != last {
			t.Errorf("fork record %d of %d (pid %d, exec'd in the session: %v): Untracked %v, want %v",
				i+1, len(forks), f.Proc.PID, execd[f.Proc], f.Fork.Untracked, last)
		}
		if last && execd[f.Proc] {
			t.Errorf("the last child (pid %d) exec'd in the session", f.Proc.PID)
		}
		if !inSession(f, agentPID) {
			t.Errorf("fork record %d: not in the agent's session: %+v", i+1, f.Header)
		}
		if f.Fork.Untracked {
			untracked++
		}
	}
	if len(execd) != size-1 {
		t.Errorf("%d children exec'd in the session, want %d", len(execd), size-1)
	}
	// The loss count and the untracked fork records agree: one each.
	isLoss := func(ev sensor.Event) bool { return ev.Loss != nil && ev.Loss.Where == "sessions" }
	i := slices.IndexFunc(evs, isLoss)
	if i < 0 {
		evs = h.until(isLoss)
		i = len(evs) - 1
	}
	if l := evs[i].Loss; l.Count != uint64(untracked) || l.Of != sensor.KindFork {
		t.Errorf("loss event %+v, want a count of %d (the untracked forks)", l, untracked)
	}
}

// fillHelper is an agent that starts one long-lived child per stdin line
// (answering "ok"), and at EOF releases them and execs /bin/true argv[1].
func fillHelper() {
	r, w, err := os.Pipe()
	if err != nil {
		os.Exit(1)
	}
	var kids []*exec.Cmd
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		c := exec.Command("/bin/sh", "-c", "read x")
		c.Stdin = r
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "fill:", err)
			os.Exit(1)
		}
		kids = append(kids, c)
		fmt.Println("ok")
	}
	w.Close()
	for _, c := range kids {
		c.Wait()
	}
	err = syscall.Exec("/bin/true", []string{"/bin/true", os.Args[1]}, os.Environ())
	fmt.Fprintln(os.Stderr, "fill:", err)
	os.Exit(1)
}

// An agent that starts while the sessions map is full starts no session the
// kernel can track: its exec record names the session it would have
// started, says it is untracked, and is counted as a sessions loss of exec,
// apart from the children (loss of fork). Its later records are not sent.
func TestRootSessionsMapFullExecIsFlagged(t *testing.T) {
	const size = 2
	path, recs := ownAgent(t)
	h := startSensor(t, Config{SessionMapSize: size, Recognisers: recs})
	// The first agent fills the map with its children, and holds it full.
	first := testutil.CopyFile(t, testBinary(t), path, 0o700)
	fill := exec.Command(first, marker(t))
	fill.Env = append(os.Environ(), "LINEAGED_SENSOR_HELPER=fill")
	in, err := fill.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := fill.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := fill.Start(); err != nil {
		t.Fatal(err)
	}
	defer fill.Wait()
	defer in.Close()
	replies := bufio.NewScanner(out)
	for children := 0; h.s.Stats().SessionsFull == 0; children++ {
		if children == 64 {
			t.Fatalf("no sessions-full count after %d children: %+v", children, h.s.Stats())
		}
		if _, err := io.WriteString(in, "child\n"); err != nil {
			t.Fatal(err)
		}
		if !replies.Scan() {
			t.Fatalf("agent stopped: %v", replies.Err())
		}
	}
	// The second agent: no children, it execs /bin/true m at once.
	m := marker(t)
	second := testutil.CopyFile(t, testBinary(t), filepath.Join(t.TempDir(), filepath.Base(path)), 0o700)
	cmd := exec.Command(second, m)
	cmd.Env = append(os.Environ(), "LINEAGED_SENSOR_HELPER=fill")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second agent: %v: %s", err, out)
	}
	pid := uint32(cmd.Process.Pid)
	evs := h.until(func(ev sensor.Event) bool {
		return ev.Exec != nil && ev.Proc.PID == pid && ev.Exec.Exe == second
	})
	root := evs[len(evs)-1]
	if root.Exec.Flags&sensor.ExecUntracked == 0 || root.Exec.Recognised != sensor.AgentClaudeCode || !inSession(root, pid) {
		t.Errorf("the second agent's exec: flags %#x, recognised %v, session %+v; want untracked, its own session",
			root.Exec.Flags, root.Exec.Recognised, root.Session)
	}
	for _, ev := range evs[:len(evs)-1] {
		if ev.Exec != nil && ev.Exec.Flags&sensor.ExecUntracked != 0 {
			t.Errorf("exec of pid %d (%s) untracked", ev.Proc.PID, ev.Exec.Exe)
		}
	}
	// Counted apart from the untracked children: the exec. (The loss
	// reports come every second; the first may precede the exec record.)
	var forks, execs uint64
	seen := h.seen
	for execs == 0 || forks == 0 {
		for _, ev := range seen {
			if ev.Loss != nil && ev.Loss.Where == "sessions" {
				switch ev.Loss.Of {
				case sensor.KindFork:
					forks += ev.Loss.Count
				case sensor.KindExec:
					execs += ev.Loss.Count
				default:
					t.Errorf("sessions loss of %s", ev.Loss.Of)
				}
			}
		}
		if execs == 0 || forks == 0 {
			seen = h.until(func(ev sensor.Event) bool { return ev.Loss != nil && ev.Loss.Where == "sessions" })
		}
	}
	// One exec is this test's; an agent another test starts on the host
	// meanwhile (go test runs packages at once) finds the map full too.
	if execs == 0 || forks == 0 {
		t.Errorf("sessions losses: %d of exec (want 1), %d of fork (want some)", execs, forks)
	} else if execs > 1 {
		t.Logf("sessions losses: %d of exec: other agents started on the host while the map was full", execs)
	}
	// Nothing of the untracked agent after its exec: its /bin/true is not
	// a member's exec.
	in.Close()
	if err := fill.Wait(); err != nil {
		t.Fatalf("first agent: %v", err)
	}
	for _, ev := range h.until(func(ev sensor.Event) bool {
		return ev.Exec != nil && slices.Contains(ev.Exec.Argv, fill.Args[1]) && ev.Exec.Argv[0] == "/bin/true"
	}) {
		// Tamper records name any process, member or not (7.3 once
		// showed one of this pid): only session records count here.
		if ev.Proc.PID == pid && ev.Tamper == nil {
			t.Errorf("a record of the untracked agent after its exec: %v %+v", ev.Kind, ev.Exec)
		}
	}
}

// In scope all, a single-threaded member's child that execs at once has
// its fork record parked, and dropped when its exec names the parent; an
// untracked child's is sent (it is the only record that says so). Its exec
// comes outside any session.
func TestRootSessionsMapFullScopeAllKeepsUntrackedFork(t *testing.T) {
	path, recs := ownAgent(t)
	h := startSensor(t, Config{Scope: ScopeAll, SessionMapSize: 2, Recognisers: recs})
	// A shell (one thread) at an agent path: the map holds it and its
	// first child, which lives on; its other children are untracked.
	agent := testutil.CopyFile(t, "/bin/dash", path, 0o755)
	var pid uint32
	var forks, execs map[uint32]sensor.Event
	for try := 1; ; try++ {
		// Where tracepoint programs can be preempted (7.x), the kernel
		// skips a run of one already running on that CPU, and reports
		// it (MissedRuns; the sensor's sensor.loss "skipped"): a run
		// that lost an exec record so is made again.
		missed := h.s.MissedRuns()[processProgHandleExec]
		m := marker(t)
		cmd := exec.Command(agent, "-c", "/bin/sleep 0.5 & /bin/sleep 0.4 & /bin/sleep 0.3 & wait; exec /bin/true "+m)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("agent: %v: %s", err, out)
		}
		pid = uint32(cmd.Process.Pid)
		h.untilExecArg(m)
		forks, execs = map[uint32]sensor.Event{}, map[uint32]sensor.Event{}
		for _, ev := range h.seen {
			if ev.Fork != nil && ev.Fork.Parent.PID == pid {
				forks[ev.Proc.PID] = ev
			}
			if ev.Exec != nil && ev.Proc.PID != pid && ev.Exec.Parent.PID == pid && len(ev.Exec.Argv) == 2 && ev.Exec.Argv[0] == "/bin/sleep" {
				execs[ev.Proc.PID] = ev
			}
		}
		if len(execs) == 3 {
			break
		}
		skipped := h.s.MissedRuns()[processProgHandleExec] - missed
		if skipped == 0 || try == 3 {
			t.Fatalf("%d execs of the agent's children, want 3 (skipped handle_exec runs meanwhile: %d)", len(execs), skipped)
		}
		t.Logf("run %d: %d execs of the agent's children, %d skipped handle_exec runs: again", try, len(execs), skipped)
	}
	members, untracked := 0, 0
	for child, x := range execs {
		f, forked := forks[child]
		switch {
		case inSession(x, pid):
			members++
			if forked && f.Fork.Untracked {
				t.Errorf("member %d: fork record untracked", child)
			}
		case !forked || !f.Fork.Untracked || !inSession(f, pid):
			t.Errorf("child %d (exec outside the session): fork record sent %v (%+v), want untracked in the agent's session",
				child, forked, f.Fork)
		default:
			untracked++
		}
	}
	if members != 1 || untracked != 2 {
		t.Errorf("%d members, %d untracked children; want 1 and 2", members, untracked)
	}
}
