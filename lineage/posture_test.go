package lineage

import (
	"reflect"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/posture"
)

type fakeSampler struct{ s *posture.Sample }

func (f *fakeSampler) Latest() *posture.Sample { return f.s }

func TestPostureMapping(t *testing.T) {
	at := time.Date(2026, 12, 2, 21, 0, 0, 5, time.UTC)
	s := &posture.Sample{
		SampledAt: at,
		Failed:    []string{"aslr"},
		Checks: map[string]posture.Result{
			"aslr":     {OK: false, Detail: "randomize_va_space=0"},
			"firewall": {OK: true, Detail: "nftables: inbound policy drop"},
		},
	}
	want := &event.Posture{
		SampledAt: at,
		Failed:    []string{"aslr"},
		Checks: map[string]event.Check{
			"aslr":     {OK: false, Detail: "randomize_va_space=0"},
			"firewall": {OK: true, Detail: "nftables: inbound policy drop"},
		},
	}
	if got := PostureOf(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("PostureOf = %+v, want %+v", got, want)
	}
	for r, kind := range map[posture.Report]string{posture.Sampled: event.KindPostureSample, posture.Changed: event.KindPostureChange} {
		ev := PostureEvent(r, s)
		if ev.Kind != kind || !ev.Time.Equal(at) || !reflect.DeepEqual(ev.Posture, want) {
			t.Errorf("PostureEvent(%s) = %s at %v with %+v", r, ev.Kind, ev.Time, ev.Posture)
		}
	}
}

// Every event between two samples gets the same mapped posture, and a new
// sample is mapped once.
func TestLatestPostureMapsEachSampleOnce(t *testing.T) {
	f := &fakeSampler{}
	l := &LatestPosture{Sampler: f}
	if l.Latest() != nil {
		t.Fatal("posture before the first sample")
	}
	f.s = &posture.Sample{Compliant: true}
	a, b := l.Latest(), l.Latest()
	if a == nil || a != b || !a.Compliant {
		t.Fatalf("same sample mapped twice or wrongly: %p %p", a, b)
	}
	f.s = &posture.Sample{Failed: []string{"aslr"}}
	if c := l.Latest(); c == a || c.Compliant || len(c.Failed) != 1 {
		t.Fatalf("new sample not mapped: %+v", c)
	}
	if n := testing.AllocsPerRun(100, func() { l.Latest() }); n != 0 {
		t.Fatalf("Latest allocates %.0f times per event", n)
	}
}
