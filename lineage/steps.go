package lineage

import (
	"context"
	"fmt"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// StepKind is one kind of input the engine's Run loop takes.
type StepKind string

// Step kinds.
const (
	// StepRaw: a raw kernel event.
	StepRaw StepKind = "raw"
	// StepExternal: an event emitted from outside the stream (Emit).
	StepExternal StepKind = "ext"
	// StepFor: an event about a live process (EmitFor).
	StepFor StepKind = "for"
	// StepTick: the pending-timeout tick fired.
	StepTick StepKind = "tick"
)

// Step is one input of Run, in the order Run took it: what a capture must
// hold for a replay to build the same events in the same order, however
// the live goroutines and timers happened to interleave.
type Step struct {
	Kind StepKind      `json:"s"`
	Raw  *sensor.Event `json:"raw,omitempty"`
	Ev   *event.Event  `json:"ev,omitempty"`
	PID  uint32        `json:"pid,omitempty"`
	Kt   uint64        `json:"kt,omitempty"`
}

// RecordSteps makes Run tell rec each input it takes, on its own
// goroutine, before acting on it. Call before Run.
func (e *Engine) RecordSteps(rec func(Step)) { e.steps = rec }

func (e *Engine) step(s Step) {
	if e.steps != nil {
		e.steps(s)
	}
}

// RunSteps is Run driven by recorded steps instead of live channels and
// timers: each step is taken exactly where Run took it live. It returns
// when steps is closed (after flushing, as Run does at the end of its
// input) or ctx ends.
func (e *Engine) RunSteps(ctx context.Context, steps <-chan Step, out chan<- *event.Event) error {
	b := newItemBatcher(ctx)
	emitErr := make(chan error, 1)
	go func() { emitErr <- e.emitLoop(ctx, b.ch, chanEmit(ctx, out)) }()
	for {
		if len(steps) == 0 {
			b.flush()
		}
		var s Step
		var ok bool
		select {
		case <-ctx.Done():
			close(b.ch)
			<-emitErr
			return ctx.Err()
		case s, ok = <-steps:
		}
		if !ok {
			if !e.leaveAtEnd {
				b.add(e.atEnd()...)
			}
			b.flush()
			close(b.ch)
			return <-emitErr
		}
		var its []*outItem
		switch s.Kind {
		case StepRaw:
			if s.Raw != nil {
				its = e.handle(*s.Raw)
			}
		case StepExternal:
			if s.Ev != nil {
				its = []*outItem{e.external(s.Ev)}
			}
		case StepFor:
			if s.Ev != nil {
				if it := e.externalFor(forProc{pid: s.PID, ev: s.Ev, kt: s.Kt}, false); it != nil {
					its = []*outItem{it}
				}
			}
		case StepTick:
			its = e.flushPending(false, true)
			its = append(its, e.retryFor(false)...)
			its = append(its, e.lateItems()...)
		}
		if !b.add(its...) {
			close(b.ch)
			<-emitErr
			return ctx.Err()
		}
	}
}

// LeaveAtEnd makes RunSteps end its input as a window of a longer run (a
// tee of a running sensor): what is still parked for a parent, waiting
// for its process or queued is left, not forced out as at the end of a
// run. Live, it went out after the window, from inputs the window does
// not hold. Call before RunSteps.
func (e *Engine) LeaveAtEnd() { e.leaveAtEnd = true }

// RecordWaits makes the emitter tell rec each wait for a late part (a
// binary's hash, an agent resolution) that ran out, by a key naming the
// event and the part. Call before Run.
func (e *Engine) RecordWaits(rec func(key string)) { e.waitRec = rec }

// ReplayWaits makes the emitter take those outcomes from decide instead of
// a timer: decide returns false at once for a wait that ran out live, and
// otherwise waits for done. Call before RunSteps.
func (e *Engine) ReplayWaits(decide func(key string, done <-chan struct{}) bool) {
	e.waitReplay = decide
}

// waitKey names one wait of an item, for a binary's hash (bin) or the
// agent resolution (bin nil): whether a part is waited for at all depends
// on timing, so waits are named, not counted.
func waitKey(it *outItem, bin *BinaryRequest) string {
	ev := it.ev
	id := ""
	if ev.Process != nil {
		id = ev.Process.ExecID
	}
	part := "resolve"
	if bin != nil {
		part = "binary " + binaryKey(*bin)
	}
	return fmt.Sprintf("%s|%s|%d|%s", ev.Kind, id, ev.Time.UnixNano(), part)
}

// wait is the emitter's bounded wait for one part of an item; the key is
// built only when a capture records or a replay decides.
func (e *Engine) wait(dl *deadline, done <-chan struct{}, it *outItem, bin *BinaryRequest) bool {
	if e.waitReplay != nil {
		return e.waitReplay(waitKey(it, bin), done)
	}
	ok := dl.wait(done)
	if !ok && e.waitRec != nil {
		e.waitRec(waitKey(it, bin))
	}
	return ok
}
