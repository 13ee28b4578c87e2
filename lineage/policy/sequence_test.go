package policy

import (
	"sync"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

var t0 = time.Date(2026, 12, 2, 20, 0, 0, 0, time.UTC)

// Every event, whoever made it, is numbered by the one sequencer: lineage's,
// posture's (via lineage's Emit), the policy stage's and a sink's loss
// report stamped from its own goroutine get strictly increasing seqs with
// no duplicate and no gap, and unique event ids.
func TestOneSequenceForEveryProducer(t *testing.T) {
	st, err := New(Config{DenyExec: []string{"/usr/bin/curl"}})
	if err != nil {
		t.Fatal(err)
	}
	seq := NewSequencer("run-1")
	var mu sync.Mutex
	var written []*event.Event
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the Kafka sink's sender reporting spool drops
		defer wg.Done()
		for i := range 200 {
			ev := &event.Event{Schema: event.Schema, Kind: event.KindSensorLoss, Time: t0.Add(time.Duration(i)),
				Loss: &event.Loss{Where: "kafka-spool", Count: 1, FirstSeq: 1, LastSeq: 1}}
			mu.Lock() // what the sink writes is in stamp order too
			seq.Stamp(ev)
			written = append(written, ev)
			mu.Unlock()
		}
	}()
	for i := range 200 {
		tm := t0.Add(time.Duration(i) * time.Millisecond)
		var in *event.Event
		switch i % 4 {
		case 0:
			in = &event.Event{Kind: event.KindProcessExec, Time: tm, Process: &event.Process{ExecID: "p"}}
		case 1:
			in = &event.Event{Kind: event.KindPostureSample, Time: tm, Posture: &event.Posture{SampledAt: tm}}
		case 2:
			in = &event.Event{Kind: event.KindPolicyAction, Time: tm, Process: &event.Process{ExecID: "p"},
				Deny: &event.Deny{Path: "/usr/bin/curl", Action: "blocked"}}
		case 3:
			in = &event.Event{Kind: event.KindSensorLoss, Time: tm, Loss: &event.Loss{Where: "ringbuf", Count: 3}}
		}
		out := st.Process(in)
		mu.Lock()
		seq.StampAll(out)
		written = append(written, out...)
		mu.Unlock()
	}
	wg.Wait()
	kinds := map[string]int{}
	ids := map[string]bool{}
	for i, ev := range written {
		kinds[ev.Kind]++
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d (%s) has seq %d: a gap, a duplicate or out of order", i, ev.Kind, ev.Seq)
		}
		if ev.EventID == "" || ids[ev.EventID] {
			t.Fatalf("event %d (%s): event id %q empty or seen before", i, ev.Kind, ev.EventID)
		}
		ids[ev.EventID] = true
	}
	for _, k := range []string{event.KindProcessExec, event.KindPostureSample, event.KindPolicyAlert, event.KindPolicyAction, event.KindSensorLoss} {
		if kinds[k] == 0 {
			t.Errorf("no %s numbered: %v", k, kinds)
		}
	}
}

// event_id is derived from the instance, seq and time: the same input
// numbered again under the same instance gets the same ids.
func TestEventIDsStableAcrossReplays(t *testing.T) {
	run := func(instance string) []string {
		seq := NewSequencer(instance)
		var ids []string
		for i := range 5 {
			ev := &event.Event{Kind: event.KindProcessExec, Time: t0.Add(time.Duration(i) * time.Second)}
			seq.Stamp(ev)
			ids = append(ids, ev.EventID)
		}
		return ids
	}
	a, b, c := run("replay"), run("replay"), run("other")
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("event %d: %s then %s", i, a[i], b[i])
		}
		if a[i] == c[i] {
			t.Errorf("event %d: same id %s under another instance", i, a[i])
		}
		if a[i] != event.NewEventID(t0.Add(time.Duration(i)*time.Second), "replay", uint64(i+1)) {
			t.Errorf("event %d: id %s is not event.NewEventID(time, instance, seq)", i, a[i])
		}
	}
}
