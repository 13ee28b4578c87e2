package lineage

import (
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// forProc is an event that did not come from the kernel but is about a
// process the table knows: a hook call, reported by the hook process.
type forProc struct {
	pid      uint32
	ev       *event.Event
	deadline time.Time
}

// forProcWait bounds how long an event for a process the table does not
// know yet waits for it: the hook process connects a few milliseconds
// after its exec, whose record may still be in the ring.
const forProcWait = 2 * time.Second

// EmitFor queues ev, an event about the live process pid (the agent hook
// process that reported a tool call), to be emitted in line with the
// kernel's, with that process, its ancestry, identity and agent session
// filled from the table. The agent block keeps ev's tool call (ToolUse),
// the one the event is about. When the table does not learn of pid in
// time (it was never seen), ev goes out with what it carries, marked
// partial.
func (e *Engine) EmitFor(pid uint32, ev *event.Event) { e.extFor <- forProc{pid: pid, ev: ev} }

// externalFor builds f's event, or parks it (nil) while its process is
// not in the table and its wait has not run out.
func (e *Engine) externalFor(f forProc, final bool) *outItem {
	ev := f.ev
	if f.deadline.IsZero() {
		f.deadline = e.now().Add(forProcWait)
	}
	ent := e.t.byPID[f.pid]
	if ent == nil && !final && e.now().Before(f.deadline) {
		e.forWait = append(e.forWait, f)
		return nil
	}
	ev.Schema = event.Schema
	ev.Host = &e.host
	if ev.Time.IsZero() {
		ev.Time = e.now().UTC()
	}
	hooked := ev.Agent
	if ent == nil {
		ev.Partial = appendOnce(ev.Partial, event.PartialProcess)
		return e.finish(ev, nil, nil, nil, nil)
	}
	var ag *event.Agent
	if a := ent.att.agent; a != nil {
		cp := *a
		if j := ent.att.job; j != nil {
			select {
			case <-j.done:
				cp = *withRole(j.cp, ent.att.role)
			default:
			}
		}
		if hooked != nil {
			// The hook named the tool call and its session; the table
			// knows the session's root and the agent's version.
			cp.ToolUse = hooked.ToolUse
			if cp.SessionID == "" {
				cp.SessionID = hooked.SessionID
			}
		}
		ag = &cp
	}
	if ag == nil {
		ag = hooked
	}
	return e.finish(ev, ent, ag, nil, nil)
}

// retryFor builds the parked events whose process arrived or whose wait
// ran out (final: all of them).
func (e *Engine) retryFor(final bool) []*outItem {
	if len(e.forWait) == 0 {
		return nil
	}
	waiting := e.forWait
	e.forWait = nil
	var out []*outItem
	for _, f := range waiting {
		if it := e.externalFor(f, final); it != nil {
			out = append(out, it)
		}
	}
	return out
}
