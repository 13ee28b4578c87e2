package lineage

import (
	"context"
	"reflect"
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
		sensor.Event{Header: sensor.Header{Kind: sensor.KindLoss, KtimeNs: 1008 * ms},
			Loss: &sensor.Loss{Where: "skipped", What: "file and network records of one call (fileio_sys_enter)", Count: 3}},
		sensor.Event{Header: sensor.Header{Kind: sensor.KindLoss, KtimeNs: 1009 * ms, Session: sensor.SessionRef{Root: sess.Root}},
			Loss: &sensor.Loss{Where: "session-budget", What: "file and network records of the session", Count: 4096}},
	)
	if len(got) != 10 {
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
	if l := got[8].Loss; l.Where != "skipped" || l.Of != "file and network records of one call (fileio_sys_enter)" || l.Count != 3 || l.RootExecID != "" {
		t.Errorf("skipped-run loss = %+v", l)
	}
	// One session's loss names the session by its root's exec id.
	if l := got[9]; l.Loss.Where != "session-budget" || l.Loss.RootExecID != got[0].Process.ExecID || l.Loss.Count != 4096 || l.Agent != nil {
		t.Errorf("session-budget loss = %+v, want root_exec_id %s", l.Loss, got[0].Process.ExecID)
	}
}

func TestDeterministicIDsAcrossRuns(t *testing.T) {
	evs := []sensor.Event{claudeRoot(1000 * ms), openEv(key(50, 500), 1001*ms, sess, "/x", 0)}
	var ids [2][]string
	for i := range 2 {
		r := newRig(t, Config{}, nil)
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
		{Config{Scope: "some"}, d, `scope "some"`},
		{Config{MaxProcesses: 3}, d, "below the minimum"},
		{Config{ExitGrace: -1}, d, "exit grace"},
		{Config{}, Deps{Host: fakeHost{}}, "missing dependencies: [Boot Proc Binaries Users]"},
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
