//go:build linux

package tamper

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/fakeapi"
	"github.com/lineaged/lineaged/tests/testutil"
)

// Agent identity (docs/agents.md, "Agent identity"): an exec the agent table
// recognises by its path is verified by what the binary is. The look-alike
// is a copy of bash at a path the native-installer rule accepts.

// lookalikePath is where the look-alike goes under dir: a version the
// native installer's rule accepts, which no release list knows.
func lookalikePath(dir string) string {
	return filepath.Join(dir, "evil", ".local", "share", "claude", "versions", "9.9.9")
}

// skipInGuest skips an agent identity test in a kernel matrix guest, which
// has neither the repository's default rules nor Claude Code: what these
// tests check is decided in userspace, the same on every kernel, and they
// run on the host (make test).
func skipInGuest(t *testing.T) {
	t.Helper()
	if testutil.InVMTest() {
		t.Skip("kernel matrix guest: no deploy/rules or Claude Code here; agent identity is userspace logic, tested on the host")
	}
}

// agentidConfig writes a configuration reporting to out with the default
// rules, no audit trail (its key belongs to the host), and room to hash a
// 400 MB agent binary and to tie a tool call (the transcript record) on a
// machine where other test packages run at the same time.
func agentidConfig(t *testing.T, dir, out string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	rules := filepath.Join(filepath.Dir(file), "..", "..", "deploy", "rules")
	p := filepath.Join(dir, "lineaged.yaml")
	body := fmt.Sprintf("output: %s\nposture:\n  checks: [aslr]\npolicy:\n  rules: %s\naudit:\n  enabled: false\nhashing:\n  timeout: 2m\nlineage:\n  enrich_wait: 10s\n", out, rules)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// aidEvent is what these tests read of an output line (their own shape, so
// they build against the code before agent identity too).
type aidEvent struct {
	Kind    string    `json:"kind"`
	Time    time.Time `json:"time"`
	Process *struct {
		ExecID         string   `json:"exec_id"`
		PID            uint32   `json:"pid"`
		Exe            string   `json:"exe"`
		Argv           []string `json:"argv"`
		AgentLookalike bool     `json:"agent_lookalike"`
	} `json:"process"`
	Agent *aidAgent `json:"agent"`
	Alert *struct {
		Rule string `json:"rule"`
	} `json:"alert"`
}

type aidAgent struct {
	Name       string `json:"name"`
	SessionID  string `json:"session_id"`
	RootExecID string `json:"root_exec_id"`
	Role       string `json:"role"`
	ToolUse    *struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Attribution string `json:"attribution"`
	} `json:"tool_use"`
	SessionIDHint    bool       `json:"session_id_hint"`
	ParentRootExecID string     `json:"parent_root_exec_id"`
	Verified         *bool      `json:"verified"`
	Verification     string     `json:"verification"`
	VerifiedAt       *time.Time `json:"verified_at"`
	Release          string     `json:"release"`
}

// Event kinds and roles read.
const (
	kindExec  = "process.exec"
	kindAlert = "policy.alert"
	roleRoot  = "root"
)

// allEvents parses the output so far (a half-written last line is skipped).
func allEvents(t *testing.T, path string) []*aidEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var evs []*aidEvent
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e aidEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			evs = append(evs, &e)
		}
	}
	return evs
}

// execOf is the process.exec whose argv holds arg, nil when none.
func execOf(evs []*aidEvent, arg string) *aidEvent {
	for _, e := range evs {
		if e.Kind == kindExec && e.Process != nil && slices.Contains(e.Process.Argv, arg) {
			return e
		}
	}
	return nil
}

// settled is the verification of the session rooted at root as the events
// carry it once settled (verified_at set), nil while none does.
func settled(evs []*aidEvent, root string) *aidAgent {
	for _, e := range evs {
		if a := e.Agent; a != nil && a.RootExecID == root && a.VerifiedAt != nil {
			return a
		}
	}
	return nil
}

// poll calls cond until it holds or d passes; it reports the last answer.
func poll(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(200 * time.Millisecond) {
		if cond() || time.Now().After(end) {
			return cond()
		}
	}
}

func alertsOf(evs []*aidEvent, rule, execID string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kindAlert && e.Alert != nil && e.Alert.Rule == rule && e.Process != nil && e.Process.ExecID == execID {
			n++
		}
	}
	return n
}

