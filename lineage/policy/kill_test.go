package policy

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// boot is the boot time the fake lineage converted start times with.
var boot = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)

// fakeActuator records the kills asked of it.
type fakeActuator struct {
	mu       sync.Mutex
	procs    []sensor.ProcKey
	sessions []sensor.ProcKey
	err      error
	killed   int
	block    chan struct{} // when set, each kill waits for it
}

func (f *fakeActuator) KillProcess(k sensor.ProcKey) error {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs = append(f.procs, k)
	return f.err
}

func (f *fakeActuator) KillSession(root sensor.ProcKey) (int, error) {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions = append(f.sessions, root)
	return f.killed, f.err
}

// collector stands for lineage's Emit: what comes back goes through the
// stage and the sequencer, as in the pipeline.
type collector struct {
	mu  sync.Mutex
	evs []*event.Event
}

func (c *collector) emit(ev *event.Event) {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
}

func (c *collector) all() []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*event.Event(nil), c.evs...)
}

func killRules(action string) string {
	return fmt.Sprintf(`rules:
  - id: kill-curl
    description: an agent session ran curl
    severity: critical
    condition: kind == "process.exec" && has(agent.root_exec_id) && process.exe.endsWith("/curl")
    actions: [alert, %s]
`, action)
}

// sessionExec is an exec of path two levels under the agent root (pid 100),
// through a shell (pid 200); the process is pid 300.
func sessionExec(path string) *event.Event {
	ev := execIn(true, path)
	ev.Process.PID = 300
	ev.Process.StartTime = boot.Add(9 * time.Second)
	ev.Ancestry = []event.Process{
		{ExecID: "e-sh", PID: 200, StartTime: boot.Add(5 * time.Second)},
		{ExecID: "root", PID: 100, StartTime: boot.Add(1230 * time.Millisecond)},
	}
	return ev
}

func killStage(t *testing.T, action string, act Actuator, queue int) (*Stage, *Killer, *collector) {
	t.Helper()
	c := &collector{}
	k, err := NewKiller(KillConfig{Actuator: act, Boot: boot, Emit: c.emit, Queue: queue})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	st, err := New(Config{Rules: mustRules(t, killRules(action)), Kill: k})
	if err != nil {
		t.Fatal(err)
	}
	return st, k, c
}

// kill-process kills the triggering process by pid and start time, off the
// event path, and reports done with the rule and the trigger's event_id.
func TestKillProcessKillsTheTriggerByPidAndStart(t *testing.T) {
	f := &fakeActuator{}
	st, k, c := killStage(t, ActionKillProcess, f, 0)
	seq := NewSequencer("i")
	trig := sessionExec("/usr/bin/curl")
	out := st.Process(trig)
	if len(out) != 2 || out[0] != trig || out[1].Kind != event.KindPolicyAlert {
		t.Fatalf("stage gave %d events, want the trigger and its alert (the action comes later)", len(out))
	}
	seq.StampAll(out)
	k.Close()
	if want := (sensor.ProcKey{PID: 300, StartNs: uint64(9 * time.Second)}); len(f.procs) != 1 || f.procs[0] != want {
		t.Fatalf("actuator asked to kill %+v, want %+v", f.procs, want)
	}
	got := c.all()
	if len(got) != 1 {
		t.Fatalf("%d policy.action events, want 1", len(got))
	}
	// Back through the stage (which passes it on untouched) and the one
	// sequencer, as the pipeline does.
	res := st.Process(got[0])
	if len(res) != 1 || res[0] != got[0] {
		t.Fatalf("the stage judged its own action: %d events", len(res))
	}
	seq.StampAll(res)
	a := got[0].Alert
	if got[0].Kind != event.KindPolicyAction || a.Rule != "kill-curl" || a.Severity != "critical" ||
		a.Action != ActionKillProcess || a.Result != ResultDone || a.Killed == nil || *a.Killed != 1 ||
		a.TriggerEventID != trig.EventID || a.TriggerEventID == "" {
		t.Errorf("action %+v (trigger %s)", a, trig.EventID)
	}
	if got[0].Seq != 3 || got[0].Process != trig.Process || got[0].Agent.ToolUse.ID != "toolu_1" || !got[0].Time.IsZero() {
		t.Errorf("action seq %d, process %+v, time %v: want seq 3, the trigger's process, time set by the emitter",
			got[0].Seq, got[0].Process, got[0].Time)
	}
	if !strings.Contains(a.Message, "killed 1") {
		t.Errorf("message %q", a.Message)
	}
}

// kill-session asks for the session of the trigger's agent root, found in
// its ancestry, and reports how many members were killed.
func TestKillSessionKillsTheRootsSession(t *testing.T) {
	f := &fakeActuator{killed: 4}
	st, k, c := killStage(t, ActionKillSession, f, 0)
	st.Process(sessionExec("/usr/bin/curl"))
	k.Close()
	if want := (sensor.ProcKey{PID: 100, StartNs: uint64(1230 * time.Millisecond)}); len(f.sessions) != 1 || f.sessions[0] != want || len(f.procs) != 0 {
		t.Fatalf("actuator asked for sessions %+v and processes %+v, want the session of %+v only", f.sessions, f.procs, want)
	}
	got := c.all()
	if len(got) != 1 || got[0].Alert.Result != ResultDone || *got[0].Alert.Killed != 4 || got[0].Alert.Action != ActionKillSession {
		t.Fatalf("actions %+v", got)
	}
	// The trigger may be the root itself.
	f2 := &fakeActuator{killed: 1}
	st2, k2, _ := killStage(t, ActionKillSession, f2, 0)
	ev := sessionExec("/usr/bin/curl")
	ev.Process.ExecID, ev.Process.PID, ev.Ancestry = "root", 100, nil
	ev.Process.StartTime = boot.Add(1230 * time.Millisecond)
	st2.Process(ev)
	k2.Close()
	if len(f2.sessions) != 1 || f2.sessions[0].PID != 100 {
		t.Errorf("root as trigger: sessions %+v", f2.sessions)
	}
}

