package lineage

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
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

// seedingObserver records what the engine's /proc seed hands a Seeder.
type seedingObserver struct {
	slowObserver
	seen []string
}

func (o *seedingObserver) Seeded(procs []agent.Seeded) {
	for _, sp := range procs {
		o.seen = append(o.seen, fmt.Sprintf("%d<-%d %s", sp.Proc.PID, sp.Parent.PID, sp.Parent.Exe))
	}
}

// The seed hands an integration every seeded process with its parent, in
// start order, once: an agent's tool process blocked before the sensor
// started is read while it is alive.
func TestSeedTellsTheSeeder(t *testing.T) {
	obs := &seedingObserver{}
	r := newRig(t, Config{}, obs)
	seedBase(r)
	r.e.Seed([]*procfs.Proc{sproc(50, 20, 500, "/usr/bin/claude", "claude"), sproc(60, 50, 600, "/usr/bin/bash", "bash", "-c", "x")})
	want := []string{"10<-1 /usr/lib/systemd/systemd", "20<-10 /usr/sbin/sshd", "50<-20 /usr/bin/bash", "60<-50 /usr/bin/claude"}
	if !reflect.DeepEqual(obs.seen, want) {
		t.Errorf("seeded %q, want %q", obs.seen, want)
	}
}

// namingObserver names the session in its answer to the root's file events
// only, as the Claude Code observer does once the agent appends to its
// transcript.
type namingObserver struct{ slowObserver }

func (o *namingObserver) File(x agent.File) agent.Result {
	a := *x.Agent
	a.SessionID = "sess-late"
	return agent.Result{Agent: &a}
}

// The root's exit and connections, which the integration is not asked
// about, carry the session's id once a file event of the root learned it;
// what came before it does not.
func TestSessionIDLearnedLaterReachesExitAndConnect(t *testing.T) {
	r := newRig(t, Config{}, &namingObserver{})
	seedBase(r)
	root := key(50, 500)
	got := r.run(
		claudeRoot(1000*ms),
		connectEv(root, 1100*ms, sess, "192.0.2.1:443"),
		openEv(root, 1500*ms, sess, "/root/.claude/projects/x/s.jsonl", 1),
		connectEv(root, 1600*ms, sess, "192.0.2.1:443"),
		exitEv(root, 2000*ms, sess, 0),
	)
	var ids []string
	for _, e := range got {
		if e.Agent != nil {
			ids = append(ids, e.Kind+"="+e.Agent.SessionID)
		}
	}
	want := []string{"process.exec=", "net.connect=", "file.open=sess-late", "net.connect=sess-late", "process.exit=sess-late"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("session ids %q, want %q", ids, want)
	}
}

// toolBindingObserver binds the file events of a tool call's shell to its
// call, as the Claude Code observer does for a Bash tool process seeded
// from /proc: its role in the answer, the tool_use id resolved after.
type toolBindingObserver struct{ slowObserver }

func (o *toolBindingObserver) File(x agent.File) agent.Result {
	a := *x.Agent
	if len(x.Proc.Argv) > 1 && x.Proc.Argv[1] == "-c" {
		a.Role = event.RoleTool
		return agent.Result{Agent: &a, Resolve: func(ctx context.Context, c *event.Agent) {
			c.ToolUse = &event.ToolUse{ID: "toolu_seeded", Name: "Bash", Attribution: event.AttributionExact}
		}}
	}
	return agent.Result{Agent: &a}
}

// A tool call's shell running when the sensor started (seeded, its exec
// never seen) is bound to its call through its file events; its exit and
// connections, which the integration is not asked about, carry that
// binding too, as they would had its exec been seen. Its file event before
// the binding and the root's events keep theirs.
func TestSeededToolExitKeepsItsToolCall(t *testing.T) {
	r := newRig(t, Config{}, &toolBindingObserver{})
	seedBase(r)
	r.e.Seed([]*procfs.Proc{
		sproc(50, 20, 500, "/home/alice/.local/share/claude/versions/2.0.1", "claude"),
		sproc(60, 50, 600, "/usr/bin/bash", "/usr/bin/bash", "-c", "make test"),
	})
	tool, root := key(60, 600), key(50, 500)
	got := r.run(
		connectEv(tool, 1000*ms, sess, "192.0.2.1:443"),
		openEv(tool, 1500*ms, sess, "/tmp/out", 1),
		connectEv(tool, 1600*ms, sess, "192.0.2.1:443"),
		exitEv(tool, 2000*ms, sess, 0),
		exitEv(root, 2100*ms, sess, 0),
	)
	var seen []string
	for _, e := range got {
		if e.Agent == nil {
			continue
		}
		s := fmt.Sprintf("%s/%d=%s", e.Kind, e.Process.PID, e.Agent.Role)
		if e.Agent.ToolUse != nil {
			s += "+" + e.Agent.ToolUse.ID
		}
		seen = append(seen, s)
	}
	want := []string{"net.connect/60=descendant", "file.open/60=tool+toolu_seeded", "net.connect/60=tool+toolu_seeded",
		"process.exit/60=tool+toolu_seeded", "process.exit/50=root"}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("attributions %q, want %q", seen, want)
	}
}
