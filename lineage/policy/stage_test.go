package policy

import (
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// A loss of events lineage never saw (kernel ring buffer, queue) covers
// the time since its previous report (or since the first event); a report
// that carries its own range keeps it.
func TestLossCoversTheTimeSinceTheLastReport(t *testing.T) {
	st, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	st.Process(&event.Event{Kind: event.KindSensorStart, Time: t0})
	loss := func(at time.Duration, where string) *event.Loss {
		ev := &event.Event{Kind: event.KindSensorLoss, Time: t0.Add(at), Loss: &event.Loss{Where: where, Of: "exec", Count: 1}}
		st.Process(ev)
		return ev.Loss
	}
	if l := loss(3*time.Second, "ringbuf"); !l.From.Equal(t0) || !l.To.Equal(t0.Add(3*time.Second)) {
		t.Errorf("first ringbuf loss covers %v..%v, want from the first event", l.From, l.To)
	}
	if l := loss(5*time.Second, "queue"); !l.From.Equal(t0) {
		t.Errorf("first queue loss from %v, want the first event's time", l.From)
	}
	if l := loss(7*time.Second, "ringbuf"); !l.From.Equal(t0.Add(3*time.Second)) || !l.To.Equal(t0.Add(7*time.Second)) {
		t.Errorf("second ringbuf loss covers %v..%v, want since the first report", l.From, l.To)
	}
	own := &event.Event{Kind: event.KindSensorLoss, Time: t0.Add(9 * time.Second),
		Loss: &event.Loss{Where: "kafka-spool", Count: 2, FirstSeq: 4, LastSeq: 5, From: t0.Add(time.Second), To: t0.Add(2 * time.Second)}}
	st.Process(own)
	if l := own.Loss; !l.From.Equal(t0.Add(time.Second)) || !l.To.Equal(t0.Add(2*time.Second)) || l.FirstSeq != 4 {
		t.Errorf("a report's own range was changed: %+v", l)
	}
}
