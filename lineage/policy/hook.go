package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy/hookclient"
)

// ActionDenyTool answers the agent's PreToolUse hook with a denial
// (docs/hooks.md). It takes one optional parameter, reason: the text the
// agent is given, after the rule id.
const ActionDenyTool = "deny-tool"

// Hook events: a tool call is decided on PreToolUse; PostToolUse and
// PostToolUseFailure report how it ended.
const (
	HookPreToolUse         = hookclient.PreToolUse
	HookPostToolUse        = hookclient.PostToolUse
	HookPostToolUseFailure = hookclient.PostToolUseFailure
)

// maxInputValue bounds each value of a tool call's input summary.
const maxInputValue = 256

func denyToolParams(params map[string]any) error {
	for k, v := range params {
		if k != "reason" {
			return fmt.Errorf("unknown parameter %q (known: reason)", k)
		}
		if _, ok := v.(string); !ok {
			return fmt.Errorf("reason must be a string")
		}
	}
	return nil
}

// ToolRequest is one tool call the agent's hook asks about.
type ToolRequest struct {
	// SessionID is the agent's own session id; ToolUseID the tool_use id.
	SessionID string
	ToolUseID string
	ToolName  string
	Cwd       string
	// Input is the tool's input as the agent sent it (tool_input).
	Input map[string]any
}

// DecideTool judges a tool call and returns the agent.tool_call event that
// records it, with its decision: ev carries what the caller knows of the
// session (Process, Agent, Posture, Identity); DecideTool adds the tool
// call, runs the rules with the deny-tool action that can match
// agent.tool_call over it, and denies when one matches, naming the rule.
// The caller gives the event to the pipeline (the stage then reports the
// denial as policy.action and runs the other actions). Safe for
// concurrent use with Process: it has its own activation and reads the
// rule set in force.
func (s *Stage) DecideTool(ev *event.Event, req ToolRequest) *event.Event {
	ev.Kind = event.KindAgentToolCall
	ev.Tool = &event.ToolCall{
		ID:        req.ToolUseID,
		Name:      req.ToolName,
		Hook:      HookPreToolUse,
		SessionID: req.SessionID,
		Input:     s.inputSummary(req.Input),
		Decision:  event.DecisionAllow,
	}
	if ev.Agent != nil && req.ToolUseID != "" {
		ag := *ev.Agent
		ag.ToolUse = &event.ToolUse{ID: req.ToolUseID, Name: req.ToolName, Attribution: event.AttributionExact}
		ev.Agent = &ag
	}
	rs := s.rules.Load()
	if rs.Len() == 0 {
		return ev
	}
	var a activation
	a.bind(ev, int(s.nsessions.Load()), rs.adapter)
	a.tool = toolValue(req)
	for _, r := range rs.forKind(event.KindAgentToolCall) {
		i := slices.IndexFunc(r.Actions, func(a Action) bool { return a.Name == ActionDenyTool })
		if i < 0 || !s.matches(r, &a) {
			continue
		}
		ev.Tool.Decision = event.DecisionDeny
		ev.Tool.Rule = r.ID
		ev.Tool.Reason = denyReason(r, r.Actions[i], ev.Posture)
		break
	}
	return ev
}

// toolValue is the tool variable of the rules: name, id and input.
func toolValue(req ToolRequest) map[string]any {
	in := req.Input
	if in == nil {
		in = map[string]any{}
	}
	return map[string]any{"name": req.ToolName, "id": req.ToolUseID, "input": in}
}

// denyReason is the text the agent reads: the rule, its reason (the
// action's, else the rule's description) and, when the rule looks at the
// posture and the posture is not compliant, the checks that failed.
func denyReason(r *Rule, a Action, p *event.Posture) string {
	why, _ := a.Params["reason"].(string)
	if why == "" {
		why = r.Description
	}
	msg := fmt.Sprintf("lineaged policy rule %s: %s", r.ID, why)
	if p != nil && !p.Compliant && strings.Contains(r.Condition, varPosture) {
		failed := "unknown"
		if len(p.Failed) > 0 {
			failed = strings.Join(p.Failed, ", ")
		}
		msg += fmt.Sprintf(" (device posture not compliant; failed checks: %s)", failed)
	}
	return msg
}

// inputSummary is the redacted summary of a tool input written in the
// event: each key with its value as text, redacted and shortened.
func (s *Stage) inputSummary(in map[string]any) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for _, k := range slices.Sorted(maps.Keys(in)) {
		var v string
		switch x := in[k].(type) {
		case string:
			v = x
		case nil:
			v = ""
		default:
			v = fmt.Sprint(x)
		}
		out[k] = shorten(s.redactor.Load().String(v), maxInputValue)
	}
	return out
}

// shorten cuts s to at most n bytes on a rune boundary, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// denyTool reports, as policy.action, the denial DecideTool made for ev by
// rule r. A deny-tool rule that matches an event that was not denied by it
// (the rules were reloaded in between, or the event is not a tool call)
// reports nothing: the hook's answer is what happened.
func (s *Stage) denyTool(dst []*event.Event, r *Rule, ev *event.Event) []*event.Event {
	if ev.Tool == nil || ev.Tool.Decision != event.DecisionDeny || ev.Tool.Rule != r.ID {
		return dst
	}
	out := *ev
	out.Kind = event.KindPolicyAction
	out.Seq, out.EventID = 0, ""
	out.Alert = &event.Alert{
		Rule: r.ID, Severity: r.Severity, Action: ActionDenyTool, Result: ResultDone,
		Message: ev.Tool.Reason, Trigger: ev,
	}
	return append(dst, &out)
}

// ToolOutcome returns the agent.tool_call event that records how a call
// ended, reported by the agent's PostToolUse (success) or
// PostToolUseFailure (failure, or interrupted) hook, with the duration the
// agent measured. Nothing is decided: the call ran, so its decision is
// allow. Safe for concurrent use with Process.
func (s *Stage) ToolOutcome(ev *event.Event, req ToolRequest, hook string, interrupted bool, durationMS *uint64) *event.Event {
	ev.Kind = event.KindAgentToolCall
	outcome := event.OutcomeSuccess
	if hook == HookPostToolUseFailure {
		outcome = event.OutcomeFailure
		if interrupted {
			outcome = event.OutcomeInterrupted
		}
	}
	ev.Tool = &event.ToolCall{
		ID: req.ToolUseID, Name: req.ToolName, Hook: hook, SessionID: req.SessionID,
		Input: s.inputSummary(req.Input), Decision: event.DecisionAllow,
		Outcome: outcome, DurationMS: durationMS,
	}
	return ev
}
