package lineage

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

const ms = uint64(time.Millisecond)

// seedBase seeds init(1) <- sshd(10) <- bash(20).
func seedBase(r *rig) {
	r.e.Seed([]*procfs.Proc{
		sproc(20, 10, 200, "/usr/bin/bash", "-bash"),
		sproc(1, 0, 1, "/usr/lib/systemd/systemd", "/sbin/init"),
		sproc(10, 1, 100, "/usr/sbin/sshd", "sshd: alice"),
		{PID: 2, Key: key(2, 1), Kthread: true},
	})
}

// settle waits for the seed's hashes.
func settle(r *rig) {
	for _, ent := range r.e.t.byKey {
		if ent.bin != nil {
			<-ent.bin.done
		}
	}
}

func pids(ps []event.Process) []uint32 {
	var out []uint32
	for _, p := range ps {
		out = append(out, p.PID)
	}
	return out
}

func exes(ps []event.Process) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Exe)
	}
	return out
}

// claudeRoot is the session root exec: claude (50) started by bash (20).
func claudeRoot(kt uint64) sensor.Event {
	ev := execEv(key(50, 500), key(20, 200), kt, sess, "/home/alice/.local/share/claude/versions/2.0.1", "claude")
	ev.Exec.Recognised = sensor.AgentClaudeCode
	return ev
}

func TestExecChainAncestryAndIdentity(t *testing.T) {
	r := newRig(t, Config{EmitFork: true, Humans: map[string]event.Human{"alice": {Name: "Alice A", Email: "alice@example.com"}}}, nil)
	seedBase(r)
	settle(r)
	child := key(60, 600)
	got := r.run(
		claudeRoot(5000*ms),
		forkEv(child, key(50, 500), 6000*ms, sess),
		execEv(child, key(50, 500), 6001*ms, sess, "/usr/bin/bash", "bash", "-c", "env python3 x.py"),
		execEv(child, key(50, 500), 6002*ms, sess, "/usr/bin/env", "env", "python3", "x.py"),
		execEv(child, key(50, 500), 6003*ms, sess, "/usr/bin/python3.12", "python3", "x.py"),
		exitEv(child, 7000*ms, sess, 3),
	)
	kinds := []string{}
	for _, ev := range got {
		kinds = append(kinds, ev.Kind)
	}
	want := []string{"process.exec", "process.fork", "process.exec", "process.exec", "process.exec", "process.exit"}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("kinds = %v, want %v", kinds, want)
	}
	for i, ev := range got {
		if ev.Schema != event.Schema || ev.Host.BootID != testBoot {
			t.Errorf("event %d: schema=%q host=%+v", i, ev.Schema, ev.Host)
		}
		if len(ev.Partial) != 0 {
			t.Errorf("event %d %s partial %v", i, ev.Kind, ev.Partial)
		}
		if ev.Process.Binary == nil || ev.Process.Binary.SHA256 != "sha-of-"+ev.Process.Exe {
			t.Errorf("event %d: binary %+v", i, ev.Process.Binary)
		}
		for _, a := range ev.Ancestry {
			if a.Binary == nil || a.Binary.SHA256 != "sha-of-"+a.Exe {
				t.Errorf("event %d: ancestor %d binary %+v", i, a.PID, a.Binary)
			}
		}
	}
	root := got[0]
	if root.Time != bootWall.Add(5000*time.Millisecond) {
		t.Errorf("time = %v", root.Time)
	}
	if w := event.ExecID(testBoot, 50, 500*procfs.TicksToNs, 5000*ms); root.Process.ExecID != w {
		t.Errorf("root exec id = %s, want %s", root.Process.ExecID, w)
	}
	if !reflect.DeepEqual(pids(root.Ancestry), []uint32{20, 10, 1}) {
		t.Errorf("root ancestry = %v", pids(root.Ancestry))
	}
	if root.Agent == nil || root.Agent.Role != event.RoleRoot || root.Agent.Name != "claude-code" || root.Agent.RootExecID != root.Process.ExecID {
		t.Errorf("root agent = %+v", root.Agent)
	}
	id := root.Identity
	if id.User != "alice" || id.LoginUser != "alice" || id.Human == nil || id.Human.Email != "alice@example.com" || id.VerifiedBy != "config" {
		t.Errorf("identity = %+v", id)
	}

	fork := got[1]
	if fork.Process.ExecID != event.ExecID(testBoot, 60, 600*procfs.TicksToNs, 0) || fork.Process.Exe != root.Process.Exe {
		t.Errorf("fork image = %+v", fork.Process)
	}
	bash, env, py := got[2], got[3], got[4]
	// fork+exec: the new image's parent is claude, not the fork image.
	if bash.Process.ParentExecID != root.Process.ExecID || !reflect.DeepEqual(pids(bash.Ancestry), []uint32{50, 20, 10, 1}) {
		t.Errorf("bash parent %s ancestry %v", bash.Process.ParentExecID, pids(bash.Ancestry))
	}
	// exec chain: each image's parent is the previous image.
	if env.Process.ParentExecID != bash.Process.ExecID || py.Process.ParentExecID != env.Process.ExecID {
		t.Errorf("chain parents: env<-%s py<-%s", env.Process.ParentExecID, py.Process.ParentExecID)
	}
	wantExes := []string{"/usr/bin/env", "/usr/bin/bash", root.Process.Exe, "/usr/bin/bash", "/usr/sbin/sshd", "/usr/lib/systemd/systemd"}
	if !reflect.DeepEqual(exes(py.Ancestry), wantExes) {
		t.Errorf("python ancestry = %q", exes(py.Ancestry))
	}
	if py.Agent == nil || py.Agent.Role != event.RoleDescendant || py.Agent.RootExecID != root.Process.ExecID {
		t.Errorf("python agent = %+v", py.Agent)
	}
	exit := got[5]
	if exit.Process.ExecID != py.Process.ExecID || exit.Exit.Code != 3 {
		t.Errorf("exit = %+v %+v", exit.Process, exit.Exit)
	}
	// Each ancestor carries its argv and user.
	if a := py.Ancestry[4]; a.Argv[0] != "sshd: alice" || a.User != "alice" {
		t.Errorf("sshd ancestor = %+v", a)
	}
	// Same binary hashed once per identity: bash ran three times (seed,
	// two execs), all with the same stat and path.
	if n := r.bins.calls["/usr/bin/bash"]; n != 1 {
		t.Errorf("bash inspected %d times", n)
	}
}

