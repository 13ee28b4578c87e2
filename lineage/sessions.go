package lineage

import (
	"context"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

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
}

func withRole(a *event.Agent, role string) *event.Agent {
	if role == "" || a.Role == role {
		return a
	}
	c := *a
	c.Role = role
	return &c
}

func (e *Engine) isSessionRoot(ev sensor.Event) bool {
	if ev.Kind != sensor.KindExec {
		return false
	}
	return ev.Exec.Recognised != sensor.AgentNone || (ev.Session.InSession() && ev.Session.Root == ev.Proc)
}

// agentOf is the attribution of an image in a session: the observer's or
// inherited one when it matches the session, else the default.
func (e *Engine) agentOf(ent *entry, s sensor.SessionRef) *event.Agent {
	if !s.InSession() {
		return nil
	}
	root := e.rootExecID(s)
	if ent.agent != nil && ent.agent.RootExecID == root {
		return ent.agent
	}
	role := event.RoleDescendant
	if ent.proc.ExecID == root {
		role = event.RoleRoot
	}
	a := &event.Agent{Name: s.Agent.String(), RootExecID: root, Role: role}
	ent.agent, ent.agentJob, ent.agentRole = a, nil, ""
	return a
}

// currentAgent is the attribution of an image for an event, and the
// resolution the event must wait for when one is still running.
func (e *Engine) currentAgent(ent *entry, s sensor.SessionRef) (*event.Agent, *agentWait) {
	a := e.agentOf(ent, s)
	if a == nil || ent.agentJob == nil {
		return a, nil
	}
	select {
	case <-ent.agentJob.done:
		ent.agent = withRole(ent.agentJob.cp, ent.agentRole)
		ent.agentJob, ent.agentRole = nil, ""
		return ent.agent, nil
	default:
		return a, &agentWait{job: ent.agentJob, role: ent.agentRole}
	}
}

// startResolve runs an observer's Resolve on a private copy of a.
func (e *Engine) startResolve(a *event.Agent, resolve func(context.Context, *event.Agent)) *resolveJob {
	cp := *a
	if a.ToolUse != nil {
		tu := *a.ToolUse
		cp.ToolUse = &tu
	}
	job := &resolveJob{done: make(chan struct{}), cp: &cp}
	go func() {
		defer close(job.done)
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.EnrichWait)
		defer cancel()
		resolve(ctx, job.cp)
	}()
	return job
}

// inherit gives child the attribution of from (its parent or previous
// image), including a resolution still running; the session root's
// children are its descendants.
func inherit(child, from *entry) {
	child.agent, child.agentJob, child.agentRole = from.agent, from.agentJob, from.agentRole
	if from.agent != nil && from.agent.Role == event.RoleRoot {
		d := *from.agent
		d.Role = event.RoleDescendant
		child.agent = &d
		child.agentRole = event.RoleDescendant
	}
}

func (e *Engine) rootExecID(s sensor.SessionRef) string {
	if id, ok := e.sessions[s.Root]; ok {
		return id
	}
	if r := e.t.get(s.Root); r != nil {
		// A session found by the /proc seed: its root is the image that
		// was running when the sensor started.
		id := r.proc.ExecID
		e.sessions[s.Root] = id
		return id
	}
	return e.execID(s.Root.PID, s.Root.StartNs, s.Root.StartNs)
}
