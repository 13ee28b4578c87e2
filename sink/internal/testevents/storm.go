package testevents

import (
	"bytes"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// Storm returns the events of n children of one parent as the engine
// hands them out: for each child one event of each kind (an exec, two
// opens and an exit when kinds is empty), every one carrying the parent's
// one shared ancestry slice; every third child is outside the session
// (same slice, no agent). With bad, that ancestry holds invalid UTF-8.
func Storm(n int, bad bool, kinds ...string) []*event.Event {
	if len(kinds) == 0 {
		kinds = []string{event.KindProcessExec, event.KindFileOpen, event.KindFileOpen, event.KindProcessExit}
	}
	anc := InSessionExec(0).Ancestry
	if bad {
		anc[1].Argv = []string{"bash", "-c", "echo \xff\xfe"}
	}
	var evs []*event.Event
	for i := range n {
		for j, kind := range kinds {
			ev := New(kind, uint64(i*len(kinds)+j+1), "s")
			ev.Ancestry = anc
			if ev.Agent != nil {
				ev.Agent.RootExecID = anc[2].ExecID // the agent sits above the storm's shells
			}
			if i%3 == 2 {
				// Outside the session: the same slice, never cut.
				ev.Agent = nil
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

// BenchShared encodes evs with fresh (no shared ancestries) and shared
// (with them), alternated in blocks so both see the same machine, and
// reports ns per event of each and the ratio (x-faster-shared).
func BenchShared(b *testing.B, evs []*event.Event, fresh, shared Appender) {
	modes := []struct {
		name string
		enc  Appender
		took time.Duration
	}{{name: "fresh", enc: fresh}, {name: "shared", enc: shared}}
	buf := make([]byte, 0, 64<<10)
	var err error
	b.ReportAllocs()
	for b.Loop() {
		for i := range modes {
			m := &modes[i]
			t0 := time.Now()
			for _, ev := range evs {
				if buf, err = m.enc.Append(buf[:0], ev); err != nil {
					b.Fatal(err)
				}
			}
			m.took += time.Since(t0)
		}
	}
	ns := map[string]float64{}
	for _, m := range modes {
		ns[m.name] = float64(m.took.Nanoseconds()) / float64(b.N*len(evs))
		b.ReportMetric(ns[m.name], "ns/event-"+m.name)
	}
	b.ReportMetric(ns["fresh"]/ns["shared"], "x-faster-shared")
}

// SameBytes fails t when cached (an encoder with shared ancestries)
// writes any of evs otherwise than plain (the same encoder without them).
func SameBytes(t *testing.T, name string, plain, cached Appender, evs []*event.Event) {
	t.Helper()
	for i, ev := range evs {
		want, err := plain.Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cached.Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: event %d (%s) differs with shared ancestries:\n got %s\nwant %s", name, i, ev.Kind, got, want)
		}
	}
}
