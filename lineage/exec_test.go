package lineage

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

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

// The kernel sends no fork record for a child that execs under the parent
// it was forked by (bpf/lib/forks.h): the exec alone must build the same
// process, ancestry and attribution as fork then exec, including what the
// fork image inherited (cwd, cgroup) when the child is gone before /proc
// can be read.
func TestExecWithoutForkRecordEqualsForkThenExec(t *testing.T) {
	child := key(60, 600)
	build := func(withFork bool) *event.Event {
		r := newRig(t, Config{}, nil)
		r.procs.cwd = map[uint32]string{50: "/home/alice/project"} // the child's /proc is gone
		seedBase(r)
		settle(r)
		evs := []sensor.Event{claudeRoot(5000 * ms)}
		if withFork {
			evs = append(evs, forkEv(child, key(50, 500), 6000*ms, sess))
		}
		evs = append(evs, execEv(child, key(50, 500), 6001*ms, sess, "/usr/bin/true", "true"))
		for _, ev := range r.run(evs...) {
			if ev.Kind == event.KindProcessExec && ev.Process.PID == child.PID {
				return ev
			}
		}
		t.Fatalf("no exec of the child (fork record %v)", withFork)
		return nil
	}
	with, without := build(true), build(false)
	if without.Process.Cwd != "/home/alice/project" {
		t.Errorf("cwd %q, want the parent's", without.Process.Cwd)
	}
	for name, pair := range map[string][2]any{
		"process":  {with.Process, without.Process},
		"ancestry": {with.Ancestry, without.Ancestry},
		"agent":    {with.Agent, without.Agent},
		"partial":  {with.Partial, without.Partial},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s differs:\nfork+exec %+v\nexec      %+v", name, pair[0], pair[1])
		}
	}
}

// The kernel's count of unreported repeat opens reaches the exit event.
func TestExitCarriesRepeatedOpens(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	exit := exitEv(key(50, 500), 6000*ms, sess, 0)
	exit.Exit.RepeatedOpens = 4
	for _, ev := range r.run(claudeRoot(5000*ms), exit) {
		if ev.Kind == event.KindProcessExit {
			if ev.Exit == nil || ev.Exit.RepeatedOpens != 4 {
				t.Errorf("exit %+v, want 4 repeated opens", ev.Exit)
			}
			return
		}
	}
	t.Fatal("no exit event")
}

// Siblings' events share their parent's ancestry once it is complete (every
// hash in): the same slice, equal to what each would have built.
func TestSiblingsShareAncestry(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	settle(r)
	// The root's hash is known: no ancestor is still being hashed.
	claude := "/home/alice/.local/share/claude/versions/2.0.1"
	r.bins.mu.Lock()
	r.bins.cache[claude] = r.bins.result(BinaryRequest{Path: claude})
	r.bins.mu.Unlock()
	a, b := key(71, 710), key(72, 720)
	got := r.run(
		claudeRoot(1000*ms),
		forkEv(a, key(50, 500), 7000*ms, sess),
		execEv(a, key(50, 500), 7001*ms, sess, "/usr/bin/a", "a"),
		forkEv(b, key(50, 500), 7010*ms, sess),
		execEv(b, key(50, 500), 7011*ms, sess, "/usr/bin/b", "b"),
		openEv(a, 7020*ms, sess, "/tmp/a", 0),
		openEv(b, 7021*ms, sess, "/tmp/b", 0),
	)
	byPath := map[string]*event.Event{}
	for _, ev := range got {
		if ev.File != nil {
			byPath[ev.File.Path] = ev
		}
	}
	ea, eb := byPath["/tmp/a"], byPath["/tmp/b"]
	if ea == nil || eb == nil {
		t.Fatalf("missing file events: %v", got)
	}
	if !reflect.DeepEqual(pids(ea.Ancestry), []uint32{50, 20, 10, 1}) || !reflect.DeepEqual(ea.Ancestry, eb.Ancestry) {
		t.Fatalf("ancestries %v / %v", pids(ea.Ancestry), pids(eb.Ancestry))
	}
	if &ea.Ancestry[0] != &eb.Ancestry[0] {
		t.Error("siblings' events do not share the ancestry")
	}
}