// TestRootUnverifiedAgentOutsideSession: a copy of bash at a Claude Code
// install path, run outside any session with a "prompt" in its argv, opens
// a monitored session (its child is in it), labelled agent-unverified once
// its binary is hashed, with the prompt hidden, and the default rule
// alerts on it.
func TestRootUnverifiedAgentOutsideSession(t *testing.T) {
	testutil.RequireRoot(t, "to run lineaged")
	skipInGuest(t)
	bin := testutil.LineagedBinary(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "events.jsonl")
	startLineaged(t, bin, agentidConfig(t, dir, out), filepath.Join(dir, "cache"))
	look := testutil.CopyFile(t, "/bin/bash", lookalikePath(dir), 0o755)
	const prompt = "please copy the deploy keys somewhere quiet"
	cmd := exec.Command(look, "-c", "/bin/true agentid-outside-child", prompt)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("look-alike: %v\n%s", err, b)
	}

	var evs []*aidEvent
	var root, child *aidEvent
	var label *aidAgent
	testutil.WaitFor(t, 60*time.Second, "the look-alike's session, settled", func() bool {
		evs = allEvents(t, out)
		root, child = nil, execOf(evs, "agentid-outside-child")
		for _, e := range evs {
			if e.Kind == kindExec && e.Process != nil && e.Process.Exe == look {
				root = e
			}
		}
		return root != nil && child != nil && root.Agent != nil
	}, func() string {
		return fmt.Sprintf("%d events; root %v; child %v", len(evs), root != nil, child != nil)
	})
	// The label comes once the binary is hashed, the alert with it.
	poll(60*time.Second, func() bool {
		evs = allEvents(t, out)
		label = settled(evs, root.Agent.RootExecID)
		return label != nil && alertsOf(evs, "agent-unverified", root.Process.ExecID) > 0
	})
	if label == nil {
		t.Fatalf("the look-alike's session was never labelled (no agent.verified_at on its events)")
	}
	if root.Agent.Role != roleRoot || root.Agent.RootExecID != root.Process.ExecID {
		t.Errorf("look-alike exec: agent %+v, want the root of its own session", root.Agent)
	}
	if child.Agent == nil || child.Agent.RootExecID != root.Process.ExecID {
		t.Errorf("child: agent %+v, want member of the session rooted at %s", child.Agent, root.Process.ExecID)
	}
	if label.Verified == nil || *label.Verified || label.Verification != "unverified" || label.Release != "" {
		t.Errorf("session label %+v, want verified false, verification unverified", label)
	}
	if label.VerifiedAt.Before(root.Time) {
		t.Errorf("verified_at %v before the root's exec %v", label.VerifiedAt, root.Time)
	}
	if strings.Contains(strings.Join(root.Process.Argv, " "), "deploy keys") || !slices.Contains(root.Process.Argv, "[PROMPT]") {
		t.Errorf("root argv %q: the prompt is not hidden", root.Process.Argv)
	}
	if n := alertsOf(evs, "agent-unverified", root.Process.ExecID); n != 1 {
		t.Errorf("%d agent-unverified alerts for the root, want 1", n)
	}
	// Every event of the session carries the label once settled, or says
	// it is pending before.
	for _, e := range evs {
		if a := e.Agent; a != nil && a.RootExecID == root.Process.ExecID && e.Kind != kindAlert {
			if a.Verified == nil || (a.Verification != "unverified" && a.Verification != "pending") {
				t.Errorf("%s event of the session: agent %+v, want its verification", e.Kind, a)
			}
		}
	}
}

// claudeCache is where the pinned Claude Code is installed
// ($LINEAGED_E2E_CACHE, else tests/e2e/.cache as the end-to-end tests use).
func claudeCache() string {
	if c := os.Getenv("LINEAGED_E2E_CACHE"); c != "" {
		return c
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "e2e", ".cache")
}

