package native

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/budget"
)

// appendBudget encodes ev within e.MaxBytes: over it, the event is encoded
// again from trimmed copies with tighter argv bounds (sink/internal/budget),
// and the result carries a top-level "truncated" list naming what was cut.
func (e Encoder) appendBudget(dst []byte, ev *event.Event) ([]byte, error) {
	return budget.Fit(dst, ev, e.MaxBytes, 1, func(dst []byte, ev *event.Event, lv *budget.Level) ([]byte, error) {
		if lv == nil {
			return e.appendEvent(dst, ev)
		}
		return e.Bounded(lv).appendEvent(dst, ev)
	})
}

// Bounded returns e with its argv bounds tightened to lv's.
func (e Encoder) Bounded(lv *budget.Level) Encoder {
	tighten := func(v *int, to int) {
		if *v <= 0 || *v > to {
			*v = to
		}
	}
	tighten(&e.MaxArgs, lv.MaxArgs)
	tighten(&e.MaxArgBytes, lv.MaxArgBytes)
	tighten(&e.MaxArgvBytes, lv.MaxArgvBytes)
	e.Shared = nil // its bytes were written within the wider bounds
	return e
}
