package policy

import (
	"strings"
	"sync"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
)

const denyBashRule = `rules:
  - id: no-rm
    description: no recursive removal
    severity: high
    condition: kind == "agent.tool_call" && tool.name == "Bash" && tool.input.command.startsWith("rm -rf")
    actions:
      - deny-tool: {reason: recursive removal is not allowed}
  - id: watch-fetch
    description: a web fetch
    severity: low
    condition: kind == "agent.tool_call" && tool.name == "WebFetch"
    actions: [alert]
`

func newHookStage(t testing.TB, rs *Rules) *Stage {
	t.Helper()
	s, err := New(Config{Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func toolEvent() *event.Event {
	ev := session(event.KindAgentToolCall, "/usr/bin/lineaged", "/home/dev/proj")
	ev.Agent.Role, ev.Agent.ToolUse = event.RoleHook, nil
	return ev
}

func TestDecideToolDeniesWithTheRule(t *testing.T) {
	s := newHookStage(t, mustRules(t, denyBashRule))
	ev := s.DecideTool(toolEvent(), ToolRequest{SessionID: "s-1", ToolUseID: "toolu_9", ToolName: "Bash",
		Input: map[string]any{"command": "rm -rf /tmp/x", "timeout": 5}})
	tc := ev.Tool
	if ev.Kind != event.KindAgentToolCall || tc.Decision != event.DecisionDeny || tc.Rule != "no-rm" || tc.ID != "toolu_9" {
		t.Fatalf("decision: %+v", tc)
	}
	if want := "lineaged policy rule no-rm: recursive removal is not allowed"; tc.Reason != want {
		t.Errorf("reason %q, want %q", tc.Reason, want)
	}
	if tc.Input["command"] != "rm -rf /tmp/x" || tc.Input["timeout"] != "5" {
		t.Errorf("input summary %v", tc.Input)
	}
	if ev.Agent.ToolUse == nil || ev.Agent.ToolUse.ID != "toolu_9" {
		t.Errorf("agent tool_use %+v", ev.Agent.ToolUse)
	}
	// Through the stage: the event, then the policy.action of the denial
	// carrying the tool_use id.
	out := s.Process(ev)
	if len(out) != 2 || out[1].Kind != event.KindPolicyAction {
		t.Fatalf("stage out: %d events", len(out))
	}
	a := out[1]
	if a.Alert.Action != ActionDenyTool || a.Alert.Result != ResultDone || a.Alert.Rule != "no-rm" ||
		a.Tool.ID != "toolu_9" || a.Agent.ToolUse.ID != "toolu_9" || a.Alert.Message != tc.Reason {
		t.Errorf("policy.action %+v tool %+v", a.Alert, a.Tool)
	}
}

func TestDecideToolAllowsWhatNoRuleDenies(t *testing.T) {
	s := newHookStage(t, mustRules(t, denyBashRule))
	for _, req := range []ToolRequest{
		{ToolUseID: "a", ToolName: "Bash", Input: map[string]any{"command": "ls"}},
		{ToolUseID: "b", ToolName: "Read", Input: map[string]any{"file_path": "/etc/hosts"}},
		{ToolUseID: "c", ToolName: "Bash"}, // no input: tool.input.command is an error, no match
	} {
		ev := s.DecideTool(toolEvent(), req)
		if ev.Tool.Decision != event.DecisionAllow || ev.Tool.Rule != "" {
			t.Errorf("%s: %+v", req.ToolUseID, ev.Tool)
		}
		if out := s.Process(ev); len(out) != 1 {
			t.Errorf("%s: %d events out, want the tool call alone", req.ToolUseID, len(out))
		}
	}
	// An alert rule over tool calls fires in the stage, from the event.
	ev := s.DecideTool(toolEvent(), ToolRequest{ToolUseID: "d", ToolName: "WebFetch", Input: map[string]any{"url": "https://x"}})
	out := s.Process(ev)
	if ev.Tool.Decision != event.DecisionAllow || len(out) != 2 || out[1].Kind != event.KindPolicyAlert || out[1].Alert.Rule != "watch-fetch" {
		t.Errorf("WebFetch: decision %s, %d events", ev.Tool.Decision, len(out))
	}
}

func TestDecideToolRedactsTheInput(t *testing.T) {
	s := newHookStage(t, nil)
	long := strings.Repeat("é", 400)
	ev := s.DecideTool(toolEvent(), ToolRequest{ToolUseID: "x", ToolName: "Bash",
		Input: map[string]any{"command": "curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789' https://x", "long": long}})
	if strings.Contains(ev.Tool.Input["command"], "abcdefghijklmnopqrstuvwxyz0123456789") {
		t.Errorf("secret kept: %q", ev.Tool.Input["command"])
	}
	if l := ev.Tool.Input["long"]; len(l) > maxInputValue+len("…") || !strings.HasSuffix(l, "…") {
		t.Errorf("long value not shortened on a rune boundary: %d bytes", len(l))
	}
}

// The shipped rule denies Bash, Write and Edit while posture is not
// compliant, naming the failed checks, and lets them run when it is.
func TestDefaultRuleDeniesToolsWhileNoncompliant(t *testing.T) {
	s := newHookStage(t, defaultRules(t))
	for _, name := range []string{"Bash", "Write", "Edit", "Read", "WebFetch"} {
		for _, p := range []*event.Posture{compliant, noncompliant} {
			ev := toolEvent()
			ev.Posture = p
			ev = s.DecideTool(ev, ToolRequest{ToolUseID: "t", ToolName: name, Input: map[string]any{"command": "true"}})
			wantDeny := !p.Compliant && (name == "Bash" || name == "Write" || name == "Edit")
			if got := ev.Tool.Decision == event.DecisionDeny; got != wantDeny {
				t.Errorf("%s compliant=%v: decision %s", name, p.Compliant, ev.Tool.Decision)
				continue
			}
			out := s.Process(ev)
			if !wantDeny {
				if len(out) != 1 {
					t.Errorf("%s compliant=%v: %d events", name, p.Compliant, len(out))
				}
				continue
			}
			if ev.Tool.Rule != "posture-noncompliant-deny-tool" ||
				!strings.Contains(ev.Tool.Reason, "failed checks: disk_encryption") {
				t.Errorf("%s: rule %s reason %q", name, ev.Tool.Rule, ev.Tool.Reason)
			}
			kinds := []string{}
			for _, o := range out {
				kinds = append(kinds, o.Kind)
			}
			if strings.Join(kinds, ",") != "agent.tool_call,policy.action,policy.alert" {
				t.Errorf("%s: out %v", name, kinds)
			}
		}
	}
}

// DecideTool runs on the hook server's goroutines while the stage
// processes events on its own (go test -race).
func TestDecideToolConcurrentWithProcess(t *testing.T) {
	s := newHookStage(t, defaultRules(t))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				ev := toolEvent()
				ev.Posture = noncompliant
				if s.DecideTool(ev, ToolRequest{ToolName: "Bash"}).Tool.Decision != event.DecisionDeny {
					t.Error("not denied")
					return
				}
			}
		}()
	}
	for range 200 {
		s.Process(session(event.KindProcessExec, "/usr/bin/ls", "/home/dev/proj"))
	}
	wg.Wait()
}

func TestDenyToolParameters(t *testing.T) {
	bad := strings.Replace(denyBashRule, "{reason: recursive removal is not allowed}", "{why: x}", 1)
	dir := t.TempDir()
	p := writeRules(t, dir, "r.yaml", bad)
	if _, err := LoadRules(p); err == nil || !strings.Contains(err.Error(), `rule no-rm: action deny-tool: unknown parameter "why"`) {
		t.Errorf("bad deny-tool parameter: %v", err)
	}
}
