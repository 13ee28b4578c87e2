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

// Emit queues an event that did not come from the kernel (sensor.start, a
// posture sample) to be emitted in line with the kernel's: it gets schema,
// host and, when unset, the current time. It blocks only while Run's small
// queue is full.
func (e *Engine) Emit(ev *event.Event) { e.ext <- ev }

// EmitAtEnd keeps ev to be emitted last, after the input ends and every
// pending event is flushed (sensor.stop).
func (e *Engine) EmitAtEnd(ev *event.Event) {
	e.finalMu.Lock()
	e.final = append(e.final, ev)
	e.finalMu.Unlock()
}

func (e *Engine) external(ev *event.Event) *outItem {
	ev.Schema = event.Schema
	ev.Host = &e.host
	if ev.Time.IsZero() {
		ev.Time = e.now().UTC()
	}
	return e.finish(ev, nil, nil, nil, nil)
}

// atEnd is what goes out once the input ends: every pending event, forced
// out with what is known, the external events still queued, and last
// those kept for the end.
func (e *Engine) atEnd() []*outItem {
	tail := e.flushPending(true, false)
	tail = append(tail, e.retryFor(true)...)
	for drained := false; !drained; {
		select {
		case ev := <-e.ext:
			tail = append(tail, e.external(ev))
		case f := <-e.extFor:
			tail = append(tail, e.externalFor(f, true))
		default:
			drained = true
		}
	}
	e.finalMu.Lock()
	for _, ev := range e.final {
		tail = append(tail, e.external(ev))
	}
	e.final = nil
	e.finalMu.Unlock()
	return tail
}

// emitLoop waits for each item's enrichment, bounded, and sends it on.
func (e *Engine) emitLoop(ctx context.Context, items <-chan *outItem, out chan<- *event.Event) error {
	dl := &deadline{ctx: ctx, timer: time.NewTimer(time.Hour)}
	defer dl.timer.Stop()
	var ctxErr error
	for it := range items {
		if ctxErr != nil {
			continue // drain so the producer never blocks
		}
		dl.at = it.built.Add(e.cfg.EnrichWait)
		e.complete(it, dl)
		select {
		case out <- it.ev:
			e.add(func(s *Stats) { s.Emitted++ })
		case <-ctx.Done():
			ctxErr = ctx.Err()
		}
	}
	return ctxErr
}

// complete fills in what an item waited for, each part until dl: the
// binaries' hashes (an error binary, and the event partial, when one runs
// late) and the agent resolution (the unresolved attribution stays when it
// runs late).
func (e *Engine) complete(it *outItem, dl *deadline) {
	binLate := false
	for _, fx := range it.fixes {
		if dl.wait(fx.f.done) {
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
		if dl.wait(r.job.done) {
			it.ev.Agent = r.resolved()
		} else {
			e.add(func(s *Stats) { s.ResolveTimeouts++ })
		}
	}
}

// deadline bounds the emitter's waits for one item, reusing one timer.
type deadline struct {
	ctx   context.Context
	timer *time.Timer
	at    time.Time
}

// wait reports whether done is closed before the deadline (and before ctx
// ends).
func (d *deadline) wait(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
	}
	left := time.Until(d.at)
	if left <= 0 {
		return false
	}
	d.timer.Reset(left)
	defer func() {
		if !d.timer.Stop() {
			select {
			case <-d.timer.C:
			default:
			}
		}
	}()
	select {
	case <-done:
		return true
	case <-d.timer.C:
		return false
	case <-d.ctx.Done():
		return false
	}
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
