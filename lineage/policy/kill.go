package policy

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// The kill actions (docs/actions.md).
const (
	// ActionKillProcess kills the process that triggered the rule.
	ActionKillProcess = "kill-process"
	// ActionKillSession kills every live member of the triggering event's
	// agent session, its root included, as the kernel lists them.
	ActionKillSession = "kill-session"
)

// Results of an action, in alert.result of its policy.action.
const (
	ResultDone   = "done"
	ResultGone   = "gone"
	ResultFailed = "failed"
)

// DefaultKillQueue is how many kills may wait for the actuator before a new
// one is refused (reported as failed, never dropped silently).
const DefaultKillQueue = 64

// ErrGone is what an Actuator returns (wrapped) for a process that has
// already exited: there is nothing to kill.
var ErrGone = errors.New("process gone")

// Actuator carries out the kills: it is the kernel loader's side
// (cmd/lineaged wires sensor/kernel), which the policy stage does not
// import. Both methods must never touch a process other than the one (or
// the session) named: a pid alone is reused, a sensor.ProcKey is not.
type Actuator interface {
	// KillProcess sends SIGKILL to the process key names, once it has
	// checked that key.PID still started at key.StartNs and is an agent
	// session member. ErrGone when it has exited.
	KillProcess(key sensor.ProcKey) error
	// KillSession sends SIGKILL to every live member of the agent session
	// rooted at root, root included, as the kernel's session table lists
	// them, and returns how many it signalled.
	KillSession(root sensor.ProcKey) (killed int, err error)
}

// KillConfig sets up the Killer.
type KillConfig struct {
	// Actuator carries the kills out.
	Actuator Actuator
	// Boot is the wall-clock time at which the boot clock read zero, the
	// one lineage converted process start times with: it turns an event's
	// start_time back into the sensor.ProcKey the kernel knows.
	Boot time.Time
	// Emit takes the policy.action of a finished kill into the pipeline
	// ahead of the policy stage and the sequencer (lineage's Engine.Emit),
	// so it is numbered like every other event. It may block: it is
	// called from the Killer's worker, never from the stage.
	Emit func(*event.Event)
	// Queue bounds the kills waiting for the actuator; 0 is
	// DefaultKillQueue.
	Queue int
}

// Killer runs kill actions off the event path: the stage hands it a job and
// goes on; one worker calls the Actuator and emits the policy.action with
// the result. A full queue, or a Killer that is closing, refuses the job at
// once with a failed policy.action from the stage itself.
type Killer struct {
	cfg  KillConfig
	jobs chan killJob
	wg   sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

// killJob is one kill to carry out: what to kill and the policy.action to
// complete and emit.
type killJob struct {
	action string
	key    sensor.ProcKey // the process, or the session root
	out    *event.Event
}

// NewKiller starts the worker. Close stops it.
func NewKiller(cfg KillConfig) (*Killer, error) {
	if cfg.Actuator == nil || cfg.Emit == nil {
		return nil, errors.New("kill actions: an actuator and an emitter are required")
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultKillQueue
	}
	k := &Killer{cfg: cfg, jobs: make(chan killJob, cfg.Queue)}
	k.wg.Add(1)
	go k.work()
	return k, nil
}

// Close refuses new kills, carries out those queued, and returns once their
// policy.action events are emitted. Safe to call more than once, and on a
// nil Killer.
func (k *Killer) Close() {
	if k == nil {
		return
	}
	k.mu.Lock()
	if !k.closed {
		k.closed = true
		close(k.jobs)
	}
	k.mu.Unlock()
	k.wg.Wait()
}

// submit queues j without blocking; the error says why it was refused.
func (k *Killer) submit(j killJob) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return errors.New("the sensor is stopping")
	}
	select {
	case k.jobs <- j:
		return nil
	default:
		return fmt.Errorf("%d kills already queued", cap(k.jobs))
	}
}

func (k *Killer) work() {
	defer k.wg.Done()
	for j := range k.jobs {
		var (
			killed int
			err    error
		)
		switch j.action {
		case ActionKillProcess:
			if err = k.cfg.Actuator.KillProcess(j.key); err == nil {
				killed = 1
			}
		case ActionKillSession:
			killed, err = k.cfg.Actuator.KillSession(j.key)
		}
		a := j.out.Alert
		switch {
		case err == nil:
			a.Result = ResultDone
			a.Message = fmt.Sprintf("%s: killed %d (%s)", j.action, killed, a.Message)
		case errors.Is(err, ErrGone) && killed == 0:
			a.Result = ResultGone
			a.Message = fmt.Sprintf("%s: %s had already exited", j.action, a.Message)
		default:
			a.Result = ResultFailed
			a.Message = fmt.Sprintf("%s failed (%s), killed %d: %v", j.action, a.Message, killed, err)
		}
		a.Killed = &killed
		k.cfg.Emit(j.out)
	}
}

// key turns a process of the event model back into the kernel's name for
// it: lineage made StartTime from the boot-clock start with the same Boot.
func (k *Killer) key(p *event.Process) sensor.ProcKey {
	return sensor.ProcKey{PID: p.PID, StartNs: uint64(p.StartTime.Sub(k.cfg.Boot))}
}

// kill carries out the kill action name of rule r on ev: it queues the kill
// and returns dst, or, when the kill cannot even be queued, dst with the
// failed policy.action. The result of a queued kill comes later, through
// KillConfig.Emit.
func (s *Stage) kill(dst []*event.Event, r *Rule, name string, ev *event.Event) []*event.Event {
	out := *ev
	out.Kind = event.KindPolicyAction
	out.Seq, out.EventID = 0, ""
	out.Alert = &event.Alert{Rule: r.ID, Severity: r.Severity, Action: name, Trigger: ev}
	fail := func(why string) []*event.Event {
		zero := 0
		out.Alert.Result, out.Alert.Killed = ResultFailed, &zero
		out.Alert.Message = fmt.Sprintf("%s not carried out: %s", name, why)
		return append(dst, &out)
	}
	k := s.killer
	if k == nil {
		return fail("no actuator (kills are carried out only by a live sensor)")
	}
	if ev.Agent == nil || ev.Agent.RootExecID == "" {
		// A kill never reaches outside the agent sessions.
		return fail("the event is not in an agent session")
	}
	j := killJob{action: name, out: &out}
	switch name {
	case ActionKillProcess:
		if ev.Process == nil || ev.Process.PID == 0 || ev.Process.StartTime.IsZero() {
			return fail("the event names no process")
		}
		j.key = k.key(ev.Process)
		out.Alert.Message = fmt.Sprintf("pid %d", ev.Process.PID)
	case ActionKillSession:
		root := sessionRoot(ev)
		if root == nil {
			return fail("the session root is not in the event's ancestry")
		}
		j.key = k.key(root)
		out.Alert.Message = fmt.Sprintf("session of root pid %d", root.PID)
	}
	// The result comes back through Emit, later: the policy.action carries
	// the time it was decided, not the trigger's.
	at := out.Time
	out.Time = time.Time{}
	if err := k.submit(j); err != nil {
		out.Time = at
		return fail(err.Error())
	}
	return dst
}

// sessionRoot finds the agent root of ev's session: the process itself or
// one of its ancestors.
func sessionRoot(ev *event.Event) *event.Process {
	if ev.Agent == nil || ev.Agent.RootExecID == "" {
		return nil
	}
	id := ev.Agent.RootExecID
	if p := ev.Process; p != nil && p.ExecID == id {
		return p
	}
	for i := range ev.Ancestry {
		if ev.Ancestry[i].ExecID == id {
			return &ev.Ancestry[i]
		}
	}
	return nil
}