func TestPidReuse(t *testing.T) {
	r := newRig(t, Config{ExitGrace: 5 * time.Second}, nil)
	seedBase(r)
	old, reused := key(70, 700), key(70, 900)
	got := r.run(
		claudeRoot(1000*ms),
		forkEv(old, key(50, 500), 7000*ms, sess),
		execEv(old, key(50, 500), 7001*ms, sess, "/usr/bin/old", "old"),
		exitEv(old, 7002*ms, sess, 0),
		// Same pid, new process, forked by bash outside... then in session
		// via a different parent: the sshd.
		forkEv(reused, key(10, 100), 9000*ms, sess),
		execEv(reused, key(10, 100), 9001*ms, sess, "/usr/bin/new", "new"),
		// A late event of the old process (within grace) still finds it.
		openEv(old, 7003*ms, sess, "/tmp/late", 0),
		openEv(reused, 9002*ms, sess, "/tmp/new", 1),
	)
	byPath := map[string]*event.Event{}
	for _, ev := range got {
		if ev.File != nil {
			byPath[ev.File.Path] = ev
		}
	}
	late, cur := byPath["/tmp/late"], byPath["/tmp/new"]
	if late == nil || cur == nil {
		t.Fatalf("missing file events: %v", got)
	}
	if late.Process.Exe != "/usr/bin/old" || cur.Process.Exe != "/usr/bin/new" {
		t.Errorf("late=%q cur=%q", late.Process.Exe, cur.Process.Exe)
	}
	if late.Process.ExecID == cur.Process.ExecID {
		t.Error("pid reuse gave the same exec id")
	}
	if !reflect.DeepEqual(pids(late.Ancestry), []uint32{50, 20, 10, 1}) || !reflect.DeepEqual(pids(cur.Ancestry), []uint32{10, 1}) {
		t.Errorf("ancestries %v / %v", pids(late.Ancestry), pids(cur.Ancestry))
	}
	if late.File.Mode != event.ModeRead || cur.File.Mode != event.ModeWrite {
		t.Errorf("modes %q %q", late.File.Mode, cur.File.Mode)
	}
}

