package lineage

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// An engine restored from a snapshot taken between two steps (and carried
// through JSON, as a capture does) builds from the later steps the very
// events the live engine built: processes it knew from their exec keep
// their exec ids, ancestry, binaries and session, and a process that
// exited before the snapshot is still found by its late events.
func TestSnapshotRestoreBuildsTheSameEvents(t *testing.T) {
	cfg := Config{Scope: ScopeAll, EmitFork: true}
	live := newRig(t, cfg, nil)
	seedBase(live)
	settle(live)
	tool := key(60, 600)
	gone := key(61, 610)
	child := key(70, 700)
	before := []sensor.Event{
		claudeRoot(500 * ms),
		forkEv(tool, key(50, 500), 600*ms, sess),
		execEv(tool, key(50, 500), 601*ms, sess, "/usr/bin/bash", "bash", "-c", "make"),
		forkEv(gone, key(50, 500), 610*ms, sess),
		execEv(gone, key(50, 500), 611*ms, sess, "/usr/bin/true", "true"),
		exitEv(gone, 612*ms, sess, 0),
	}
	after := []sensor.Event{
		openEv(gone, 650*ms, sess, "/tmp/late", 0), // after its exit, within the grace
		forkEv(child, tool, 700*ms, sess),
		execEv(child, tool, 701*ms, sess, "/usr/bin/make", "make"),
		openEv(child, 702*ms, sess, "/src/Makefile", 0),
		exitEv(child, 703*ms, sess, 0),
		exitEv(tool, 704*ms, sess, 0),
		exitEv(key(50, 500), 705*ms, sess, 0),
	}
	var (
		mu    sync.Mutex
		snap  *Snapshot
		facts []Fact
	)
	live.e.RecordSteps(func(s Step) {
		if s.Kind == StepRaw && s.Raw.KtimeNs == after[0].KtimeNs && snap == nil {
			snap = live.e.Snapshot(func(f Fact) { mu.Lock(); facts = append(facts, f); mu.Unlock() })
		}
	})
	// The emitter's part (verdicts) as it stood after each event went out.
	in := make(chan sensor.Event, len(before)+len(after))
	for _, ev := range append(append([]sensor.Event{}, before...), after...) {
		in <- ev
	}
	close(in)
	var all []*event.Event
	var verdicts [][]SnapVerdict
	if err := live.e.RunFunc(context.Background(), in, func(ev *event.Event) {
		all = append(all, ev)
		verdicts = append(verdicts, live.e.SnapshotVerdicts())
	}); err != nil {
		t.Fatal(err)
	}
	if snap == nil {
		t.Fatal("no snapshot taken")
	}
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Images) == 0 || len(back.Roots) != 1 || len(back.Exited) == 0 {
		t.Fatalf("snapshot: %d images, %d roots, %d exited", len(back.Images), len(back.Roots), len(back.Exited))
	}
	// The verdicts settled by the last event the live engine built
	// before the snapshot.
	nBefore := 0
	for _, ev := range all {
		if ev.Time.Before(live.e.wall(after[0].KtimeNs)) {
			nBefore++
		}
	}
	if nBefore == 0 || len(verdicts[nBefore-1]) != 1 {
		t.Fatalf("%d events before the snapshot, verdicts %+v", nBefore, verdicts)
	}
	back.Verdicts = verdicts[nBefore-1]
	book := NewFactBook()
	mu.Lock()
	for _, f := range facts {
		book.Add(f)
	}
	mu.Unlock()
	replay := newRig(t, cfg, nil)
	if err := replay.e.Restore(&back, book.Snapshot); err != nil {
		t.Fatal(err)
	}
	got := replay.run(after...)
	if len(got) != len(all)-nBefore {
		t.Fatalf("replay built %d events, live %d after the snapshot", len(got), len(all)-nBefore)
	}
	want := all[len(all)-len(got):]
	if want[0].Time != replay.e.wall(after[0].KtimeNs) {
		t.Fatalf("live events of the later steps start at %v, not %v", want[0].Time, replay.e.wall(after[0].KtimeNs))
	}
	for i := range got {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[i])
		if string(g) != string(w) {
			t.Fatalf("event %d differs:\nreplay %s\nlive   %s", i, g, w)
		}
	}
	var lateOpen *event.Event
	for _, ev := range got {
		if ev.Kind == event.KindFileOpen && ev.Process.PID == gone.PID {
			lateOpen = ev
		}
	}
	if lateOpen == nil || len(lateOpen.Partial) > 0 || lateOpen.Agent == nil {
		t.Fatalf("the late event of the exited process: %+v", lateOpen)
	}
	// A restore into an engine that already holds processes is refused.
	if err := live.e.Restore(&back, book.Snapshot); err == nil {
		t.Fatal("restore over a table accepted")
	}
}

// A window of a longer run (a tee) leaves at its end what is still parked
// for a parent: live, it went out after the window.
func TestLeaveAtEndForcesNothingOut(t *testing.T) {
	for _, leave := range []bool{false, true} {
		r := newRig(t, Config{Scope: ScopeAll}, nil)
		seedBase(r)
		settle(r)
		// An open by a process whose fork and exec never arrive.
		orphan := openEv(key(99, 990), 1000*ms, sensor.SessionRef{}, "/tmp/x", 0)
		if leave {
			r.e.LeaveAtEnd()
		}
		steps := make(chan Step, 1)
		steps <- Step{Kind: StepRaw, Raw: &orphan}
		close(steps)
		out := make(chan *event.Event, 4)
		if err := r.e.RunSteps(context.Background(), steps, out); err != nil {
			t.Fatal(err)
		}
		close(out)
		n := 0
		for range out {
			n++
		}
		if want := map[bool]int{false: 1, true: 0}[leave]; n != want {
			t.Fatalf("leave %v: %d events, want %d", leave, n, want)
		}
	}
}
