package lineage

import (
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

type fixedPosture struct{ p *event.Posture }

func (f fixedPosture) Latest() *event.Posture { return f.p }

// Events from outside the kernel are emitted in line with the kernel's,
// every event carries the posture in force, and EmitAtEnd comes last.
func TestEmitAndPosture(t *testing.T) {
	r := newRig(t, Config{}, nil)
	pst := &event.Posture{SampledAt: bootWall, Compliant: false, Failed: []string{"firewall"}}
	r.e.deps.Posture = fixedPosture{pst}

	start := &event.Event{Kind: event.KindSensorStart, Sensor: &event.Sensor{Version: "t"}}
	r.e.Emit(start)
	r.e.EmitAtEnd(&event.Event{Kind: event.KindSensorStop, Time: bootWall.Add(time.Hour)})
	got := r.run(claudeRoot(1000*ms), openEv(key(50, 500), 1001*ms, sess, "/x", 0))
	if len(got) != 4 {
		t.Fatalf("%d events, want 4", len(got))
	}
	var kinds []string
	for i, ev := range got {
		kinds = append(kinds, ev.Kind)
		if ev.Posture != pst {
			t.Errorf("event %d (%s) lacks the posture in force", i, ev.Kind)
		}
		if ev.Schema != event.Schema || ev.Host == nil {
			t.Errorf("event %d (%s) not stamped: %+v", i, ev.Kind, ev)
		}
	}
	if kinds[3] != event.KindSensorStop {
		t.Fatalf("sensor.stop must be last: %v", kinds)
	}
	if got[3].Time != bootWall.Add(time.Hour) {
		t.Errorf("a set time must be kept, got %v", got[3].Time)
	}
	found := false
	for _, k := range kinds[:3] {
		found = found || k == event.KindSensorStart
	}
	if !found {
		t.Fatalf("sensor.start not emitted: %v", kinds)
	}
}

// The stream opens with what was emitted before Run (sensor.start, the
// first posture sample), however many kernel events are already waiting:
// consumers and the sessions view read the first event as the run's start.
func TestEmittedBeforeRunComeFirst(t *testing.T) {
	for i := range 20 {
		r := newRig(t, Config{}, nil)
		seedBase(r)
		r.e.Emit(&event.Event{Kind: event.KindSensorStart, Sensor: &event.Sensor{Version: "t"}})
		r.e.Emit(&event.Event{Kind: event.KindPostureSample, Posture: &event.Posture{SampledAt: bootWall}})
		got := r.run(claudeRoot(1000*ms), openEv(key(50, 500), 1001*ms, sess, "/x", 0),
			openEv(key(50, 500), 1002*ms, sess, "/y", 0))
		if len(got) < 2 || got[0].Kind != event.KindSensorStart || got[1].Kind != event.KindPostureSample {
			var kinds []string
			for _, ev := range got {
				kinds = append(kinds, ev.Kind)
			}
			t.Fatalf("run %d: stream opens %v, want sensor.start then posture.sample", i, kinds)
		}
	}
}