func TestReparentKeepsBirthAncestry(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	d := key(80, 800)
	got := r.run(
		claudeRoot(1000*ms),
		forkEv(d, key(50, 500), 2000*ms, sess),
		// claude exited; the daemon was reparented to init and execs.
		exitEv(key(50, 500), 2500*ms, sess, 0),
		execEv(d, key(1, 1), 3000*ms, sess, "/usr/bin/daemon", "daemon"),
	)
	ex := got[len(got)-1]
	if ex.Kind != event.KindProcessExec {
		t.Fatalf("last = %s", ex.Kind)
	}
	init := event.ExecID(testBoot, 1, 1*procfs.TicksToNs, 1*procfs.TicksToNs)
	if ex.Process.ParentExecID != got[0].Process.ExecID {
		t.Errorf("parent = %s, want the claude image %s", ex.Process.ParentExecID, got[0].Process.ExecID)
	}
	if ex.Process.CurrentParentExecID != init || ex.Process.PPID != 1 {
		t.Errorf("current parent = %s ppid %d, want init %s", ex.Process.CurrentParentExecID, ex.Process.PPID, init)
	}
	if !reflect.DeepEqual(pids(ex.Ancestry), []uint32{50, 20, 10, 1}) {
		t.Errorf("ancestry = %v", pids(ex.Ancestry))
	}
	if ex.Agent == nil || ex.Agent.Role != event.RoleDescendant {
		t.Errorf("agent = %+v", ex.Agent)
	}
}

