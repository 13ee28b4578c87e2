package lineage

import (
	"time"

	"github.com/lineaged/lineaged/sensor"
)

// pendingQueue holds the events that wait for a process to enter the
// table, in arrival order, and counts them per process: an event waits
// behind the earlier events of its own process, so each process's events
// leave in order.
type pendingQueue struct {
	events  []*pendingEvent
	blocked map[sensor.ProcKey]int // events in the queue per process
}

type pendingEvent struct {
	ev     sensor.Event
	wall   time.Time
	needed sensor.ProcKey
}

func newPendingQueue() pendingQueue {
	return pendingQueue{blocked: make(map[sensor.ProcKey]int)}
}

func (q *pendingQueue) len() int { return len(q.events) }

func (q *pendingQueue) push(p *pendingEvent) {
	q.events = append(q.events, p)
	q.blocked[p.ev.Proc]++
}

// popOldest removes the oldest event; the queue must not be empty.
func (q *pendingQueue) popOldest() *pendingEvent {
	p := q.events[0]
	q.events = q.events[1:]
	q.unblock(p.ev.Proc)
	return p
}

// behind reports whether ev must wait behind queued events of its process.
// An event that brings its process into the table (fork, exec) may pass
// them: they may be waiting for exactly that.
func (q *pendingQueue) behind(ev sensor.Event) bool {
	return q.blocked[ev.Proc] > 0 && !creates(ev)
}

func (q *pendingQueue) unblock(k sensor.ProcKey) {
	if q.blocked[k]--; q.blocked[k] <= 0 {
		delete(q.blocked, k)
	}
}

// sweep offers the events to release, oldest first, and keeps those it
// declines; an event is not offered while an earlier event of its process
// is kept, unless it creates the process. It reports whether any event
// left.
func (q *pendingQueue) sweep(release func(p *pendingEvent) bool) bool {
	left := false
	keep := q.events[:0]
	seen := make(map[sensor.ProcKey]bool)
	for _, p := range q.events {
		if seen[p.ev.Proc] && !creates(p.ev) {
			keep = append(keep, p)
			continue
		}
		q.unblock(p.ev.Proc)
		if release(p) {
			left = true
			continue
		}
		q.blocked[p.ev.Proc]++
		seen[p.ev.Proc] = true
		keep = append(keep, p)
	}
	clear(q.events[len(keep):])
	q.events = keep
	return left
}

// ready reports whether ev can be built now; if not, which process it
// waits for. A new session root's ancestors are outside the session: the
// kernel never reports them, so they are read from /proc now, while they
// live.
func (e *Engine) ready(ev sensor.Event) (sensor.ProcKey, bool) {
	need, ok := e.needs(ev)
	if !ok && isSessionRoot(ev) && need != (sensor.ProcKey{}) {
		e.fromProc(need)
		return e.needs(ev)
	}
	return need, ok
}

// needs reports whether ev can be built now; if not, which process it waits
// for.
func (e *Engine) needs(ev sensor.Event) (sensor.ProcKey, bool) {
	if e.pending.behind(ev) {
		return sensor.ProcKey{}, false
	}
	return e.missing(ev)
}

// creates reports whether ev brings its process into the table (fork, exec).
func creates(ev sensor.Event) bool {
	return ev.Kind == sensor.KindFork || ev.Kind == sensor.KindExec
}

// missing reports which table entry ev lacks, ignoring the events queued
// ahead of it.
func (e *Engine) missing(ev sensor.Event) (sensor.ProcKey, bool) {
	switch ev.Kind {
	case sensor.KindExec:
		if e.t.get(ev.Proc) != nil || ev.Exec.Parent.PID == 0 || e.t.get(ev.Exec.Parent) != nil {
			return sensor.ProcKey{}, true
		}
		return ev.Exec.Parent, false
	case sensor.KindFork:
		if ev.Fork.Parent.PID == 0 || e.t.get(ev.Fork.Parent) != nil {
			return sensor.ProcKey{}, true
		}
		return ev.Fork.Parent, false
	default:
		if e.t.get(ev.Proc) != nil {
			return sensor.ProcKey{}, true
		}
		return ev.Proc, false
	}
}

// enqueue parks ev until need is in the table; a full queue first forces
// its oldest event out.
func (e *Engine) enqueue(ev sensor.Event, need sensor.ProcKey) []*outItem {
	var out []*outItem
	if e.pending.len() >= e.cfg.MaxPending {
		// Full: the oldest goes out with what is known.
		out = append(out, e.forceOldest()...)
		e.bump(func(s *Stats) { s.PendingOverflow++ })
	}
	e.pending.push(&pendingEvent{ev: ev, wall: e.now(), needed: need})
	return out
}

// forceOldest emits the oldest pending event with what is known.
func (e *Engine) forceOldest() []*outItem {
	if e.pending.len() == 0 {
		return nil
	}
	return e.force(e.pending.popOldest())
}

// force emits a pending event whose parent did not arrive: /proc is asked
// first, then the event goes out marked partial.
func (e *Engine) force(p *pendingEvent) []*outItem {
	if p.needed != (sensor.ProcKey{}) && e.t.get(p.needed) == nil {
		e.fromProc(p.needed)
	}
	return e.emitNow(p.ev, true)
}

// flushPending releases pending events that can now be built, in order; with
// all set it forces every one (end of input); with wall set it forces those
// that waited longer than PendingTimeout of wall time (a quiet stream).
func (e *Engine) flushPending(all, wall bool) []*outItem {
	if e.pending.len() == 0 {
		return nil
	}
	var out []*outItem
	now := e.now()
	release := func(p *pendingEvent) bool {
		timedOut := p.ev.KtimeNs+uint64(e.cfg.PendingTimeout) < e.lastKt ||
			(wall && now.Sub(p.wall) > e.cfg.PendingTimeout)
		need, ok := e.missing(p.ev)
		switch {
		case ok:
			out = append(out, e.emitNow(p.ev, false)...)
		case all || timedOut:
			p.needed = need
			e.bump(func(s *Stats) { s.PendingTimeouts++ })
			out = append(out, e.force(p)...)
		default:
			return false
		}
		return true
	}
	for progress := true; progress && e.pending.len() > 0; {
		progress = e.pending.sweep(release)
	}
	e.bump(func(*Stats) {})
	return out
}
