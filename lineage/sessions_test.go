package lineage

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
)

// slowObserver marks bash -c tools and completes their tool_use later.
type slowObserver struct {
	release chan struct{}
	// stubborn ignores the context: a misbehaving resolver.
	stubborn bool
	exits    []uint32
	files    []string
}

func (o *slowObserver) Exec(x agent.Exec) agent.Result {
	if len(x.Proc.Argv) > 1 && x.Proc.Argv[1] == "-c" {
		sid, _ := x.Env("CLAUDE_CODE_SESSION_ID")
		a := *x.ParentAgent
		a.Role, a.SessionID = event.RoleTool, sid
		return agent.Result{Agent: &a, Resolve: func(ctx context.Context, a *event.Agent) {
			done := ctx.Done()
			if o.stubborn {
				done = nil
			}
			select {
			case <-o.release:
				a.ToolUse = &event.ToolUse{ID: "toolu_1", Name: "Bash"}
			case <-done:
			}
		}}
	}
	return agent.Result{}
}

func (o *slowObserver) File(x agent.File) agent.Result {
	o.files = append(o.files, x.File.Path)
	if x.File.Path == "/work/a.go" {
		a := *x.Agent
		a.ToolUse = &event.ToolUse{ID: "toolu_2", Name: "Write"}
		return agent.Result{Agent: &a}
	}
	return agent.Result{}
}

func (o *slowObserver) Exit(p *event.Process) { o.exits = append(o.exits, p.PID) }

func TestObserverAttribution(t *testing.T) {
	obs := &slowObserver{release: make(chan struct{})}
	close(obs.release)
	r := newRig(t, Config{}, obs)
	seedBase(r)
	tool, sub := key(60, 600), key(61, 610)
	r.procs.env = map[uint32]map[string]string{60: {"CLAUDE_CODE_SESSION_ID": "sess-uuid"}}
	got := r.run(
		claudeRoot(1000*ms),
		openEv(key(50, 500), 1500*ms, sess, "/work/a.go", 1),
		forkEv(tool, key(50, 500), 2000*ms, sess),
		execEv(tool, key(50, 500), 2001*ms, sess, "/usr/bin/bash", "bash", "-c", "eval 'ls'"),
		forkEv(sub, tool, 2002*ms, sess),
		execEv(sub, tool, 2003*ms, sess, "/usr/bin/ls", "ls"),
		exitEv(sub, 2004*ms, sess, 0),
	)
	w := got[1]
	if w.Agent.ToolUse == nil || w.Agent.ToolUse.ID != "toolu_2" || w.Agent.Role != event.RoleRoot {
		t.Errorf("write attribution = %+v", w.Agent)
	}
	b := got[2]
	if b.Agent.Role != event.RoleTool || b.Agent.SessionID != "sess-uuid" || b.Agent.ToolUse == nil || b.Agent.ToolUse.ID != "toolu_1" {
		t.Errorf("bash tool agent = %+v", b.Agent)
	}
	ls := got[3]
	if ls.Agent.Role != event.RoleTool || ls.Agent.ToolUse == nil || ls.Agent.ToolUse.ID != "toolu_1" {
		t.Errorf("ls inherits = %+v %+v", ls.Agent, ls.Agent.ToolUse)
	}
	if !reflect.DeepEqual(obs.exits, []uint32{61}) || !reflect.DeepEqual(obs.files, []string{"/work/a.go"}) {
		t.Errorf("observer saw exits %v files %v", obs.exits, obs.files)
	}
}

func TestObserverResolveBounded(t *testing.T) {
	obs := &slowObserver{release: make(chan struct{}), stubborn: true} // never released
	r := newRig(t, Config{EnrichWait: 50 * time.Millisecond}, obs)
	seedBase(r)
	tool := key(60, 600)
	got := r.run(
		claudeRoot(1000*ms),
		execEv(tool, key(50, 500), 2001*ms, sess, "/usr/bin/bash", "bash", "-c", "eval 'ls'"),
	)
	if len(got) != 2 || got[1].Agent.Role != event.RoleTool || got[1].Agent.ToolUse != nil {
		t.Fatalf("unresolved tool = %+v", got[1].Agent)
	}
	if s := r.e.Stats(); s.ResolveTimeouts != 1 {
		t.Errorf("resolve timeouts = %d", s.ResolveTimeouts)
	}
	close(obs.release)
}