func TestParentArrivesLate(t *testing.T) {
	r := newRig(t, Config{PendingTimeout: 100 * time.Millisecond}, nil)
	seedBase(r)
	mid, leaf := key(90, 900), key(91, 910)
	got := r.run(
		claudeRoot(1000*ms),
		// The grandchild's exec and file event overtake its parent's fork
		// and exec (different CPUs).
		execEv(leaf, mid, 2002*ms, sess, "/usr/bin/leaf", "leaf"),
		openEv(leaf, 2003*ms, sess, "/tmp/leaf", 0),
		forkEv(mid, key(50, 500), 2000*ms, sess),
		execEv(mid, key(50, 500), 2001*ms, sess, "/usr/bin/mid", "mid"),
	)
	var order []string
	for _, ev := range got {
		order = append(order, ev.Kind+":"+ev.Process.Exe)
		if len(ev.Partial) != 0 {
			t.Errorf("%s partial %v", ev.Kind, ev.Partial)
		}
	}
	// The leaf's exec cannot go before the exec of its parent image... it
	// links to the forked image and waits only for that.
	want := []string{
		"process.exec:/home/alice/.local/share/claude/versions/2.0.1",
		"process.exec:/usr/bin/leaf",
		"file.open:/usr/bin/leaf",
		"process.exec:/usr/bin/mid",
	}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order = %q", order)
	}
	leafEv := got[1]
	if !reflect.DeepEqual(pids(leafEv.Ancestry), []uint32{90, 50, 20, 10, 1}) {
		t.Errorf("leaf ancestry = %v", pids(leafEv.Ancestry))
	}
	s := r.e.Stats()
	if s.Pending != 0 || s.Misses != 0 || s.PendingTimeouts != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestParentNeverArrives(t *testing.T) {
	r := newRig(t, Config{PendingTimeout: 100 * time.Millisecond}, nil)
	seedBase(r)
	orphan := key(95, 950)
	got := r.run(
		claudeRoot(1000*ms),
		execEv(orphan, key(94, 940), 2000*ms, sess, "/usr/bin/orphan", "orphan"),
		openEv(orphan, 2001*ms, sess, "/tmp/o", 0),
		// Kernel time moves past the timeout: the orphan goes out.
		openEv(key(50, 500), 2200*ms, sess, "/tmp/marker", 0),
	)
	var order []string
	for _, ev := range got {
		order = append(order, ev.Kind+":"+ev.Process.Exe)
	}
	want := []string{
		"process.exec:/home/alice/.local/share/claude/versions/2.0.1",
		"process.exec:/usr/bin/orphan",
		"file.open:/usr/bin/orphan",
		"file.open:/home/alice/.local/share/claude/versions/2.0.1",
	}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("order = %q", order)
	}
	o := got[1]
	if !slices.Contains(o.Partial, event.PartialAncestry) || len(o.Ancestry) != 0 || o.Process.Binary == nil {
		t.Errorf("orphan exec: partial=%v ancestry=%v", o.Partial, pids(o.Ancestry))
	}
	s := r.e.Stats()
	if s.PendingTimeouts != 1 || s.Misses != 2 || s.Pending != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestPendingBoundedAndFlushedAtEnd(t *testing.T) {
	r := newRig(t, Config{MaxPending: 4, PendingTimeout: time.Hour}, nil)
	seedBase(r)
	var evs []sensor.Event
	for i := range uint32(10) {
		evs = append(evs, openEv(key(1000+i, 5), 1000*ms, sess, "/tmp/x", 0))
	}
	got := r.run(evs...)
	if len(got) != 10 {
		t.Fatalf("%d events, want 10 (nothing accepted is lost)", len(got))
	}
	for i, ev := range got {
		if ev.Process.PID != 1000+uint32(i) || !slices.Contains(ev.Partial, event.PartialProcess) {
			t.Errorf("event %d: pid %d partial %v", i, ev.Process.PID, ev.Partial)
		}
	}
	s := r.e.Stats()
	if s.PendingOverflow != 6 || s.PendingTimeouts != 4 || s.Misses != 10 {
		t.Errorf("stats = %+v", s)
	}
}

func TestEvictionUnderPressure(t *testing.T) {
	r := newRig(t, Config{MaxProcesses: 16, Scope: ScopeAll}, nil)
	seedBase(r)
	var evs []sensor.Event
	kt := 1000 * ms
	// 40 children of bash; every other one exits.
	for i := range uint32(40) {
		k := key(2000+i, 1000)
		kt += ms
		evs = append(evs, forkEv(k, key(20, 200), kt, sensor.SessionRef{}))
		if i%2 == 1 {
			kt += ms
			evs = append(evs, exitEv(k, kt, sensor.SessionRef{}, 0))
		}
	}
	// The last live child is still fully known.
	last := key(2038, 1000)
	evs = append(evs, openEv(last, kt+ms, sensor.SessionRef{}, "/tmp/last", 0))
	got := r.run(evs...)
	s := r.e.Stats()
	if s.Live+s.Exited > 16 {
		t.Errorf("table holds %d > 16", s.Live+s.Exited)
	}
	if s.Evictions == 0 {
		t.Error("no evictions counted")
	}
	// Exited images go first: only the one that exited after the last
	// insertion can remain.
	if s.Exited > 1 {
		t.Errorf("%d exited images kept while live ones were evicted", s.Exited)
	}
	ev := got[len(got)-1]
	if ev.Kind != event.KindFileOpen || ev.Process.PID != 2038 || len(ev.Partial) != 0 ||
		!reflect.DeepEqual(pids(ev.Ancestry), []uint32{20, 10, 1}) {
		t.Errorf("last event %s pid %d partial %v ancestry %v", ev.Kind, ev.Process.PID, ev.Partial, pids(ev.Ancestry))
	}
}

