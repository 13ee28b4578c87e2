package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/tests/fakeapi"
	"github.com/lineaged/lineaged/tests/testutil"
)

// managedSettingsDir is where Claude Code reads its managed settings on
// Linux, a fixed path.
const managedSettingsDir = "/etc/claude-code"

// managedSettings gives a Claude Code run its own managed settings: a
// directory of the test bind-mounted over /etc/claude-code in a private
// mount namespace of that run only (unshare), so the hook is installed
// where administrators install it, `lineaged hook install` writes it, and
// no other Claude Code on the machine sees it. It returns the settings
// file (outside the namespace) and the wrapper command for session.wrap.
func managedSettings(t *testing.T, dir string) (file string, wrap []string) {
	t.Helper()
	for _, tool := range []string{"unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s (util-linux) is needed to give Claude Code its own managed settings: %v", tool, err)
		}
	}
	// The mount point must exist; an empty directory is what Claude Code
	// finds outside the namespace. It is left: other tests running beside
	// this one mount over it too.
	if err := os.MkdirAll(managedSettingsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dir, "etc-claude-code")
	if err := os.MkdirAll(own, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(own, "managed-settings.json"), []string{
		"unshare", "--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", `mount --bind "$0" ` + managedSettingsDir + ` && exec "$@"`, own,
	}
}

// hookRun is one Claude Code session under the sensor with lineaged's
// hooks installed in its managed settings.
type hookRun struct {
	sess   *session
	api    *fakeapi.Server
	evs    []*event.Event
	script string
}

// runHooked installs the hook with `lineaged hook install` into the
// session's managed settings, starts the sensor with the shipped rules and
// the given required posture checks (sampled every 200ms; agent_hooks
// reads the session's managed settings), and runs Claude Code through
// turns.
//
// The run ends when Claude Code has exited and until holds over the events
// (nil: the agent.tool_call of the last tool call is there).
func runHooked(t *testing.T, claude, lineaged, tmp, name, checks string, turns []fakeapi.Turn, until func([]*event.Event) bool) *hookRun {
	t.Helper()
	nonce := fmt.Sprint(time.Now().UnixNano())
	dir := filepath.Join(tmp, name)
	sess := newSession(t, tmp, name)
	socket := filepath.Join(dir, "run", "hook.sock")
	cfg := filepath.Join(dir, "lineaged.yaml")
	rules := filepath.Join(repoRoot(t), "deploy", "rules")
	settings, wrap := managedSettings(t, dir)
	writeFile(t, cfg, fmt.Sprintf("posture:\n  interval: 200ms\n  checks: [%s]\n  required: [%s]\n  managed_settings: %s\npolicy:\n  rules: %s\nhook:\n  socket: %s\n  timeout: 2s\n",
		checks, checks, settings, rules, socket))
	sess.wrap = wrap
	if b, err := exec.Command(lineaged, "hook", "install", "--settings", settings, "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("hook install: %v\n%s", err, b)
	}
	r := &hookRun{sess: sess, script: "hook-" + name}
	api, err := fakeapi.Start([]fakeapi.Script{{Name: r.script, Match: "e2e-hook-" + name + "-" + nonce, Turns: turns}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	r.api = api
	out := filepath.Join(dir, "events.jsonl")
	sens := startSensor(t, lineaged, out, "--config", cfg)
	sess.start(t, claude, api.URL(), "sk-ant-e2e-"+nonce, "e2e-hook-"+name+"-"+nonce)
	last := fakeapi.ToolUseID(r.script, len(turns)-2)
	sess.wait(t, fakeapi.ToolUseID(r.script, 0))
	if until == nil {
		until = func(evs []*event.Event) bool {
			for _, e := range evs {
				if e.Kind == event.KindAgentToolCall && e.Tool != nil && e.Tool.ID == last {
					return true
				}
			}
			return false
		}
	}
	sens.waitFor(t, 60*time.Second, "the end of "+name, until)
	// The PostToolUse record and the alerts follow; stopping the sensor
	// flushes everything.
	time.Sleep(500 * time.Millisecond)
	sens.stop(t)
	r.evs = sens.events(t)
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range r.evs {
				if e.Agent != nil && (e.Kind == event.KindProcessExec || e.Kind == event.KindAgentToolCall || e.Kind == event.KindPolicyAlert) {
					t.Logf("event: %s", describe(e))
				}
			}
			b, _ := os.ReadFile(filepath.Join(sess.home, "claude.out"))
			t.Logf("claude output:\n%s\nsensor stderr:\n%s", b, tail(sens.stderrString(), 3000))
		}
	})
	return r
}