// An actuator's failure, or a process already gone, is reported with why.
func TestKillResultsFailedAndGone(t *testing.T) {
	for _, tc := range []struct {
		name, action string
		f            *fakeActuator
		result, msg  string
		killed       int
	}{
		{"gone", ActionKillProcess, &fakeActuator{err: fmt.Errorf("pid 300: %w", ErrGone)}, ResultGone, "already exited", 0},
		{"reused", ActionKillProcess, &fakeActuator{err: errors.New("pid 300 now names another process")}, ResultFailed, "another process", 0},
		{"partial", ActionKillSession, &fakeActuator{killed: 2, err: errors.New("pid 7: permission denied")}, ResultFailed, "permission denied", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, k, c := killStage(t, tc.action, tc.f, 0)
			st.Process(sessionExec("/usr/bin/curl"))
			k.Close()
			got := c.all()
			if len(got) != 1 {
				t.Fatalf("%d actions", len(got))
			}
			a := got[0].Alert
			if a.Result != tc.result || *a.Killed != tc.killed || !strings.Contains(a.Message, tc.msg) {
				t.Errorf("action %+v, message %q", a, a.Message)
			}
		})
	}
}

// A kill that cannot be queued, or asked of a stage without an actuator, or
// for an event outside any session, fails at once, in the stage's output,
// and is numbered right after its trigger.
func TestKillRefusedIsReportedNotDropped(t *testing.T) {
	f := &fakeActuator{block: make(chan struct{})}
	st, k, c := killStage(t, ActionKillProcess, f, 1)
	// The worker takes the first and blocks in the actuator; the second
	// fills the queue; the third finds it full.
	st.Process(sessionExec("/usr/bin/curl"))
	testWait(t, func() bool { return len(k.jobs) == 0 })
	if out := st.Process(sessionExec("/usr/bin/curl")); len(out) != 2 {
		t.Fatalf("queued kill: %d events", len(out))
	}
	trig := sessionExec("/usr/bin/curl")
	out := st.Process(trig)
	if len(out) != 3 || out[2].Kind != event.KindPolicyAction {
		t.Fatalf("full queue: %d events, want the trigger, its alert and a failed action", len(out))
	}
	NewSequencer("i").StampAll(out)
	if a := out[2].Alert; a.Result != ResultFailed || !strings.Contains(a.Message, "1 kills already queued") ||
		a.TriggerEventID != trig.EventID || a.Rule != "kill-curl" || out[2].Time.IsZero() {
		t.Errorf("full queue: %+v", a)
	}
	close(f.block)
	k.Close()
	if n := len(c.all()); n != 2 {
		t.Errorf("%d results of the two queued kills", n)
	}
	if out := st.Process(sessionExec("/usr/bin/curl")); len(out) != 3 || !strings.Contains(out[2].Alert.Message, "stopping") {
		t.Errorf("after Close: %d events", len(out))
	}

	// No actuator: a rules test or a replay.
	bare, err := New(Config{Rules: mustRules(t, killRules(ActionKillSession))})
	if err != nil {
		t.Fatal(err)
	}
	if out := bare.Process(sessionExec("/usr/bin/curl")); len(out) != 3 || out[2].Alert.Result != ResultFailed ||
		!strings.Contains(out[2].Alert.Message, "no actuator") {
		t.Errorf("no actuator: %d events", len(out))
	}

	// A trigger outside every agent session is never killed.
	f3 := &fakeActuator{}
	st3, k3, _ := killStage(t, ActionKillProcess, f3, 0)
	st3.SetRules(mustRules(t, strings.Replace(killRules(ActionKillProcess), "has(agent.root_exec_id) && ", "", 1)))
	outside := sessionExec("/usr/bin/curl")
	outside.Agent = nil
	if out := st3.Process(outside); len(out) != 3 || !strings.Contains(out[2].Alert.Message, "not in an agent session") {
		t.Errorf("outside a session: %d events", len(out))
	}
	k3.Close()
	if len(f3.procs) != 0 {
		t.Errorf("killed %+v outside any session", f3.procs)
	}

	// A session rule's trigger whose root is not in its ancestry.
	f2 := &fakeActuator{}
	st2, k2, _ := killStage(t, ActionKillSession, f2, 0)
	ev := sessionExec("/usr/bin/curl")
	ev.Ancestry = ev.Ancestry[:1]
	if out := st2.Process(ev); len(out) != 3 || !strings.Contains(out[2].Alert.Message, "root is not in the event's ancestry") {
		t.Errorf("root not found: %d events", len(out))
	}
	k2.Close()
	if len(f2.sessions) != 0 {
		t.Errorf("killed sessions %+v without knowing the root", f2.sessions)
	}
}

func TestKillActionsTakeNoParameters(t *testing.T) {
	p := writeRules(t, t.TempDir(), "r.yaml", strings.Replace(killRules("kill-session: {signal: TERM}"), "[alert, kill-session: {signal: TERM}]", "\n      - kill-session: {signal: TERM}", 1))
	if _, err := LoadRules(p); err == nil || !strings.Contains(err.Error(), "action kill-session: takes no parameters, got signal") {
		t.Errorf("kill-session with parameters: %v", err)
	}
}

func testWait(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}