// TestRootLookalikeInsideRealSession: the real Claude Code (its hash on the
// shipped list) runs a Bash tool call that execs the look-alike with a
// "prompt", which runs a child. The session root is verified (hash-list,
// release 2.1.332); the look-alike stays a member of Claude's session with
// the tool call, flagged agent_lookalike, its argv not hidden as a prompt;
// its child keeps Claude's session id and tool call.
func TestRootLookalikeInsideRealSession(t *testing.T) {
	testutil.RequireRoot(t, "to run lineaged")
	skipInGuest(t)
	claude, err := testutil.InstallClaude(context.Background(), claudeCache())
	if err != nil {
		t.Fatal(err)
	}
	bin := testutil.LineagedBinary(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "events.jsonl")
	startLineaged(t, bin, agentidConfig(t, dir, out), filepath.Join(dir, "cache"))
	look := testutil.CopyFile(t, "/bin/bash", lookalikePath(dir), 0o755)
	home, work := filepath.Join(dir, "home"), filepath.Join(dir, "work")
	for _, d := range []string{home, work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	nonce := fmt.Sprintf("%d", time.Now().UnixNano())
	const prompt = "lookalike prompt words"
	command := fmt.Sprintf("%s -c '/bin/true agentid-nested-child' '%s'", look, prompt)
	script := "agentid"
	api, err := fakeapi.Start([]fakeapi.Script{{Name: script, Match: "agentid-" + nonce, Turns: []fakeapi.Turn{
		{Tool: "Bash", Input: map[string]any{"command": command, "description": "run the look-alike"}},
		{Text: "done"},
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cc := exec.CommandContext(ctx, claude, "-p", "agentid-"+nonce, "--dangerously-skip-permissions")
	cc.Dir, cc.Env = work, testutil.ClaudeEnv(home, api.URL(), "sk-ant-agentid-"+nonce)
	if b, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("claude: %v\n%s", err, b)
	}
	toolID := fakeapi.ToolUseID(script, 0)

	var evs []*aidEvent
	var root, lookEv, child *aidEvent
	var label *aidAgent
	testutil.WaitFor(t, 90*time.Second, "Claude's session verified, the look-alike and its child", func() bool {
		evs = allEvents(t, out)
		root, child = nil, execOf(evs, "agentid-nested-child")
		lookEv = nil
		for _, e := range evs {
			if e.Kind != kindExec || e.Process == nil {
				continue
			}
			switch {
			case e.Process.PID == uint32(cc.Process.Pid) && e.Agent != nil && e.Agent.Role == roleRoot:
				root = e
			case e.Process.Exe == look:
				lookEv = e
			}
		}
		return root != nil && lookEv != nil && child != nil && child.Agent != nil
	}, func() string {
		return fmt.Sprintf("%d events; root %v; look-alike %v; child %+v", len(evs), root != nil, lookEv != nil, child)
	})
	// The label comes once the 400 MB binary is hashed.
	poll(90*time.Second, func() bool {
		evs = allEvents(t, out)
		label = settled(evs, root.Process.ExecID)
		return label != nil
	})
	// (3) The real Claude Code is verified by the shipped hash list.
	if label == nil {
		t.Errorf("Claude Code's session was never labelled (no agent.verified_at on its events)")
	} else {
		t.Logf("Claude Code's label settled by its event of %v (exec %v)", label.VerifiedAt, root.Time)
		if label.Verified == nil || !*label.Verified || label.Verification != "hash-list" || label.Release != "2.1.332" {
			t.Errorf("Claude Code's session label %+v, want verified by hash-list, release 2.1.332", label)
		}
	}
	if n := alertsOf(evs, "agent-unverified", root.Process.ExecID); n != 0 {
		t.Errorf("%d agent-unverified alerts on the real Claude Code", n)
	}
	// (2) The look-alike stays in Claude's session, in the tool call.
	rootID := root.Process.ExecID
	la := lookEv.Agent
	if la == nil || la.RootExecID != rootID || la.ToolUse == nil || la.ToolUse.ID != toolID || la.Role == roleRoot {
		t.Errorf("look-alike's agent %+v (tool_use %+v), want a member of session %s in tool call %s; the session's losses: %s", la, toolUseOf(la), rootID, toolID, lossesOf(out))
	}
	if !lookEv.Process.AgentLookalike {
		t.Errorf("look-alike's process not flagged agent_lookalike: %+v", lookEv.Process)
	}
	if slices.Contains(lookEv.Process.Argv, "[PROMPT]") || !slices.Contains(lookEv.Process.Argv, prompt) {
		t.Errorf("look-alike's argv %q: want it kept (only secrets redacted), not hidden as a prompt", lookEv.Process.Argv)
	}
	if n := alertsOf(evs, "agent-unverified", lookEv.Process.ExecID); n != 1 {
		t.Errorf("%d agent-unverified alerts on the look-alike, want 1", n)
	}
	ca := child.Agent
	if ca.RootExecID != rootID || ca.ToolUse == nil || ca.ToolUse.ID != toolID || ca.ParentRootExecID != "" {
		t.Errorf("look-alike's child: agent %+v (tool_use %+v), want session %s, tool call %s", ca, toolUseOf(ca), rootID, toolID)
	}
	var outer string
	for _, e := range evs {
		if a := e.Agent; a != nil && a.RootExecID == rootID && a.SessionID != "" && !a.SessionIDHint {
			outer = a.SessionID
			break
		}
	}
	if outer == "" || ca.SessionID != outer {
		t.Errorf("look-alike's child: session_id %q, want Claude's %q", ca.SessionID, outer)
	}
}

func toolUseOf(a *aidAgent) any {
	if a == nil || a.ToolUse == nil {
		return nil
	}
	return *a.ToolUse
}

// lossesOf lists the sensor.loss events in the output file, for a failure
// message: an attribution that did not come may have been lost.
func lossesOf(out string) string {
	b, err := os.ReadFile(out)
	if err != nil {
		return err.Error()
	}
	var ls []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"kind":"sensor.loss"`) {
			ls = append(ls, line)
		}
	}
	if len(ls) == 0 {
		return "none"
	}
	return strings.Join(ls, "\n")
}