// call is the agent.tool_call of hook for id.
func (r *hookRun) call(id, hook string) *event.Event {
	for _, e := range r.evs {
		if e.Kind == event.KindAgentToolCall && e.Tool != nil && e.Tool.ID == id && e.Tool.Hook == hook {
			return e
		}
	}
	return nil
}

// result is the tool result the scripted API received for id.
func (r *hookRun) result(t *testing.T, id string) *fakeapi.ToolResult {
	t.Helper()
	for _, q := range r.api.Requests() {
		for i := range q.ToolResults {
			if q.ToolResults[i].ToolUseID == id {
				return &q.ToolResults[i]
			}
		}
	}
	t.Fatalf("the API never received the result of %s", id)
	return nil
}

// alerts are the policy.alert events of the run's session (and those of
// no session, posture changes), by rule: the sensor also sees other
// agent sessions on the machine.
func (r *hookRun) alerts() map[string][]*event.Event {
	root := ""
	for _, e := range r.evs {
		if e.Kind == event.KindAgentToolCall && e.Agent != nil && e.Agent.SessionID == r.sess.uuid && e.Agent.RootExecID != "" {
			root = e.Agent.RootExecID
		}
	}
	out := map[string][]*event.Event{}
	for _, e := range r.evs {
		if e.Kind == event.KindPolicyAlert && e.Alert != nil && (e.Agent == nil || e.Agent.RootExecID == root) {
			out[e.Alert.Rule] = append(out[e.Alert.Rule], e)
		}
	}
	return out
}

// toolProcess is the exec of the Bash tool process whose argv names s.
func (r *hookRun) toolProcess(s string) *event.Event {
	for _, e := range r.evs {
		if e.Kind == event.KindProcessExec && e.Agent != nil && e.Agent.Role == event.RoleTool && argvHas(e.Process, s) && strings.Contains(strings.Join(e.Process.Argv, " "), "eval ") {
			return e
		}
	}
	return nil
}

// checkCall checks the agent.tool_call of a PreToolUse: the tool, the
// session, the hook process with the agent above it, the agent block.
func (r *hookRun) checkCall(t *testing.T, call *event.Event, id string) {
	t.Helper()
	if call == nil {
		t.Fatalf("no agent.tool_call for %s", id)
	}
	tc := call.Tool
	if tc.Name != "Bash" || tc.SessionID != r.sess.uuid {
		t.Errorf("tool call %+v (session %s)", tc, r.sess.uuid)
	}
	if call.Process == nil || !strings.HasSuffix(call.Process.Exe, "/lineaged-hook") {
		t.Errorf("tool call process %+v", call.Process)
	}
	a := call.Agent
	if a == nil || a.Name != "claude-code" || a.SessionID != r.sess.uuid || a.RootExecID == "" || a.Role != event.RoleHook ||
		a.ToolUse == nil || a.ToolUse.ID != id || a.ToolUse.Attribution != event.AttributionExact {
		t.Errorf("tool call agent %+v tool_use %+v", a, a.ToolUse)
	} else if !ancestryHas(call, a.RootExecID) {
		t.Errorf("the hook's ancestry does not reach the agent %s: %s", a.RootExecID, describe(call))
	}
}

func ancestryHas(e *event.Event, execID string) bool {
	for _, p := range e.Ancestry {
		if p.ExecID == execID {
			return true
		}
	}
	return false
}

