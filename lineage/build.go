package lineage

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// emitNow builds the event for ev against the table. partialOK allows
// missing pieces (after a pending timeout).
func (e *Engine) emitNow(ev sensor.Event, partialOK bool) []*outItem {
	out := &event.Event{
		Schema: event.Schema,
		Time:   e.wall(ev.KtimeNs),
		Host:   &e.host,
	}
	var partial []string
	var ent *entry
	var res *AgentResult
	switch ev.Kind {
	case sensor.KindLoss:
		out.Kind = event.KindSensorLoss
		l := event.Loss{Count: 1}
		if ev.Loss != nil {
			l = event.Loss{Where: ev.Loss.Where, Count: ev.Loss.Count}
			if ev.Loss.Of != 0 {
				l.Of = ev.Loss.Of.String()
			}
		}
		out.Loss = &l
		return []*outItem{e.finish(out, nil, nil, nil, nil)}
	case sensor.KindExec:
		if ev.Exec == nil {
			return nil
		}
		ent, partial = e.exec(ev)
		out.Kind = event.KindProcessExec
	case sensor.KindFork:
		if ev.Fork == nil {
			return nil
		}
		ent, partial = e.fork(ev)
		if !e.cfg.EmitFork {
			return nil
		}
		out.Kind = event.KindProcessFork
	default:
		ent = e.t.get(ev.Proc)
		if ent == nil {
			if !partialOK {
				return nil
			}
			ent = e.placeholder(ev.Proc)
		}
		e.t.touch(ent)
		switch ev.Kind {
		case sensor.KindExit:
			if ev.Exit == nil {
				return nil
			}
			out.Kind = event.KindProcessExit
			out.Exit = &event.Exit{Code: ev.Exit.Code, Signal: ev.Exit.Signal, CoreDumped: ev.Exit.CoreDumped}
			e.t.exit(ent, ev.KtimeNs)
			e.sess.exited(ent, ev.Session)
		case sensor.KindOpen, sensor.KindUnlink, sensor.KindRename, sensor.KindChmod:
			if ev.File == nil {
				return nil
			}
			out.Kind, out.File = fileEvent(ev.File)
			res = e.sess.file(ent, ev.Session, out.File)
		case sensor.KindConnect:
			if ev.Connect == nil {
				return nil
			}
			out.Kind = event.KindNetConnect
			out.Net = netEvent(ev.Connect)
		case sensor.KindDeny:
			if ev.Deny == nil {
				return nil
			}
			out.Kind = event.KindPolicyAction
			out.Alert = denyAlert(ev.Deny)
		default:
			return nil
		}
	}
	if e.cfg.Scope == ScopeSession && !ev.Session.InSession() {
		return nil // the table is kept current, nothing is reported
	}
	if ent.partial {
		partial = appendOnce(partial, event.PartialProcess)
	}
	agent, wait := e.sess.forEvent(ent, ev.Session, res)
	return []*outItem{e.finish(out, ent, agent, wait, partial)}
}

// finish assigns the order fields and builds process, ancestry and identity.
func (e *Engine) finish(out *event.Event, ent *entry, agent *event.Agent, wait *agentWait, partial []string) *outItem {
	e.seq++
	out.Seq = e.seq
	out.EventID = event.NewEventID(out.Time, e.cfg.InstanceID, out.Seq)
	if out.Posture == nil && e.deps.Posture != nil {
		out.Posture = e.deps.Posture.Latest()
	}
	it := &outItem{ev: out, resolve: wait, built: e.now()}
	if ent == nil {
		return it
	}
	p := e.snapshot(ent, it)
	out.Process = p
	if agent != nil {
		out.Agent = agent
	}
	n := 0
	for a := ent.parent; a != nil && n < e.cfg.MaxAncestry; a = a.parent {
		n++
	}
	if n > 0 {
		out.Ancestry = make([]event.Process, n)
		i := 0
		for a := ent.parent; a != nil && i < n; a = a.parent {
			out.Ancestry[i] = e.snapshotValue(a)
			i++
		}
		// Fix-ups point into the slice, which no longer grows.
		for i, a := 0, ent.parent; i < n; i, a = i+1, a.parent {
			if out.Ancestry[i].Binary == nil && a.bin != nil {
				it.fixes = append(it.fixes, binFix{dst: &out.Ancestry[i], f: a.bin})
			}
		}
	}
	last := p
	if n > 0 {
		last = &out.Ancestry[n-1]
	}
	// Complete means rooted at init, or at kthreadd for what the kernel
	// itself started.
	if last.PID != 1 && !(last.PID == 2 && last.PPID == 0) {
		partial = appendOnce(partial, event.PartialAncestry)
	}
	out.Identity = e.identity(p, out.Ancestry)
	if len(partial) > 0 {
		out.Partial = partial
		e.bump(func(s *Stats) { s.Misses++ })
	}
	return it
}

// snapshot copies the image for an event, queueing a fix-up when its hash
// is still being computed.
func (e *Engine) snapshot(ent *entry, it *outItem) *event.Process {
	p := e.snapshotValue(ent)
	if p.Binary == nil && ent.bin != nil {
		it.fixes = append(it.fixes, binFix{dst: &p, f: ent.bin})
	}
	return &p
}

func (e *Engine) snapshotValue(ent *entry) event.Process {
	if ent.proc.Binary == nil && ent.bin != nil {
		if b, ok := ent.bin.ready(); ok {
			ent.proc.Binary = b
		}
	}
	return ent.proc
}
