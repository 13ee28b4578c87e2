package lineage

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

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
