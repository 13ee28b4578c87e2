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
	// loaded: the future is dst's Loaded, not its Binary.
	loaded bool
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
	tail = append(tail, e.lateItems()...)
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

// itemBatcher hands the emitter what the engine built in batches: a batch
// goes when nothing else is waiting for the engine (so a lone event waits
// for nothing), or when it is full. One hand-off per batch instead of one
// per event: in a storm the engine and the emitter no longer wake each
// other for every event.
type itemBatcher struct {
	ctx   context.Context
	ch    chan []*outItem
	batch []*outItem
}

// maxItemBatch bounds a batch, and with the channel's capacity, how far the
// engine runs ahead of the emitter (which may be waiting for a hash).
const (
	maxItemBatch  = 64
	itemBatchesIn = 4
)

func newItemBatcher(ctx context.Context) *itemBatcher {
	return &itemBatcher{ctx: ctx, ch: make(chan []*outItem, itemBatchesIn)}
}

// add queues items; a full batch is sent at once. It reports false once
// ctx has ended.
func (b *itemBatcher) add(its ...*outItem) bool {
	for _, it := range its {
		b.batch = append(b.batch, it)
		if len(b.batch) >= maxItemBatch && !b.flush() {
			return false
		}
	}
	return true
}

// flush sends what is queued; false once ctx has ended.
func (b *itemBatcher) flush() bool {
	if len(b.batch) == 0 {
		return true
	}
	select {
	case b.ch <- b.batch:
		b.batch = make([]*outItem, 0, maxItemBatch)
		return true
	case <-b.ctx.Done():
		return false
	}
}

// chanEmit sends each event on out until ctx ends.
func chanEmit(ctx context.Context, out chan<- *event.Event) func(*event.Event) bool {
	return func(ev *event.Event) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// emitLoop waits for each item's enrichment, bounded, and hands it to emit,
// in order, on this one goroutine. emit returning false (its ctx ended)
// stops the hand-offs; the items are still drained so the engine never
// blocks.
func (e *Engine) emitLoop(ctx context.Context, items <-chan []*outItem, emit func(*event.Event) bool) error {
	dl := &deadline{ctx: ctx, timer: time.NewTimer(time.Hour)}
	defer dl.timer.Stop()
	var ctxErr error
	for batch := range items {
		for _, it := range batch {
			if ctxErr != nil {
				break // drain so the producer never blocks
			}
			dl.at = it.built.Add(e.cfg.EnrichWait)
			e.complete(it, dl)
			if !emit(it.ev) {
				ctxErr = ctx.Err()
				if ctxErr == nil {
					ctxErr = context.Canceled
				}
				continue
			}
			e.add(func(s *Stats) { s.Emitted++ })
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
	var own *binFuture // the exec's own binary, when it runs late
	var late map[*event.Process]bool
	for _, fx := range it.fixes {
		if fx.loaded {
			if e.wait(dl, fx.f.done, it, &fx.f.req) {
				fx.dst.Loaded = fx.f.res
			} else {
				fx.dst.Loaded = errorBinary(fx.f.req, fmt.Sprintf("hashing did not finish within %v", e.cfg.EnrichWait))
				binLate = true
				e.add(func(s *Stats) { s.HashWaitTimeouts++ })
			}
			continue
		}
		if e.wait(dl, fx.f.done, it, &fx.f.req) {
			fx.dst.Binary = fx.f.res
		} else {
			fx.dst.Binary = errorBinary(fx.f.req, fmt.Sprintf("hashing did not finish within %v", e.cfg.EnrichWait))
			binLate = true
			if late == nil {
				late = map[*event.Process]bool{}
			}
			late[fx.dst] = true
			e.add(func(s *Stats) { s.HashWaitTimeouts++ })
			if fx.dst == it.ev.Process && it.ev.Kind == event.KindProcessExec {
				own = fx.f
			}
		}
	}
	if own != nil {
		defer e.followUp(it.ev, own)
	}
	if binLate {
		it.ev.Partial = appendOnce(it.ev.Partial, event.PartialBinary)
	}
	if r := it.resolve; r != nil {
		if e.wait(dl, r.job.done, it, nil) {
			it.ev.Agent = r.resolved()
		} else {
			e.add(func(s *Stats) { s.ResolveTimeouts++ })
		}
	}
	e.verify.stamp(it.ev, late)
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
