package claude

import (
	"context"
	"strings"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
)

// bindTool gives a the tool call of the Bash tool process tool, creating
// its binding on first sight; o.mu is held.
//
// seeded is set for a tool process the observer never saw exec (running
// before the sensor started): its forked copies and children reach the
// observer under different exec_ids, so such bindings are shared by
// session and command.
func (o *Observer) bindTool(s *session, tool *event.Process, a *event.Agent, seeded bool) agent.Result {
	b := o.byExec[tool.ExecID]
	if b == nil {
		payload, _ := BashToolPayload(tool.Argv)
		seedKey := "seeded\x00" + s.rootExecID + "\x00" + payload
		if seeded {
			b = o.byExec[seedKey]
		}
		if b == nil {
			tu := &event.ToolUse{Name: "Bash"}
			b = &binding{sess: s, payload: payload, tu: tu, done: make(chan struct{})}
			b.sum, b.trimSum = payloadSums(payload)
			if !seeded {
				// The hook named the call before it ran (exact), or the
				// session's agent asks the hook and this call went
				// around it. A process running before the sensor
				// started had its hook call before the sensor listened.
				switch c, hooked := o.hookBash(s, payload); {
				case c != nil:
					b.id = c.ToolUseID
					b.tu = &event.ToolUse{ID: c.ToolUseID, Name: c.ToolName, Attribution: event.AttributionExact}
					b.closed = true
					close(b.done)
					o.stats.ToolsBoundExact++
				case hooked:
					b.unhooked, tu.NoHookDecision = true, true
					o.stats.ToolsNoHook++
				}
			}
			o.addBinding(tu, b)
			if seeded {
				o.indexExec(seedKey, b)
			}
		}
		o.indexExec(tool.ExecID, b)
	}
	if b.id != "" {
		a.ToolUse = b.toolUse()
		if a.SessionID == "" || a.SessionIDHint {
			return agent.Result{Agent: a, Resolve: o.resolveSession(s)}
		}
		return agent.Result{Agent: a}
	}
	a.ToolUse = b.tu
	return agent.Result{Agent: a, Resolve: o.resolveTool(b)}
}

// indexExec finds b by key from now on, bounded; o.mu is held.
func (o *Observer) indexExec(key string, b *binding) {
	o.byExec[key] = b
	o.byExecOrder = append(o.byExecOrder, key)
	if len(o.byExecOrder) > maxBindings {
		delete(o.byExec, o.byExecOrder[0])
		o.byExecOrder = o.byExecOrder[1:]
	}
}

// maxBindings bounds the Bash tool processes remembered.
const maxBindings = 8192

// inherit completes an inherited attribution: a tool_use placeholder whose
// binding is already resolved is replaced at once, a pending one waits in
// Resolve; o.mu is held.
func (o *Observer) inherit(s *session, a *event.Agent) func(context.Context, *event.Agent) {
	if a.ToolUse != nil {
		if b := o.bindings[a.ToolUse]; b != nil {
			if b.id == "" {
				return o.resolveInherited(b)
			}
			a.ToolUse = b.toolUse()
		}
	}
	if a.SessionID == "" || a.SessionIDHint {
		return o.resolveSession(s)
	}
	return nil
}

// resolveSession fills the session UUID if it became known by emission time.
func (o *Observer) resolveSession(s *session) func(context.Context, *event.Agent) {
	return func(_ context.Context, a *event.Agent) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if a.SessionID == "" || a.SessionIDHint {
			s.stamp(a)
		}
	}
}

