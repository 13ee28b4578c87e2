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