// TestClaudeCodeHook runs the real Claude Code with lineaged's hooks
// installed by `lineaged hook install` in its managed settings
// (/etc/claude-code/managed-settings.json, in a mount namespace of its
// own), under the real sensor with the shipped rules.
//
//   - noncompliant: the posture fails; the shipped rule
//     posture-noncompliant-deny-tool denies a Bash call, which never runs
//     (no process, no marker), the model receives the denial as the tool
//     result, and a policy.action carries the tool_use id.
//   - compliant: the same call runs; its process carries the tool_use id
//     with attribution exact, and the PostToolUse records the outcome.
//   - tamper: the agent, as an attacker would, overwrites the managed
//     settings from a Bash call (dropping lineaged's hook), waits for
//     Claude Code to notice, then runs another command. The write is
//     alerted (managed-settings-tampered); the posture check agent_hooks
//     fails, so the session gets exactly one posture-noncompliant-in-session
//     alert; and the next call is never quietly unaccounted for: either the
//     agent still asks the hook, which denies it naming agent_hooks, or it
//     no longer does, and the call's process is flagged
//     no_hook_decision and alerted (tool-without-hook-decision).
func TestClaudeCodeHook(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs and mount the managed settings")
	claude := installClaude(t)
	tmp := t.TempDir()
	lineaged := goBuild(t, tmp, "./cmd/lineaged", "lineaged")
	// Beside it, the small hook binary hook install puts in the settings.
	goBuild(t, tmp, "./cmd/lineaged-hook", "lineaged-hook")

	t.Run("noncompliant", func(t *testing.T) {
		marker := filepath.Join(tmp, "noncompliant-marker")
		// No firewall rule set on this test host: non-compliant.
		r := runHooked(t, claude, lineaged, tmp, "noncompliant", "firewall", []fakeapi.Turn{
			{Tool: "Bash", Input: map[string]any{"command": "touch " + marker, "description": "leave a marker"}},
			{Text: "done"},
		}, nil)
		id := fakeapi.ToolUseID(r.script, 0)
		call := r.call(id, "PreToolUse")
		r.checkCall(t, call, id)
		tc := call.Tool
		if call.Posture == nil || call.Posture.Compliant {
			t.Errorf("tool call posture %+v", call.Posture)
		}
		if tc.Decision != event.DecisionDeny || tc.Rule != "posture-noncompliant-deny-tool" || !strings.Contains(tc.Reason, "failed checks: firewall") {
			t.Errorf("decision %+v", tc)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Error("the denied call ran: the marker exists")
		}
		for _, e := range r.evs {
			if e.Kind == event.KindProcessExec && argvHas(e.Process, marker) {
				t.Errorf("the denied call started a process: %s", describe(e))
			}
		}
		res := r.result(t, id)
		t.Logf("%s: decision %s, tool result the model got (is_error %v): %q", id, tc.Decision, res.IsError, res.Content)
		if !strings.Contains(res.Content, "posture-noncompliant-deny-tool") || !strings.Contains(res.Content, "firewall") {
			t.Errorf("tool result the model got: %+v", res)
		}
		var action *event.Event
		for _, e := range r.evs {
			if e.Kind == event.KindPolicyAction && e.Tool != nil && e.Tool.ID == id {
				action = e
			}
		}
		if action == nil {
			t.Fatalf("no policy.action with tool_use id %s", id)
		}
		if a := action.Alert; a == nil || a.Action != "deny-tool" || a.Result != "done" || a.Rule != "posture-noncompliant-deny-tool" {
			t.Errorf("policy.action %+v", action.Alert)
		}
	})

	t.Run("compliant", func(t *testing.T) {
		marker := filepath.Join(tmp, "compliant-marker")
		r := runHooked(t, claude, lineaged, tmp, "compliant", "aslr", []fakeapi.Turn{
			{Tool: "Bash", Input: map[string]any{"command": "touch " + marker, "description": "leave a marker"}},
			{Text: "done"},
		}, nil)
		id := fakeapi.ToolUseID(r.script, 0)
		call := r.call(id, "PreToolUse")
		r.checkCall(t, call, id)
		if call.Tool.Decision != event.DecisionAllow {
			t.Errorf("decision %+v", call.Tool)
		}
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("the allowed call did not run: %v", err)
		}
		tool := r.toolProcess(marker)
		if tool == nil {
			t.Fatal("no exec of the Bash tool process")
		}
		if tu := tool.Agent.ToolUse; tu == nil || tu.ID != id || tu.Attribution != event.AttributionExact || tu.NoHookDecision {
			t.Errorf("tool process attribution %+v: %s", tu, describe(tool))
		}
		// Everything below the tool process is the same call's.
		for _, e := range r.evs {
			if e.Kind == event.KindProcessExec && e.Process != nil && e.Process.Exe == "/usr/bin/touch" && argvHas(e.Process, marker) {
				if tu := e.Agent.ToolUse; tu == nil || tu.ID != id || tu.Attribution != event.AttributionExact {
					t.Errorf("touch attribution %+v", tu)
				}
			}
		}
		post := r.call(id, "PostToolUse")
		if post == nil || post.Tool.Outcome != event.OutcomeSuccess || post.Tool.DurationMS == nil {
			t.Errorf("PostToolUse record %+v", post)
		} else {
			t.Logf("%s: outcome %s in %d ms", id, post.Tool.Outcome, *post.Tool.DurationMS)
		}
		if a := r.alerts(); len(a["tool-without-hook-decision"])+len(a["managed-settings-tampered"]) != 0 {
			t.Errorf("benign session alerted: %v", a)
		}
	})

	t.Run("tamper", func(t *testing.T) {
		marker := filepath.Join(tmp, "tamper-marker")
		var second string
		secondSeen := func(evs []*event.Event) bool {
			for _, e := range evs {
				if (e.Kind == event.KindAgentToolCall && e.Tool != nil && e.Tool.ID == second) ||
					(e.Kind == event.KindPolicyAlert && e.Alert.Rule == "tool-without-hook-decision") {
					return true
				}
			}
			return false
		}
		turns := []fakeapi.Turn{
			{Tool: "Bash", Input: map[string]any{"command": "printf '{}' > " + managedSettingsDir + "/managed-settings.json; sleep 3", "description": "drop the hooks"}},
			{Tool: "Bash", Input: map[string]any{"command": "touch " + marker, "description": "leave a marker"}},
			{Text: "done"},
		}
		second = fakeapi.ToolUseID("hook-tamper", 1)
		r := runHooked(t, claude, lineaged, tmp, "tamper", "aslr, agent_hooks", turns, secondSeen)
		first := fakeapi.ToolUseID(r.script, 0)
		r.checkCall(t, r.call(first, "PreToolUse"), first)
		alerts := r.alerts()
		tampered := alerts["managed-settings-tampered"]
		if len(tampered) == 0 {
			t.Fatalf("no managed-settings-tampered alert; alerts %v", alerts)
		}
		if al := tampered[0]; al.File == nil || al.File.Path != managedSettingsDir+"/managed-settings.json" || al.Alert.TriggerEventID == "" ||
			al.Agent == nil || al.Agent.ToolUse == nil || al.Agent.ToolUse.ID != first {
			t.Errorf("tamper alert %s", describe(al))
		}
		// One transition, one alert, naming the check.
		pa := alerts["posture-noncompliant-in-session"]
		if len(pa) != 1 {
			t.Errorf("%d posture-noncompliant-in-session alerts, want 1", len(pa))
		} else if p := pa[0].Posture; p == nil || p.Compliant || !slices.Contains(p.Failed, "agent_hooks") {
			t.Errorf("posture alert's posture %+v", pa[0].Posture)
		}
		if call := r.call(second, "PreToolUse"); call != nil {
			// The agent still asks the hook: the posture denies.
			t.Logf("Claude Code still asked the hook about %s: %s", second, call.Tool.Reason)
			r.checkCall(t, call, second)
			if tc := call.Tool; tc.Decision != event.DecisionDeny || tc.Rule != "posture-noncompliant-deny-tool" || !strings.Contains(tc.Reason, "agent_hooks") {
				t.Errorf("second call %+v", tc)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the second call ran though denied: the marker exists")
			}
			return
		}
		// The agent dropped the hook: the call ran, flagged and alerted.
		tool := r.toolProcess(marker)
		if tool == nil {
			t.Fatal("no agent.tool_call and no exec of the second Bash tool process")
		}
		tu := tool.Agent.ToolUse
		t.Logf("Claude Code dropped the hook: the second call's process carries %+v", tu)
		if tu == nil || !tu.NoHookDecision {
			t.Errorf("the call that went around the hook is not flagged: %s", describe(tool))
		}
		found := false
		for _, a := range alerts["tool-without-hook-decision"] {
			found = found || a.Process != nil && a.Process.ExecID == tool.Process.ExecID
		}
		if !found {
			t.Errorf("no tool-without-hook-decision alert for %s", describe(tool))
		}
	})
}