func TestExitGraceExpires(t *testing.T) {
	r := newRig(t, Config{ExitGrace: time.Second, PendingTimeout: 10 * time.Millisecond}, nil)
	seedBase(r)
	c := key(99, 990)
	got := r.run(
		claudeRoot(1000*ms),
		forkEv(c, key(50, 500), 2000*ms, sess),
		exitEv(c, 2001*ms, sess, 0),
		openEv(key(50, 500), 9000*ms, sess, "/tmp/tick", 0), // time passes
		openEv(c, 9001*ms, sess, "/tmp/too-late", 0),
	)
	last := got[len(got)-1]
	if last.File.Path != "/tmp/too-late" || !slices.Contains(last.Partial, event.PartialProcess) {
		t.Errorf("too-late event: %+v partial %v", last.File, last.Partial)
	}
	if s := r.e.Stats(); s.Expired != 1 {
		t.Errorf("expired = %d", s.Expired)
	}
}

func TestSessionRootAncestorsFromProc(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.e.Seed([]*procfs.Proc{sproc(1, 0, 1, "/sbin/init", "init")})
	// tmux (30) and a new shell (31) started after the sensor, outside
	// any session: only /proc knows them.
	r.procs.procs[30] = sproc(30, 1, 300, "/usr/bin/tmux", "tmux")
	r.procs.procs[31] = sproc(31, 30, 310, "/usr/bin/zsh", "-zsh")
	ev := execEv(key(50, 500), key(31, 310), 5000*ms, sess, "/opt/claude", "claude")
	ev.Exec.Recognised = sensor.AgentClaudeCode
	got := r.run(ev, openEv(key(77, 1), 5001*ms, sensor.SessionRef{}, "/etc/passwd", 0))
	if len(got) != 1 {
		t.Fatalf("%d events; a non-session event must not be reported in session scope", len(got))
	}
	if !reflect.DeepEqual(exes(got[0].Ancestry), []string{"/usr/bin/zsh", "/usr/bin/tmux", "/sbin/init"}) || len(got[0].Partial) != 0 {
		t.Errorf("ancestry = %q partial %v", exes(got[0].Ancestry), got[0].Partial)
	}
	if s := r.e.Stats(); s.FromProc != 2 {
		t.Errorf("from proc = %d", s.FromProc)
	}
	// A pid reused in /proc is not taken for the parent.
	r2 := newRig(t, Config{PendingTimeout: time.Millisecond}, nil)
	r2.e.Seed([]*procfs.Proc{sproc(1, 0, 1, "/sbin/init", "init")})
	r2.procs.procs[31] = sproc(31, 1, 999, "/usr/bin/other", "other")
	got = r2.run(ev)
	if len(got) != 1 || !slices.Contains(got[0].Partial, event.PartialAncestry) || len(got[0].Ancestry) != 0 {
		t.Errorf("reused pid: partial %v ancestry %v", got[0].Partial, exes(got[0].Ancestry))
	}
}

// slowObserver marks bash -c tools and completes their tool_use later.
type slowObserver struct {
	release chan struct{}
	// stubborn ignores the context: a misbehaving resolver.
	stubborn bool
	exits    []uint32
	files    []string
}

