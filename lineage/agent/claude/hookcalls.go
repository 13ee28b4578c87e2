package claude

import (
	"strings"

	"github.com/lineaged/lineaged/lineage/event"
)

// The hook channel: Claude Code's PreToolUse hook (lineaged hook, answered
// by the sensor) names each tool call, with its tool_use id and input,
// before the call runs. That is exact attribution: a Bash tool process is
// tied to the call whose command its argv carries, with no transcript
// polling, and parallel calls cannot cross because each call binds once.
// A session whose agent has called the hook is "hooked": from then on a
// Bash tool process with no hook decision naming it went around the hook,
// and is flagged.

// maxHookCalls bounds the calls remembered per session, and
// maxHookSessions the sessions.
const (
	maxHookCalls    = 256
	maxHookSessions = 1024
)

// HookCall is a tool call the agent's hook reported.
type HookCall struct {
	// SessionID is the agent's session UUID the hook named (checked by
	// the caller against the hook process's own session).
	SessionID string
	ToolUseID string
	ToolName  string
	// Command is a Bash call's tool_input.command; Path a file tool's
	// tool_input.file_path (or notebook_path).
	Command string
	Path    string
}

type hookCall struct {
	HookCall
	bound bool // tied to a Bash tool process
	done  bool // its PostToolUse arrived
}

// hookLog is what the hook said of one session.
type hookLog struct {
	calls []*hookCall
}

// HookCall records a tool call the agent's PreToolUse hook reported and
// the sensor allowed: the process the session starts for it is tied to it
// exactly. A denied call starts nothing and is not recorded.
func (o *Observer) HookCall(c HookCall) {
	if c.SessionID == "" || c.ToolUseID == "" {
		return
	}
	uuid := strings.ToLower(c.SessionID)
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.hooks[uuid]
	if l == nil {
		if len(o.hookOrder) >= maxHookSessions {
			delete(o.hooks, o.hookOrder[0])
			o.hookOrder = o.hookOrder[1:]
		}
		l = &hookLog{}
		o.hooks[uuid] = l
		o.hookOrder = append(o.hookOrder, uuid)
	}
	for _, h := range l.calls {
		if h.ToolUseID == c.ToolUseID {
			return // a retried hook: the first report stands
		}
	}
	if len(l.calls) >= maxHookCalls {
		l.calls = append(l.calls[:0], l.calls[1:]...)
	}
	l.calls = append(l.calls, &hookCall{HookCall: c})
}

// HookDone records that a tool call ended (PostToolUse): a file event after
// it is no longer that call's.
func (o *Observer) HookDone(sessionID, toolUseID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if l := o.hooks[strings.ToLower(sessionID)]; l != nil {
		for _, h := range l.calls {
			if h.ToolUseID == toolUseID {
				h.done = true
			}
		}
	}
}

// hookBash finds the unbound Bash call of s whose command is payload and
// binds it; hooked reports whether s's agent calls the hook at all. o.mu
// is held.
func (o *Observer) hookBash(s *session, payload string) (c *hookCall, hooked bool) {
	l := o.hooks[s.uuid]
	if s.uuid == "" || l == nil {
		return nil, false
	}
	for _, h := range l.calls {
		if h.ToolName == "Bash" && !h.bound && !s.bound[h.ToolUseID] && commandMatches(h.Command, payload) {
			h.bound = true
			s.bound[h.ToolUseID] = true
			return h, true
		}
	}
	return nil, true
}

// hookFile finds the file tool call of s in flight whose path names the
// file event's; o.mu is held.
func (o *Observer) hookFile(s *session, path, newPath string) *hookCall {
	l := o.hooks[s.uuid]
	if s.uuid == "" || l == nil {
		return nil
	}
	for i := len(l.calls) - 1; i >= 0; i-- {
		h := l.calls[i]
		if h.done || !fileTools[h.ToolName] || h.Path == "" {
			continue
		}
		if pathMatches(h.Path, path) || (newPath != "" && pathMatches(h.Path, newPath)) {
			return h
		}
	}
	return nil
}

// toolUse is the resolved tool call of a binding, as events carry it: a
// fresh copy (the placeholder may already be shared with events in
// flight); o.mu is held.
func (b *binding) toolUse() *event.ToolUse {
	tu := *b.tu
	tu.ID = b.id
	return &tu
}
