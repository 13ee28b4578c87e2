package lineage

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// A tamper record becomes a sensor.tamper naming the actor: a session
// member with its session, and an actor the table does not know (outside
// any session, in scope agents) by what the record says, marked partial.
func TestTamperBecomesSensorTamper(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	c := key(50, 500)
	stranger := key(77, 700)
	got := r.run(
		claudeRoot(1000*ms),
		sensor.Event{Header: sensor.Header{Kind: sensor.KindTamper, KtimeNs: 1001 * ms, Proc: c, Session: sess},
			Tamper: &sensor.Tamper{Op: sensor.TamperBPF, Target: key(812, 800), Arg: 3, Object: "map", ObjectID: 9, Comm: "bpftool"}},
		sensor.Event{Header: sensor.Header{Kind: sensor.KindTamper, KtimeNs: 1002 * ms, Proc: stranger},
			Tamper: &sensor.Tamper{Op: sensor.TamperSensorExit, Target: key(812, 800), Code: 9}},
	)
	if len(got) != 3 {
		t.Fatalf("%d events, want the root's exec and two sensor.tamper", len(got))
	}
	m := got[1]
	want := event.Tamper{Action: "bpf", SensorPID: 812, Request: "BPF_MAP_DELETE_ELEM", Object: "map", ObjectID: 9, Comm: "bpftool"}
	if m.Kind != event.KindSensorTamper || m.Tamper == nil || *m.Tamper != want {
		t.Fatalf("member: %s %+v, want %+v", m.Kind, m.Tamper, want)
	}
	if m.Process == nil || m.Process.PID != 50 || m.Agent == nil || m.Agent.RootExecID == "" {
		t.Errorf("member: process %+v agent %+v, want the session member with its session", m.Process, m.Agent)
	}
	s := got[2]
	if s.Kind != event.KindSensorTamper || s.Tamper == nil || s.Tamper.Action != "sensor-exit" || s.Tamper.Signal != 9 {
		t.Fatalf("death: %s %+v", s.Kind, s.Tamper)
	}
	if s.Process == nil || s.Process.PID != 77 || s.Agent != nil || len(s.Partial) == 0 {
		t.Errorf("death: process %+v agent %+v partial %v, want pid 77 outside any session, partial", s.Process, s.Agent, s.Partial)
	}
}

// A member's open of the sensor's /proc/<pid>/mem for writing is a
// sensor.tamper proc-mem-write naming the file; a failed open is refused.
func TestProcMemWriteBecomesSensorTamper(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	c := key(50, 500)
	got := r.run(
		claudeRoot(1000*ms),
		sensor.Event{Header: sensor.Header{Kind: sensor.KindTamper, KtimeNs: 1001 * ms, Proc: c, Session: sess},
			Tamper: &sensor.Tamper{Op: sensor.TamperProcMem, Target: key(812, 800), Path: "/proc/812/mem"}},
		sensor.Event{Header: sensor.Header{Kind: sensor.KindTamper, KtimeNs: 1002 * ms, Proc: c, Session: sess},
			Tamper: &sensor.Tamper{Op: sensor.TamperProcMem, Target: key(812, 800), Path: "/proc/812/task/813/mem", Code: -13}},
	)
	if len(got) != 3 {
		t.Fatalf("%d events, want the root's exec and two sensor.tamper", len(got))
	}
	for i, want := range []event.Tamper{
		{Action: "proc-mem-write", SensorPID: 812, Path: "/proc/812/mem"},
		{Action: "proc-mem-write", SensorPID: 812, Path: "/proc/812/task/813/mem", Refused: true},
	} {
		ev := got[i+1]
		if ev.Kind != event.KindSensorTamper || ev.Tamper == nil || *ev.Tamper != want {
			t.Errorf("%d: %s %+v, want %+v", i, ev.Kind, ev.Tamper, want)
		}
		if ev.Process == nil || ev.Process.PID != 50 || ev.Agent == nil || ev.Agent.RootExecID == "" {
			t.Errorf("%d: process %+v agent %+v, want the member with its session", i, ev.Process, ev.Agent)
		}
	}
}
