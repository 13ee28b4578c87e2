package lineage

import (
	"github.com/lineaged/lineaged/lineage/agent"
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
	var (
		ent     *entry
		partial []string
		res     *agent.Result
		ok      bool
	)
	e.remapSession(&ev) // verify.go
	switch ev.Kind {
	case sensor.KindLoss:
		mapKind(ev, out)
		e.lossWindow(ev, out) // mapping_tamper.go
		if ev.Session.Root.PID != 0 && out.Loss != nil {
			// One session's loss (the session budget): named by its root.
			out.Loss.RootExecID = e.sess.rootExecID(ev.Session)
		}
		return []*outItem{e.finish(out, nil, nil, nil, nil)}
	case sensor.KindTamper:
		return e.tamperNow(ev, out) // mapping_tamper.go
	case sensor.KindExec, sensor.KindFork:
		ent, partial, ok = e.newImage(&ev, out)
	default:
		ent, res, ok = e.processEvent(ev, out, partialOK)
	}
	if !ok {
		return nil
	}
	if e.cfg.Scope == ScopeAgents && !ev.Session.InSession() {
		return nil // the table is kept current, nothing is reported
	}
	if ent.partial {
		partial = appendOnce(partial, event.PartialProcess)
	}
	agent, wait := e.sess.forEvent(ent, ev.Session, res)
	e.sess.adopt(ent, ev.Session, res, wait)
	return []*outItem{e.finish(out, ent, agent, wait, partial)}
}

// newImage records the image an exec or fork starts; false drops the event
// (no payload, or a fork while forks are not reported). A fork whose child
// the kernel could not track is always reported: it is the one event that
// says the child's records are missing from its session. An exec the
// kernel could not track in the session it starts or joins says so too.
func (e *Engine) newImage(ev *sensor.Event, out *event.Event) (*entry, []string, bool) {
	switch {
	case ev.Kind == sensor.KindExec && ev.Exec != nil:
		ent, partial := e.exec(ev)
		out.Kind = event.KindProcessExec
		out.Untracked = ev.Exec.Flags&sensor.ExecUntracked != 0
		return ent, partial, true
	case ev.Kind == sensor.KindFork && ev.Fork != nil:
		ent, partial := e.fork(*ev)
		out.Kind = event.KindProcessFork
		out.Untracked = ev.Fork.Untracked
		return ent, partial, e.cfg.EmitFork || ev.Fork.Untracked
	}
	return nil, nil, false
}

// processEvent maps an event of a running process onto out and applies it
// to the table (exit) and the session (the observer's answer for a file
// event). An unknown process gets a placeholder when partialOK, else the
// event is dropped, as is one with no payload or of an unknown kind.
func (e *Engine) processEvent(ev sensor.Event, out *event.Event, partialOK bool) (*entry, *agent.Result, bool) {
	ent := e.t.get(ev.Proc)
	if ent == nil {
		if !partialOK {
			return nil, nil, false
		}
		ent = e.placeholder(ev.Proc)
	}
	e.t.touch(ent)
	if !mapKind(ev, out) {
		return nil, nil, false
	}
	var res *agent.Result
	switch ev.Kind {
	case sensor.KindExit:
		e.t.exit(ent, ev.KtimeNs)
		e.sess.exited(ent, ev.Session)
	case sensor.KindOpen, sensor.KindUnlink, sensor.KindRename, sensor.KindChmod, sensor.KindFileModify:
		res = e.sess.file(ent, ev.Session, out.File)
	}
	return ent, res, true
}

// finish builds process, ancestry and identity (seq and event_id are the
// sequencer's, after the policy stage).
func (e *Engine) finish(out *event.Event, ent *entry, agent *event.Agent, wait *agentWait, partial []string) *outItem {
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
	out.Ancestry = e.ancestry(ent, it)
	if !rooted(p, out.Ancestry) {
		partial = appendOnce(partial, event.PartialAncestry)
	}
	out.Identity = e.identity(p, out.Ancestry)
	if len(partial) > 0 {
		out.Partial = partial
		e.bump(func(s *Stats) { s.Misses++ })
	}
	return it
}

// ancestry snapshots ent's ancestors, nearest first, up to MaxAncestry,
// queueing a fix-up on it for each hash still being computed. Once every
// hash in it is in, the parent keeps it and its later children's events
// share it (Event.Ancestry is read-only downstream: the redactor replaces
// the slice, never writes into it).
func (e *Engine) ancestry(ent *entry, it *outItem) []event.Process {
	if p := ent.parent; p != nil && p.kids != nil {
		return p.kids
	}
	n := 0
	for a := ent.parent; a != nil && n < e.cfg.MaxAncestry; a = a.parent {
		n++
	}
	if n == 0 {
		return nil
	}
	anc := make([]event.Process, n)
	i := 0
	for a := ent.parent; a != nil && i < n; a = a.parent {
		anc[i] = e.snapshotValue(a)
		i++
	}
	// Fix-ups point into the slice, which no longer grows.
	fixes := len(it.fixes)
	for i, a := 0, ent.parent; i < n; i, a = i+1, a.parent {
		if anc[i].Binary == nil && a.bin != nil {
			it.fixes = append(it.fixes, binFix{dst: &anc[i], f: a.bin})
		}
		if anc[i].Loaded == nil && a.loaded != nil {
			it.fixes = append(it.fixes, binFix{dst: &anc[i], f: a.loaded, loaded: true})
		}
	}
	if len(it.fixes) == fixes && n <= maxSharedAncestry {
		// Complete: an image never changes once its hashes are in,
		// nor does its chain, so every later child of the parent has
		// this very ancestry. It is shared, read-only from here on.
		ent.parent.kids = anc
	}
	return anc
}

// maxSharedAncestry bounds the ancestries kept for sharing (longer chains
// are rare, and each image kept would hold one of up to MaxAncestry).
const maxSharedAncestry = 32

// rooted reports whether the ancestry of p is complete: rooted at init, or
// at kthreadd for what the kernel itself started.
func rooted(p *event.Process, ancestry []event.Process) bool {
	last := p
	if n := len(ancestry); n > 0 {
		last = &ancestry[n-1]
	}
	return last.PID == 1 || (last.PID == 2 && last.PPID == 0)
}

// snapshot copies the image for an event, queueing a fix-up when its hash
// is still being computed.
func (e *Engine) snapshot(ent *entry, it *outItem) *event.Process {
	p := e.snapshotValue(ent)
	if p.Binary == nil && ent.bin != nil {
		it.fixes = append(it.fixes, binFix{dst: &p, f: ent.bin})
	}
	if p.Loaded == nil && ent.loaded != nil {
		it.fixes = append(it.fixes, binFix{dst: &p, f: ent.loaded, loaded: true})
	}
	return &p
}

func (e *Engine) snapshotValue(ent *entry) event.Process {
	if ent.proc.Binary == nil && ent.bin != nil {
		if b, ok := ent.bin.ready(); ok {
			ent.proc.Binary = b
		}
	}
	if ent.proc.Loaded == nil && ent.loaded != nil {
		if b, ok := ent.loaded.ready(); ok {
			ent.proc.Loaded = b
		}
	}
	return ent.proc
}
