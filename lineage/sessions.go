package lineage

import (
	"context"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// sessions owns agent attribution: which exec image roots each session,
// the role of every image in its session, and the calls into the
// agent.Integration. It runs on the table goroutine, in event order; an
// observer's resolution runs off it, and the emitter waits for it (bounded
// by Config.EnrichWait). The engine calls execed, file and exited as the
// table changes, and forEvent when it builds an event; sessions reads the
// table and writes only the attribution of its images.
type sessions struct {
	roots    map[sensor.ProcKey]string // session root -> root exec id
	maxRoots int
	t        *table
	bootID   string
	obs      agent.Integration // nil: the default attribution only
	proc     ProcFacts         // the live environment, for the observer
	wait     time.Duration     // bound on a resolution (Config.EnrichWait)
}

// attribution is an image's agent attribution; job, when set, is a
// resolution of it still running (role overrides the role of its result).
type attribution struct {
	agent *event.Agent
	job   *resolveJob
	role  string
	// via is event.Agent.Via for every event of the image (and, through
	// inherit, of its descendants); kept apart from agent, which the
	// observer may replace.
	via string
}

// resolveJob is an observer's Resolve running on a private copy of an
// attribution; cp is valid once done is closed.
type resolveJob struct {
	done chan struct{}
	cp   *event.Agent
}

// agentWait makes an event wait for a resolution; role overrides the role
// of the resolved attribution (a child of the root inherits it as a
// descendant).
type agentWait struct {
	job  *resolveJob
	role string
	via  string
}

// resolved is the attribution once the job is done.
func (w *agentWait) resolved() *event.Agent { return withVia(withRole(w.job.cp, w.role), w.via) }

func withVia(a *event.Agent, via string) *event.Agent {
	if via == "" || a == nil || a.Via == via {
		return a
	}
	c := *a
	c.Via = via
	return &c
}

func withRole(a *event.Agent, role string) *event.Agent {
	if role == "" || a.Role == role {
		return a
	}
	c := *a
	c.Role = role
	return &c
}

// isSessionRoot reports whether ev is an exec that starts a session: the
// kernel recognised an agent, or names the process as its session's root.
func isSessionRoot(ev sensor.Event) bool {
	if ev.Kind != sensor.KindExec {
		return false
	}
	return ev.Exec.Recognised != sensor.AgentNone || (ev.Session.InSession() && ev.Session.Root == ev.Proc)
}

// execed attributes a new image ent of ev.Proc; prev is the image it
// replaces and birth the one it descends from (either may be nil).
func (ss *sessions) execed(ev sensor.Event, ent, prev, birth *entry) {
	ss.noteRoot(ev, ent)
	if !ev.Session.InSession() {
		return
	}
	root := ss.rootExecID(ev.Session)
	switch {
	case prev != nil && prev.att.agent != nil && prev.att.agent.RootExecID == root:
		inherit(ent, prev)
	case birth != nil && birth.att.agent != nil && birth.att.agent.RootExecID == root:
		inherit(ent, birth)
	}
	if ent.proc.ExecID == root {
		ent.att = attribution{}
	}
	if ss.obs != nil {
		ss.observeExec(ev, ent, birth)
	}
	if ev.Exec.Flags&sensor.ExecViaUsermodeHelper != 0 {
		ent.att.via = event.ViaUsermodeHelper
	}
}

// noteRoot records ent as its session's root when ev starts a session.
func (ss *sessions) noteRoot(ev sensor.Event, ent *entry) {
	if len(ss.roots) > ss.maxRoots {
		// Forget sessions whose root left the table.
		for k := range ss.roots {
			if ss.t.get(k) == nil {
				delete(ss.roots, k)
			}
		}
	}
	if ev.Exec.Recognised != sensor.AgentNone {
		ss.roots[ev.Proc] = ent.proc.ExecID
	} else if ev.Session.InSession() && ev.Session.Root == ev.Proc {
		if _, ok := ss.roots[ev.Proc]; !ok {
			ss.roots[ev.Proc] = ent.proc.ExecID
		}
	}
}

func (ss *sessions) observeExec(ev sensor.Event, ent, birth *entry) {
	p := ent.proc
	var parentProc *event.Process
	if birth != nil {
		pp := birth.proc
		parentProc = &pp
	}
	pid := ev.Proc.PID
	res := ss.obs.Exec(agent.Exec{
		Proc: &p, Parent: parentProc, ParentAgent: ent.att.agent, Session: ev.Session, Raw: ev.Exec,
		Env: func(key string) (string, bool) {
			v, ok, err := ss.proc.Env(pid, key)
			return v, ok && err == nil
		},
	})
	if res.Agent != nil {
		ent.att = attribution{agent: res.Agent, via: ent.att.via}
	}
	if res.Resolve != nil {
		a := ss.agentOf(ent, ev.Session)
		ent.att.job, ent.att.role = ss.startResolve(a, res.Resolve), ""
	}
}

// file tells the observer about a file event of a session member; nil when
// there is no observer or ent is outside a session.
func (ss *sessions) file(ent *entry, s sensor.SessionRef, f *event.File) *agent.Result {
	if ss.obs == nil || !s.InSession() {
		return nil
	}
	p := ent.proc
	r := ss.obs.File(agent.File{Proc: &p, Agent: ss.agentOf(ent, s), File: f})
	if a, ra := ent.att.agent, r.Agent; a != nil && ra != nil && ra.SessionID != "" && ra.RootExecID == a.RootExecID &&
		(ra.SessionID != a.SessionID || ra.SessionIDHint != a.SessionIDHint) {
		// The session's id, learned since the process's own attribution
		// was made (the agent's first transcript append comes after its
		// exec): kept for its exit and connections, which the
		// integration is not asked about, and for its children.
		cp := *a
		cp.SessionID, cp.SessionIDHint = ra.SessionID, ra.SessionIDHint
		ent.att.agent = &cp
	}
	return &r
}

// adopt keeps the observer's answer to a seeded process's own event as
// the process's attribution when it gives the process a role of its own
// (a tool call's shell, a hook, an MCP server, bound from what the seed
// read) where the seed left the default: the process's exit and
// connections, which the integration is not asked about, and its children
// then carry it (with the tool_use its resolution finds), as they would
// had its exec been seen. w is the event's wait for that resolution.
func (ss *sessions) adopt(ent *entry, s sensor.SessionRef, res *agent.Result, w *agentWait) {
	if !ent.seeded || res == nil || res.Agent == nil || ent.att.job != nil {
		return
	}
	switch res.Agent.Role {
	case event.RoleTool, event.RoleHook, event.RoleMCPServer:
	default:
		return
	}
	cur := ss.agentOf(ent, s)
	if cur == nil || cur.Role != event.RoleDescendant || cur.RootExecID != res.Agent.RootExecID {
		return
	}
	ent.att.agent, ent.att.role = res.Agent, ""
	if w != nil {
		ent.att.job = w.job
	}
}

// exited tells the observer that a session member's process ended.
func (ss *sessions) exited(ent *entry, s sensor.SessionRef) {
	if ss.obs == nil || !s.InSession() {
		return
	}
	p := ent.proc
	ss.obs.Exit(&p)
}

// forEvent is the attribution of an event of ent, and the resolution the
// event must wait for; res is the observer's answer to this very event.
func (ss *sessions) forEvent(ent *entry, s sensor.SessionRef, res *agent.Result) (*event.Agent, *agentWait) {
	agent, wait := ss.current(ent, s)
	if res != nil && res.Agent != nil {
		agent, wait = res.Agent, nil
	}
	if res != nil && res.Resolve != nil && agent != nil {
		wait = &agentWait{job: ss.startResolve(agent, res.Resolve)}
	}
	if v := ent.att.via; v != "" {
		agent = withVia(agent, v)
		if wait != nil {
			wait.via = v
		}
	}
	return agent, wait
}

// agentOf is the attribution of an image in a session: the observer's or
// inherited one when it matches the session, else the default.
func (ss *sessions) agentOf(ent *entry, s sensor.SessionRef) *event.Agent {
	if !s.InSession() {
		return nil
	}
	root := ss.rootExecID(s)
	if ent.att.agent != nil && ent.att.agent.RootExecID == root {
		return ent.att.agent
	}
	role := event.RoleDescendant
	if ent.proc.ExecID == root {
		role = event.RoleRoot
	}
	a := &event.Agent{Name: s.Agent.String(), RootExecID: root, Role: role}
	ent.att = attribution{agent: a, via: ent.att.via}
	return a
}

// current is the attribution of an image for an event, and the resolution
// the event must wait for when one is still running.
func (ss *sessions) current(ent *entry, s sensor.SessionRef) (*event.Agent, *agentWait) {
	a := ss.agentOf(ent, s)
	if a == nil || ent.att.job == nil {
		return a, nil
	}
	select {
	case <-ent.att.job.done:
		ent.att = attribution{agent: withRole(ent.att.job.cp, ent.att.role), via: ent.att.via}
		return ent.att.agent, nil
	default:
		return a, &agentWait{job: ent.att.job, role: ent.att.role}
	}
}

// startResolve runs an observer's Resolve on a private copy of a.
func (ss *sessions) startResolve(a *event.Agent, resolve func(context.Context, *event.Agent)) *resolveJob {
	cp := *a
	if a.ToolUse != nil {
		tu := *a.ToolUse
		cp.ToolUse = &tu
	}
	job := &resolveJob{done: make(chan struct{}), cp: &cp}
	go func() {
		defer close(job.done)
		ctx, cancel := context.WithTimeout(context.Background(), ss.wait)
		defer cancel()
		resolve(ctx, job.cp)
	}()
	return job
}

// inherit gives child the attribution of from (its parent or previous
// image), including a resolution still running; the session root's
// children are its descendants.
func inherit(child, from *entry) {
	child.att = from.att
	if from.att.agent != nil && from.att.agent.Role == event.RoleRoot {
		d := *from.att.agent
		d.Role = event.RoleDescendant
		child.att.agent = &d
		child.att.role = event.RoleDescendant
	}
}

func (ss *sessions) rootExecID(s sensor.SessionRef) string {
	if id, ok := ss.roots[s.Root]; ok {
		return id
	}
	if r := ss.t.get(s.Root); r != nil {
		// A session found by the /proc seed: its root is the image that
		// was running when the sensor started.
		id := r.proc.ExecID
		ss.roots[s.Root] = id
		return id
	}
	return event.ExecID(ss.bootID, s.Root.PID, s.Root.StartNs, s.Root.StartNs)
}
