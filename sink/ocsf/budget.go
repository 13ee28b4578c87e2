package ocsf

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/budget"
)

// appendBudget encodes ev within e.MaxBytes: over it, the event is encoded
// again from trimmed copies with tighter argv bounds (sink/internal/budget),
// and unmapped.lineaged.truncated names what was cut. The encoding ends
// with unmapped.lineaged, so the marker goes before its last three bytes.
func (e Encoder) appendBudget(dst []byte, ev *event.Event) ([]byte, error) {
	return budget.Fit(dst, ev, e.MaxBytes, 3, func(dst []byte, ev *event.Event, lv *budget.Level) ([]byte, error) {
		if lv == nil {
			return e.appendEvent(dst, ev)
		}
		b := e
		b.Argv = e.Argv.Bounded(lv)
		b.Shared = nil // its bytes were written within the wider bounds
		return b.appendEvent(dst, ev)
	})
}