// wait sleeps one poll interval; false when ctx ended.
func (o *Observer) wait(ctx context.Context) bool {
	t := time.NewTimer(o.cfg.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// transcriptOf returns the session's transcript; o.mu is taken.
func (o *Observer) transcriptOf(s *session) *Transcript {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s.transcript == nil && s.uuid != "" && s.configDir != "" {
		o.setUUID(s, s.uuid, s.uuidFirm)
	}
	return s.transcript
}

// resolveTool ties a Bash tool process to its tool_use: the transcript
// record may be written after the exec, so poll it until a Bash call whose
// command equals the eval payload appears, or ctx ends.
func (o *Observer) resolveTool(b *binding) func(context.Context, *event.Agent) {
	return func(ctx context.Context, a *event.Agent) {
		for {
			if id, ok := o.tryBind(ctx, b); ok {
				o.finishAgent(b, a, id)
				return
			}
			if !o.wait(ctx) {
				o.mu.Lock()
				if b.id == "" {
					o.stats.ToolsUnbound++
				}
				o.unresolved(b, a)
				o.mu.Unlock()
				return
			}
		}
	}
}

// unresolved ends a Resolve that ran out of time: a keeps the binding's
// placeholder (the engine gave Resolve a copy the observer does not know),
// so whatever inherits a can still be resolved later; o.mu is held.
func (o *Observer) unresolved(b *binding, a *event.Agent) {
	if b.id != "" {
		a.ToolUse = b.toolUse()
		o.addBinding(a.ToolUse, b)
	} else {
		a.ToolUse = b.tu
	}
	if a.SessionID == "" || a.SessionIDHint {
		b.sess.stamp(a)
	}
}

// addBinding indexes b by a ToolUse pointer, bounded; o.mu is held.
func (o *Observer) addBinding(tu *event.ToolUse, b *binding) {
	if _, ok := o.bindings[tu]; ok {
		return
	}
	o.bindings[tu] = b
	o.bindOrder = append(o.bindOrder, tu)
	if len(o.bindOrder) > 4*maxBindings {
		for _, old := range o.bindOrder[:maxBindings] {
			delete(o.bindings, old)
		}
		o.bindOrder = append([]*event.ToolUse(nil), o.bindOrder[maxBindings:]...)
	}
}

// finishAgent writes the resolution into a (a fresh ToolUse: the
// placeholder may already be shared with events in flight).
func (o *Observer) finishAgent(b *binding, a *event.Agent, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	tu := b.toolUse()
	a.ToolUse = tu
	o.addBinding(tu, b)
	if a.SessionID == "" || a.SessionIDHint {
		b.sess.stamp(a)
	}
}

// tryBind polls the transcript once and binds b to the first unbound Bash
// call with the same command.
func (o *Observer) tryBind(ctx context.Context, b *binding) (string, bool) {
	o.mu.Lock()
	if b.id != "" {
		id := b.id
		o.mu.Unlock()
		return id, true
	}
	o.mu.Unlock()
	t := o.transcriptOf(b.sess)
	if t == nil {
		return "", false
	}
	_ = t.Poll(ctx)
	o.mu.Lock()
	defer o.mu.Unlock()
	if b.id != "" {
		return b.id, true
	}
	c, ok := t.find(func(calls []*ToolCall) *ToolCall {
		for _, c := range calls {
			// Only a Bash call runs a Bash tool process: another tool's
			// record naming the same command is not this process's call.
			if c.Name == "Bash" && !b.sess.bound[c.ID] && c.matches(b.sum, b.trimSum) {
				return c
			}
		}
		return nil
	})
	if !ok {
		return "", false
	}
	b.sess.bound[c.ID] = true
	b.id = c.ID
	attr := event.AttributionTranscript
	if _, bad := t.Untrusted(); bad {
		attr = event.AttributionUntrusted
		o.stats.ToolsBoundUntrusted++
	}
	b.tu = &event.ToolUse{ID: c.ID, Name: c.Name, Attribution: attr, NoHookDecision: b.unhooked}
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	o.stats.ToolsBound++
	return c.ID, true
}

// commandMatches compares a transcript command with an eval payload: equal,
// or equal once surrounding whitespace is trimmed (Claude Code trims the
// command before quoting it).
func commandMatches(cmd, payload string) bool {
	return cmd == payload || strings.TrimSpace(cmd) == strings.TrimSpace(payload)
}

// resolveInherited completes the tool_use of a process (or file event)
// descending from a Bash tool process whose binding was still pending.
func (o *Observer) resolveInherited(b *binding) func(context.Context, *event.Agent) {
	return func(ctx context.Context, a *event.Agent) {
		for {
			if id, ok := o.tryBind(ctx, b); ok {
				o.finishAgent(b, a, id)
				return
			}
			select {
			case <-ctx.Done():
				o.mu.Lock()
				o.unresolved(b, a)
				o.mu.Unlock()
				return
			case <-b.done:
			default:
				if !o.wait(ctx) {
					o.mu.Lock()
					o.unresolved(b, a)
					o.mu.Unlock()
					return
				}
			}
		}
	}
}
