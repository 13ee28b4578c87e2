package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/tests/fakeapi"
	"github.com/lineaged/lineaged/tests/testutil"
)

// TestClaudeCodeHook runs the real Claude Code with lineaged's PreToolUse
// hook under the real sensor, twice: with the posture failing, the shipped
// rule posture-noncompliant-deny-tool denies a Bash tool call, which never
// runs, and the model receives the denial as the tool's result; with the
// posture passing, the same call runs.
//
// The hook is installed by `lineaged hook install` into a settings file
// given to Claude Code with --settings, not into
// /etc/claude-code/managed-settings.json: Claude Code 2.1.332 reads managed
// settings only from that fixed path (its override hook is compiled out),
// and writing it would put the hook in every Claude Code run on this
// machine, other tests' included.
func TestClaudeCodeHook(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	claude := installClaude(t)
	tmp := t.TempDir()
	lineaged := goBuild(t, tmp, "./cmd/lineaged", "lineaged")
	nonce := fmt.Sprint(time.Now().UnixNano())
	apiKey := "sk-ant-e2e-" + nonce
	rules := filepath.Join(repoRoot(t), "deploy", "rules")

	for _, c := range []struct {
		name   string
		checks string // posture.checks, all required
		deny   bool
	}{
		// No firewall rule set on this test host: non-compliant.
		{"noncompliant", "firewall", true},
		{"compliant", "aslr", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(tmp, c.name)
			sess := newSession(t, tmp, c.name)
			marker := filepath.Join(sess.work, "marker")
			socket := filepath.Join(dir, "run", "hook.sock")
			cfg := filepath.Join(dir, "lineaged.yaml")
			writeFile(t, cfg, fmt.Sprintf("posture:\n  checks: [%s]\n  required: [%s]\npolicy:\n  rules: %s\nhook:\n  socket: %s\n  timeout: 2s\n",
				c.checks, c.checks, rules, socket))
			settings := filepath.Join(dir, "managed-settings.json")
			if b, err := exec.Command(lineaged, "hook", "install", "--settings", settings, "--config", cfg).CombinedOutput(); err != nil {
				t.Fatalf("hook install: %v\n%s", err, b)
			}

			script := "hook-" + c.name
			id := fakeapi.ToolUseID(script, 0)
			api, err := fakeapi.Start([]fakeapi.Script{{Name: script, Match: "e2e-hook-" + c.name + "-" + nonce, Turns: []fakeapi.Turn{
				{Tool: "Bash", Input: map[string]any{"command": "touch " + marker, "description": "leave a marker"}},
				{Text: "done"},
			}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer api.Close()

			out := filepath.Join(dir, "events.jsonl")
			sens := startSensor(t, lineaged, out, "--config", cfg)
			sess.start(t, claude, api.URL(), apiKey, "e2e-hook-"+c.name+"-"+nonce, "--settings", settings)
			sess.wait(t, id)
			evs := sens.waitFor(t, 60*time.Second, "the agent.tool_call of "+id, func(evs []*event.Event) bool {
				for _, e := range evs {
					if e.Kind == event.KindAgentToolCall && e.Tool != nil && e.Tool.ID == id {
						return true
					}
				}
				return false
			})
			// The policy.action follows its tool call at once; give the
			// sink a moment by stopping the sensor (it flushes).
			sens.stop(t)
			evs = sens.events(t)
			defer func() {
				if t.Failed() {
					b, _ := os.ReadFile(filepath.Join(sess.home, "claude.out"))
					t.Logf("claude output:\n%s\nsensor stderr:\n%s", b, tail(sens.stderrString(), 3000))
				}
			}()

			var call, action *event.Event
			for _, e := range evs {
				switch {
				case e.Kind == event.KindAgentToolCall && e.Tool != nil && e.Tool.ID == id && e.Tool.Hook == "PreToolUse":
					call = e
				case e.Kind == event.KindPolicyAction && e.Tool != nil && e.Tool.ID == id:
					action = e
				}
			}
			if call == nil {
				t.Fatalf("no agent.tool_call for %s", id)
			}
			tc := call.Tool
			if tc.Name != "Bash" || tc.Hook != "PreToolUse" || tc.SessionID != sess.uuid || !strings.Contains(tc.Input["command"], marker) {
				t.Errorf("tool call %+v (session %s)", tc, sess.uuid)
			}
			if call.Posture == nil || call.Posture.Compliant == c.deny {
				t.Errorf("tool call posture %+v", call.Posture)
			}
			var result *fakeapi.ToolResult
			for _, r := range api.Requests() {
				for i := range r.ToolResults {
					if r.ToolResults[i].ToolUseID == id {
						result = &r.ToolResults[i]
					}
				}
			}
			if result == nil {
				t.Fatalf("the API never received the result of %s", id)
			}
			t.Logf("%s: decision %s, tool result the model got (is_error %v): %q", id, tc.Decision, result.IsError, result.Content)
			_, statErr := os.Stat(marker)
			if !c.deny {
				if tc.Decision != event.DecisionAllow || action != nil {
					t.Errorf("compliant: decision %s, policy.action %v", tc.Decision, action != nil)
				}
				if statErr != nil {
					t.Errorf("the allowed call did not run: %v", statErr)
				}
				// The PostToolUse hook recorded how the call ended.
				var post *event.ToolCall
				for _, e := range evs {
					if e.Kind == event.KindAgentToolCall && e.Tool != nil && e.Tool.ID == id && e.Tool.Hook == "PostToolUse" {
						post = e.Tool
					}
				}
				if post == nil || post.Outcome != event.OutcomeSuccess || post.DurationMS == nil {
					t.Errorf("PostToolUse record %+v", post)
				} else {
					t.Logf("%s: outcome %s in %d ms", id, post.Outcome, *post.DurationMS)
				}
				return
			}
			if tc.Decision != event.DecisionDeny || tc.Rule != "posture-noncompliant-deny-tool" ||
				!strings.Contains(tc.Reason, "failed checks: firewall") {
				t.Errorf("decision %+v", tc)
			}
			if statErr == nil {
				t.Error("the denied call ran: the marker exists")
			}
			for _, e := range evs {
				if e.Kind == event.KindProcessExec && e.Process != nil && argvHas(e.Process, marker) {
					t.Errorf("the denied call started a process: %s", describe(e))
				}
			}
			if !strings.Contains(result.Content, "posture-noncompliant-deny-tool") || !strings.Contains(result.Content, "firewall") {
				t.Errorf("tool result the model got: %+v", result)
			}
			if action == nil {
				t.Fatalf("no policy.action with tool_use id %s", id)
			}
			if a := action.Alert; a == nil || a.Action != "deny-tool" || a.Result != "done" || a.Rule != "posture-noncompliant-deny-tool" {
				t.Errorf("policy.action %+v", action.Alert)
			}
		})
	}
}
