package lineage

import (
	"context"
	"fmt"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// outItem is an event built in order, waiting for its binaries and agent
// resolution.
type outItem struct {
	ev      *event.Event
	fixes   []binFix
	resolve *agentWait
	built   time.Time
}

type binFix struct {
	dst *event.Process
	f   *binFuture
}

// emitLoop waits for each item's enrichment, bounded, and sends it on.
func (e *Engine) emitLoop(ctx context.Context, items <-chan *outItem, out chan<- *event.Event) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var ctxErr error
	for it := range items {
		if ctxErr != nil {
			continue // drain so the producer never blocks
		}
		deadline := it.built.Add(e.cfg.EnrichWait)
		wait := func(done <-chan struct{}) bool {
			select {
			case <-done:
				return true
			default:
			}
			d := time.Until(deadline)
			if d <= 0 {
				return false
			}
			timer.Reset(d)
			defer func() {
				if !timer.Stop() {
					select {
					case <-timer.C:
					default:
					}
				}
			}()
			select {
			case <-done:
				return true
			case <-timer.C:
				return false
			case <-ctx.Done():
				return false
			}
		}
		binLate := false
		for _, fx := range it.fixes {
			if wait(fx.f.done) {
				fx.dst.Binary = fx.f.res
			} else {
				fx.dst.Binary = errorBinary(fx.f.req, fmt.Sprintf("hashing did not finish within %v", e.cfg.EnrichWait))
				binLate = true
				e.add(func(s *Stats) { s.HashWaitTimeouts++ })
			}
		}
		if binLate {
			it.ev.Partial = appendOnce(it.ev.Partial, event.PartialBinary)
		}
		if r := it.resolve; r != nil {
			if wait(r.job.done) {
				it.ev.Agent = r.resolved()
			} else {
				e.add(func(s *Stats) { s.ResolveTimeouts++ })
			}
		}
		select {
		case out <- it.ev:
			e.add(func(s *Stats) { s.Emitted++ })
		case <-ctx.Done():
			ctxErr = ctx.Err()
		}
	}
	return ctxErr
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
