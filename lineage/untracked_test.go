package lineage

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// A fork whose child the kernel could not make a session member (its
// sessions map was full) is reported whether fork events are on or not,
// marked untracked, in the session the child was born in; an ordinary fork
// is not reported with fork events off. In scope all, the untracked
// child's later records carry no session, and its events no agent.
func TestUntrackedForkIsReported(t *testing.T) {
	for _, scope := range []string{ScopeAgents, ScopeAll} {
		t.Run(scope, func(t *testing.T) {
			r := newRig(t, Config{Scope: scope}, nil)
			seedBase(r)
			settle(r)
			root, tracked, lost := key(50, 500), key(60, 600), key(61, 610)
			untracked := forkEv(lost, root, 6100*ms, sess)
			untracked.Fork.Untracked = true
			in := []sensor.Event{claudeRoot(5000 * ms), forkEv(tracked, root, 6000*ms, sess), untracked}
			if scope == ScopeAll {
				in = append(in, execEv(lost, root, 6200*ms, sensor.SessionRef{}, "/usr/bin/curl", "curl", "example.com"))
			}
			got := r.run(in...)
			var forks, lostExecs []*event.Event
			var rootExecID string
			for _, ev := range got {
				switch {
				case ev.Kind == event.KindProcessFork:
					forks = append(forks, ev)
				case ev.Kind == event.KindProcessExec && ev.Process.PID == lost.PID:
					lostExecs = append(lostExecs, ev)
				case ev.Kind == event.KindProcessExec && ev.Process.PID == root.PID:
					rootExecID = ev.Process.ExecID
				}
				if ev.Untracked && ev.Kind != event.KindProcessFork {
					t.Errorf("%s of pid %d is marked untracked", ev.Kind, ev.Process.PID)
				}
			}
			if len(forks) != 1 {
				t.Fatalf("%d process.fork events, want 1 (the untracked child's)", len(forks))
			}
			f := forks[0]
			if f.Process.PID != lost.PID || !f.Untracked {
				t.Errorf("fork of pid %d, untracked %v; want pid %d, untracked", f.Process.PID, f.Untracked, lost.PID)
			}
			if f.Agent == nil || f.Agent.RootExecID != rootExecID || rootExecID == "" {
				t.Errorf("untracked fork's agent %+v, want the session of root %s", f.Agent, rootExecID)
			}
			if scope == ScopeAll {
				if len(lostExecs) != 1 || lostExecs[0].Agent != nil {
					t.Errorf("the untracked child's exec: %d events, want 1 with no agent", len(lostExecs))
				}
			} else if len(lostExecs) != 0 {
				t.Errorf("the untracked child's exec reported in scope %s", scope)
			}
		})
	}
}

// An agent's exec the kernel could not track in the session it starts (the
// sessions map was full) is reported marked untracked; others are not.
func TestUntrackedExecIsMarked(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	settle(r)
	other := sensor.SessionRef{Root: key(70, 700), Agent: sensor.AgentClaudeCode}
	lost := execEv(key(70, 700), key(20, 200), 7000*ms, other, "/home/alice/.local/share/claude/versions/2.0.1", "claude")
	lost.Exec.Recognised = sensor.AgentClaudeCode
	lost.Exec.Flags |= sensor.ExecUntracked
	got := r.run(claudeRoot(5000*ms), lost)
	n := 0
	for _, ev := range got {
		if ev.Kind != event.KindProcessExec {
			continue
		}
		n++
		if want := ev.Process.PID == 70; ev.Untracked != want {
			t.Errorf("exec of pid %d: untracked %v, want %v", ev.Process.PID, ev.Untracked, want)
		}
	}
	if n != 2 {
		t.Errorf("%d process.exec events, want 2", n)
	}
}
