package lineage

import (
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// Agent identity (docs/agents.md, "Agent identity"). The kernel decides
// session membership at exec, by path, before any hash exists. Lineage
// settles what the recognised binary is:
//
//   - a recognised exec inside a session whose binary is not already known
//     to be a listed release is a look-alike: it stays an ordinary member of
//     the enclosing session (demote), so its children keep that session and
//     its tool call, and its argv is not hidden as an agent prompt;
//   - every session root is labelled verified or agent-unverified once its
//     binary's identity is known (verifier, in the emitter, in event order,
//     so a replay settles it at the same event).

// demoted maps look-alike roots to the session they stay in, bounded like
// the process table.
type demoted struct {
	m   map[sensor.ProcKey]sensor.SessionRef
	max int
}

// of is the session an event of a process in session s belongs to: the
// enclosing session when s is rooted at a look-alike.
func (d *demoted) of(s sensor.SessionRef) sensor.SessionRef {
	for range 8 { // look-alikes nested in look-alikes: bounded
		outer, ok := d.m[s.Root]
		if !ok || !s.InSession() {
			return s
		}
		s = outer
	}
	return s
}

func (d *demoted) add(k sensor.ProcKey, outer sensor.SessionRef, t *table) {
	if d.m == nil {
		d.m = map[sensor.ProcKey]sensor.SessionRef{}
	}
	if len(d.m) >= d.max {
		for k := range d.m {
			if t.get(k) == nil {
				delete(d.m, k)
			}
		}
	}
	d.m[k] = outer
}

// remapSession puts an event of a look-alike's process (or its
// descendants) into the session the look-alike stays in.
func (e *Engine) remapSession(ev *sensor.Event) {
	if len(e.demoted.m) > 0 && ev.Session.InSession() {
		ev.Session = e.demoted.of(ev.Session)
	}
}

// demote decides, at the exec of a recognised agent inside a session,
// whether it starts a nested session (its binary is already known to be a
// listed release of that agent: the hash was cached; or it is the very file
// the enclosing session's root runs) or is a look-alike that stays in the
// enclosing session. ent is the new image.
func (e *Engine) demote(ev *sensor.Event, ent *entry) {
	x := ev.Exec
	if x == nil || x.Recognised == sensor.AgentNone || !x.ParentSession.InSession() {
		return
	}
	if b, ok := ent.bin.ready(); ok {
		if m, _ := e.cfg.AgentReleases.Verify(x.Recognised, b); m != agent.Unverified {
			return
		}
	}
	outer := e.demoted.of(x.ParentSession)
	if r := e.t.get(outer.Root); r != nil && r.bin != nil && x.Binary != (sensor.FileStat{}) &&
		r.bin.req.Stat == x.Binary && outer.Agent == x.Recognised {
		// The very file (device, inode, size, times) the enclosing
		// session's root runs, its hash perhaps still being computed:
		// it is what that root is, and that session's label says so.
		return
	}
	e.demoted.add(ev.Proc, outer, e.t)
	cp := *x
	cp.Recognised = sensor.AgentNone
	cp.ParentSession = sensor.SessionRef{}
	ev.Exec = &cp
	ev.Session = outer
	ent.proc.AgentLookalike = true
	e.add(func(s *Stats) { s.AgentLookalikes++ })
}

// verifier settles each session root's verification, in the emitter.
type verifier struct {
	rel   *agent.Releases
	m     map[string]*verdict // root exec id -> verdict
	order []string
}

type verdict struct {
	method  string
	release string
	at      time.Time
}

// maxVerdicts bounds the settled sessions remembered.
const maxVerdicts = 16384

// stamp labels the event's agent object with its session's verification,
// settling it when the event carries the root's binary identity. late
// holds the processes whose hashing ran out of time in this event.
func (v *verifier) stamp(ev *event.Event, late map[*event.Process]bool) {
	a := ev.Agent
	if a == nil || a.RootExecID == "" {
		return
	}
	kind := agentKindNamed(a.Name)
	if kind == sensor.AgentNone {
		return
	}
	vd := v.m[a.RootExecID]
	if vd == nil {
		if b := rootBinary(ev, a.RootExecID, late); b != nil {
			m, rel := v.rel.Verify(kind, b)
			vd = &verdict{method: m, release: rel.Version, at: ev.Time}
			v.remember(a.RootExecID, vd)
		}
	}
	c := *a
	if vd == nil {
		f := false
		c.Verified, c.Verification = &f, agent.VerificationPending
	} else {
		ok := vd.method != agent.Unverified
		at := vd.at
		c.Verified, c.Verification, c.VerifiedAt, c.Release = &ok, vd.method, &at, vd.release
	}
	ev.Agent = &c
}

func (v *verifier) remember(root string, vd *verdict) {
	if v.m == nil {
		v.m = map[string]*verdict{}
	}
	v.m[root] = vd
	v.order = append(v.order, root)
	if len(v.order) > maxVerdicts {
		delete(v.m, v.order[0])
		v.order = v.order[1:]
	}
}

// rootBinary finds the session root's binary identity in the event: its
// process or an ancestor, when hashing did not run out of time.
func rootBinary(ev *event.Event, root string, late map[*event.Process]bool) *event.Binary {
	if p := ev.Process; p != nil && p.ExecID == root && p.Binary != nil && !late[p] {
		return p.Binary
	}
	for i := range ev.Ancestry {
		p := &ev.Ancestry[i]
		if p.ExecID == root && p.Binary != nil && !late[p] {
			return p.Binary
		}
	}
	return nil
}

func agentKindNamed(name string) sensor.AgentKind {
	for _, k := range []sensor.AgentKind{sensor.AgentClaudeCode, sensor.AgentCodex, sensor.AgentGemini} {
		if k.String() == name {
			return k
		}
	}
	return sensor.AgentNone
}