func (o *slowObserver) Exec(x AgentExec) AgentResult {
	if len(x.Proc.Argv) > 1 && x.Proc.Argv[1] == "-c" {
		sid, _ := x.Env("CLAUDE_CODE_SESSION_ID")
		a := *x.ParentAgent
		a.Role, a.SessionID = event.RoleTool, sid
		return AgentResult{Agent: &a, Resolve: func(ctx context.Context, a *event.Agent) {
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
	return AgentResult{}
}

func (o *slowObserver) File(x AgentFile) AgentResult {
	o.files = append(o.files, x.File.Path)
	if x.File.Path == "/work/a.go" {
		a := *x.Agent
		a.ToolUse = &event.ToolUse{ID: "toolu_2", Name: "Write"}
		return AgentResult{Agent: &a}
	}
	return AgentResult{}
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

func TestHashingNeverStalls(t *testing.T) {
	r := newRig(t, Config{EnrichWait: 50 * time.Millisecond}, nil)
	r.bins.block = map[string]chan struct{}{"/usr/bin/stuck": make(chan struct{})}
	seedBase(r)
	got := r.run(
		claudeRoot(1000*ms),
		execEv(key(60, 600), key(50, 500), 2001*ms, sess, "/usr/bin/stuck", "stuck"),
	)
	b := got[1].Process.Binary
	if b == nil || b.Verdict != event.VerdictError || !strings.Contains(b.Reason, "did not finish") || b.Inode != uint64(len("/usr/bin/stuck")) {
		t.Errorf("stuck binary = %+v", b)
	}
	if !slices.Contains(got[1].Partial, event.PartialBinary) {
		t.Errorf("partial = %v", got[1].Partial)
	}
	if s := r.e.Stats(); s.HashWaitTimeouts != 1 {
		t.Errorf("hash wait timeouts = %d", s.HashWaitTimeouts)
	}
	close(r.bins.block["/usr/bin/stuck"])
}

func TestEventKindsAndLoss(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	c := key(50, 500)
	got := r.run(
		claudeRoot(1000*ms),
		connectEv(c, 1001*ms, sess, "[2001:db8::1]:443"),
		connectEv(c, 1002*ms, sess, "[::ffff:10.0.0.1]:53"),
		sensor.Event{Header: sensor.Header{Kind: sensor.KindUnlink, KtimeNs: 1003 * ms, Proc: c, Session: sess},
			File: &sensor.File{Op: sensor.FileUnlink, Path: "/tmp/gone"}},
		sensor.Event{Header: sensor.Header{Kind: sensor.KindRename, KtimeNs: 1004 * ms, Proc: c, Session: sess},
			File: &sensor.File{Op: sensor.FileRename, Path: "/tmp/a", NewPath: "/tmp/b"}},
		sensor.Event{Header: sensor.Header{Kind: sensor.KindChmod, KtimeNs: 1005 * ms, Proc: c, Session: sess},
			File: &sensor.File{Op: sensor.FileChmod, Path: "/tmp/b", Mode: 0o755}},
		sensor.Event{Header: sensor.Header{Kind: sensor.KindOpen, KtimeNs: 1006 * ms, Proc: c, Session: sess},
			File: &sensor.File{Op: sensor.FileOpen, Path: "/tmp/new", Flags: 0o102, Created: true, Mode: 0o644}},
		sensor.Event{Header: sensor.Header{Kind: sensor.KindLoss, KtimeNs: 1007 * ms},
			Loss: &sensor.Loss{Where: "ringbuf", Of: sensor.KindOpen, Count: 12}},
	)
	if len(got) != 8 {
		t.Fatalf("%d events", len(got))
	}
	n := got[1].Net
	if got[1].Kind != event.KindNetConnect || n.Protocol != "tcp" || n.Family != "ipv6" || n.DstIP != "2001:db8::1" || n.DstPort != 443 || n.Result != -115 {
		t.Errorf("net = %+v", n)
	}
	if got[2].Net.DstIP != "10.0.0.1" {
		t.Errorf("mapped v4 = %q", got[2].Net.DstIP)
	}
	if got[3].Kind != event.KindFileDelete || got[4].Kind != event.KindFileRename || got[4].File.NewPath != "/tmp/b" {
		t.Errorf("delete/rename = %s %s %+v", got[3].Kind, got[4].Kind, got[4].File)
	}
	if got[5].Kind != event.KindFileChmod || got[5].File.Perm == nil || *got[5].File.Perm != 0o755 {
		t.Errorf("chmod = %+v", got[5].File)
	}
	if f := got[6].File; f.Mode != event.ModeReadWrite || !f.Created || *f.Perm != 0o644 {
		t.Errorf("create = %+v", f)
	}
	l := got[7]
	if l.Kind != event.KindSensorLoss || l.Loss.Where != "ringbuf" || l.Loss.Of != "open" || l.Loss.Count != 12 || l.Process != nil {
		t.Errorf("loss = %+v %+v", l, l.Loss)
	}
}

func TestDeterministicIDsAcrossRuns(t *testing.T) {
	evs := []sensor.Event{claudeRoot(1000 * ms), openEv(key(50, 500), 1001*ms, sess, "/x", 0)}
	var ids [2][]string
	for i := range 2 {
		r := newRig(t, Config{InstanceID: "replay-1"}, nil)
		seedBase(r)
		for _, ev := range r.run(evs...) {
			ids[i] = append(ids[i], ev.Time.String()+"/"+ev.Process.ExecID)
		}
	}
	if !reflect.DeepEqual(ids[0], ids[1]) || len(ids[0]) != 2 {
		t.Errorf("ids differ: %v vs %v", ids[0], ids[1])
	}
}

func TestConfigAndDepsErrors(t *testing.T) {
	d := Deps{Host: fakeHost{}, Boot: fakeBoot{}, Proc: &fakeProcs{}, Binaries: &fakeBins{}, Users: fakeUsers{}}
	cases := []struct {
		cfg  Config
		deps Deps
		want string
	}{
		{Config{}, d, "instance id"},
		{Config{InstanceID: "x", Scope: "some"}, d, `scope "some"`},
		{Config{InstanceID: "x", MaxProcesses: 3}, d, "below the minimum"},
		{Config{InstanceID: "x", ExitGrace: -1}, d, "exit grace"},
		{Config{InstanceID: "x"}, Deps{Host: fakeHost{}}, "missing dependencies: [Boot Proc Binaries Users]"},
	}
	for _, c := range cases {
		if _, err := New(c.cfg, c.deps, quietLog()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	r := newRig(t, Config{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan sensor.Event)
	done := make(chan error)
	go func() { done <- r.e.Run(ctx, in, make(chan *event.Event)) }()
	in <- claudeRoot(1000 * ms) // accepted; its output is never read
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run = %v", err)
	}
}

func TestExecAfterPlaceholderFindsParent(t *testing.T) {
	r := newRig(t, Config{PendingTimeout: 10 * time.Millisecond}, nil)
	seedBase(r)
	k := key(66, 660)
	got := r.run(
		claudeRoot(1000*ms),
		openEv(k, 1001*ms, sess, "/tmp/early", 0), // its fork was lost
		openEv(key(50, 500), 2000*ms, sess, "/tmp/tick", 0),
		execEv(k, key(50, 500), 2001*ms, sess, "/usr/bin/later", "later"),
	)
	early, ex := got[1], got[3]
	if early.File.Path != "/tmp/early" || !slices.Contains(early.Partial, event.PartialProcess) {
		t.Errorf("early = %+v partial %v", early.File, early.Partial)
	}
	if ex.Kind != event.KindProcessExec || len(ex.Partial) != 0 || !reflect.DeepEqual(pids(ex.Ancestry), []uint32{50, 20, 10, 1}) {
		t.Errorf("exec after placeholder: partial %v ancestry %v", ex.Partial, pids(ex.Ancestry))
	}
}

func TestExecRacingTheSeed(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	// claude exec'd after the programs attached but before the /proc
	// scan: the seed already holds its new image.
	r.e.Seed([]*procfs.Proc{sproc(50, 20, 500, "/home/alice/.local/share/claude/versions/2.0.1", "claude")})
	got := r.run(claudeRoot(1000 * ms))
	if a := pids(got[0].Ancestry); !reflect.DeepEqual(a, []uint32{20, 10, 1}) {
		t.Errorf("ancestry = %v; the seeded copy of the image must not be its parent", a)
	}
}

func TestEventsBeforeTheirFork(t *testing.T) {
	r := newRig(t, Config{PendingTimeout: time.Hour, EmitFork: true}, nil)
	seedBase(r)
	k := key(67, 670)
	got := r.run(
		claudeRoot(1000*ms),
		// The child's open and connect overtake its fork (another CPU).
		openEv(k, 1002*ms, sess, "/tmp/first", 0),
		connectEv(k, 1003*ms, sess, "[::1]:80"),
		forkEv(k, key(50, 500), 1001*ms, sess),
	)
	var kinds []string
	for _, ev := range got {
		kinds = append(kinds, ev.Kind)
		if len(ev.Partial) != 0 {
			t.Errorf("%s partial %v", ev.Kind, ev.Partial)
		}
	}
	want := []string{"process.exec", "process.fork", "file.open", "net.connect"}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("kinds = %v, want %v", kinds, want)
	}
	if f := got[2]; f.Process.ExecID != got[1].Process.ExecID || !reflect.DeepEqual(pids(f.Ancestry), []uint32{50, 20, 10, 1}) {
		t.Errorf("open: process %s ancestry %v", f.Process.ExecID, pids(f.Ancestry))
	}
	if s := r.e.Stats(); s.PendingTimeouts != 0 || s.Misses != 0 {
		t.Errorf("stats %+v", s)
	}
}

// blockingBins blocks background requests until released.
type blockingBins struct {
	fakeBins
	bg chan struct{}
}

func (b *blockingBins) Inspect(ctx context.Context, req BinaryRequest) *event.Binary {
	if req.Background {
		<-b.bg
	}
	return b.result(req)
}

func TestLiveHashNotBehindSeed(t *testing.T) {
	bins := &blockingBins{bg: make(chan struct{})}
	defer close(bins.bg)
	e, err := New(Config{InstanceID: "t", EnrichWait: 200 * time.Millisecond}, Deps{
		Host: fakeHost{}, Boot: fakeBoot{}, Proc: &fakeProcs{}, Binaries: bins, Users: fakeUsers{},
	}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, e: e}
	seedBase(r) // every seed hash is stuck
	// claude's exec of bash shares bash's binary identity with the seed.
	ev := execEv(key(50, 500), key(20, 200), 1000*ms, sess, "/usr/bin/bash", "bash")
	ev.Exec.Recognised = sensor.AgentClaudeCode
	got := r.run(ev)
	if b := got[0].Process.Binary; b == nil || b.SHA256 != "sha-of-/usr/bin/bash" {
		t.Errorf("live binary = %+v", b)
	}
	// The stuck seed hashes are bounded: the ancestors say so.
	if a := got[0].Ancestry[0].Binary; a == nil || a.Verdict != event.VerdictError || !strings.Contains(a.Reason, "did not finish") {
		t.Errorf("stuck ancestor binary = %+v", a)
	}
}

func TestKernelStartedProcess(t *testing.T) {
	r := newRig(t, Config{Scope: ScopeAll}, nil)
	seedBase(r)
	kw := &procfs.Proc{PID: 40, PPID: 2, Key: key(40, 3), Kthread: true, Comm: "kworker/u8:1"}
	r.e.Seed([]*procfs.Proc{kw})
	got := r.run(execEv(key(41, 4000), key(40, 3), 40*ms, sensor.SessionRef{}, "/usr/sbin/modprobe", "modprobe", "-q", "fs-x"))
	ev := got[0]
	if len(ev.Partial) != 0 || !reflect.DeepEqual(pids(ev.Ancestry), []uint32{40, 2}) {
		t.Errorf("usermode helper: partial %v ancestry %v", ev.Partial, pids(ev.Ancestry))
	}
}
