package lineage

import (
	"errors"
	"time"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

type pendingEvent struct {
	ev     sensor.Event
	wall   time.Time
	needed sensor.ProcKey
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
	if e.blocked[ev.Proc] > 0 && !creates(ev) {
		return sensor.ProcKey{}, false
	}
	return e.missing(ev)
}

// creates reports whether ev brings its process into the table (fork, exec):
// such an event may pass earlier events of the same process that are
// waiting for exactly that.
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

func (e *Engine) enqueue(ev sensor.Event, need sensor.ProcKey) []*outItem {
	var out []*outItem
	if len(e.pending) >= e.cfg.MaxPending {
		// Full: the oldest goes out with what is known.
		out = append(out, e.forceOldest()...)
		e.bump(func(s *Stats) { s.PendingOverflow++ })
	}
	e.pending = append(e.pending, &pendingEvent{ev: ev, wall: e.now(), needed: need})
	e.blocked[ev.Proc]++
	return out
}

func (e *Engine) forceOldest() []*outItem {
	if len(e.pending) == 0 {
		return nil
	}
	p := e.pending[0]
	e.pending = e.pending[1:]
	e.unblock(p.ev.Proc)
	return e.force(p)
}

func (e *Engine) unblock(k sensor.ProcKey) {
	if e.blocked[k]--; e.blocked[k] <= 0 {
		delete(e.blocked, k)
	}
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
	if len(e.pending) == 0 {
		return nil
	}
	var out []*outItem
	now := e.now()
	for progress := true; progress && len(e.pending) > 0; {
		progress = false
		keep := e.pending[:0]
		seen := make(map[sensor.ProcKey]bool)
		for _, p := range e.pending {
			if seen[p.ev.Proc] && !creates(p.ev) {
				keep = append(keep, p)
				continue
			}
			e.unblock(p.ev.Proc)
			timedOut := p.ev.KtimeNs+uint64(e.cfg.PendingTimeout) < e.lastKt ||
				(wall && now.Sub(p.wall) > e.cfg.PendingTimeout)
			if need, ok := e.missing(p.ev); ok {
				out = append(out, e.emitNow(p.ev, false)...)
				progress = true
				continue
			} else if all || timedOut {
				p.needed = need
				e.bump(func(s *Stats) { s.PendingTimeouts++ })
				out = append(out, e.force(p)...)
				progress = true
				continue
			}
			e.blocked[p.ev.Proc]++
			seen[p.ev.Proc] = true
			keep = append(keep, p)
		}
		for i := len(keep); i < len(e.pending); i++ {
			e.pending[i] = nil
		}
		e.pending = keep
	}
	e.bump(func(*Stats) {})
	return out
}

// fromProc reads a live process and its ancestors missing from the table
// out of /proc. It gives up when the pid now names another process.
func (e *Engine) fromProc(k sensor.ProcKey) bool {
	var chain []*procfs.Proc
	want := k
	for range e.cfg.MaxAncestry {
		p, err := e.deps.Proc.Proc(want.PID)
		if err != nil {
			if !errors.Is(err, procfs.ErrGone) {
				e.log.Debug("reading ancestor from /proc", "pid", want.PID, "err", err)
			}
			break
		}
		if want.StartNs != 0 && p.Key.StartNs != want.StartNs {
			break // pid reused
		}
		chain = append(chain, p)
		if p.PPID == 0 {
			break
		}
		if pe := e.t.byPID[p.PPID]; pe != nil && pe.key.StartNs <= p.Key.StartNs {
			break
		}
		want = sensor.ProcKey{PID: p.PPID}
	}
	if len(chain) == 0 || chain[0].Key != k {
		return false
	}
	for i := len(chain) - 1; i >= 0; i-- {
		e.insertProc(chain[i], false)
	}
	e.bump(func(s *Stats) { s.FromProc += uint64(len(chain)) })
	return true
}
