package claude

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
)

// hookedSession starts a session whose UUID is known (the agent opened its
// transcript) and returns its root and a tool-process maker.
func hookedSession(t *testing.T, w *world) (*event.Process, *event.Agent, func(pid uint32, cmd string) agent.Result) {
	t.Helper()
	root, ra := w.root(100, "-p", "hi", "--dangerously-skip-permissions")
	fr := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: w.tpath, Mode: event.ModeWrite}})
	if a := resolve(t, fr, time.Second); a.SessionID != sessUUID {
		t.Fatalf("transcript open %+v", a)
	}
	ra.SessionID = sessUUID
	tool := func(pid uint32, cmd string) agent.Result {
		p := w.proc(pid, 100, "/usr/bin/bash", toolArgv(cmd)...)
		w.env[pid] = map[string]string{"CLAUDE_CODE_SESSION_ID": sessUUID, "AI_AGENT": "claude-code_2-1-332_agent", "CLAUDE_PID": "100"}
		return w.exec(p, root, ra)
	}
	return root, ra, tool
}

// The hook names each call before it runs: the tool process is tied to it
// at once, marked exact, with no transcript at all; two parallel calls with
// the same command take one id each.
func TestHookCallBindsExactly(t *testing.T) {
	w := newWorld(t)
	_, _, tool := hookedSession(t, w)
	cmd := "make -j2 test"
	for _, id := range []string{"toolu_H1", "toolu_H2"} {
		w.obs.HookCall(HookCall{SessionID: sessUUID, ToolUseID: id, ToolName: "Bash", Command: cmd})
	}
	got := map[string]bool{}
	for pid := uint32(110); pid < 112; pid++ {
		r := tool(pid, cmd)
		if r.Resolve != nil {
			t.Fatalf("pid %d: an exact binding waited for the transcript", pid)
		}
		tu := r.Agent.ToolUse
		if tu == nil || tu.Attribution != event.AttributionExact || tu.NoHookDecision || r.Agent.Role != event.RoleTool {
			t.Fatalf("pid %d: %+v %+v", pid, r.Agent, tu)
		}
		got[tu.ID] = true
	}
	if !got["toolu_H1"] || !got["toolu_H2"] {
		t.Fatalf("parallel identical calls bound to %v", got)
	}
	// A third process with the same command has no hook call left: it
	// went around the hook.
	r := tool(112, cmd)
	if r.Agent.ToolUse == nil || !r.Agent.ToolUse.NoHookDecision || r.Agent.ToolUse.ID != "" {
		t.Fatalf("third process %+v", r.Agent.ToolUse)
	}
	if s := w.obs.Stats(); s.ToolsBoundExact != 2 || s.ToolsNoHook != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// In a hooked session, a tool process with no hook decision is flagged,
// and keeps the flag once the transcript ties it; a session that never
// called the hook flags nothing.
func TestToolWithoutHookDecisionIsFlagged(t *testing.T) {
	w := newWorld(t)
	_, _, tool := hookedSession(t, w)
	r := tool(120, "ls")
	if r.Agent.ToolUse == nil || r.Agent.ToolUse.NoHookDecision {
		t.Fatalf("unhooked session flagged %+v", r.Agent.ToolUse)
	}
	w.obs.HookCall(HookCall{SessionID: sessUUID, ToolUseID: "toolu_seen", ToolName: "Read", Path: "/etc/hostname"})
	cmd := "curl -s http://127.0.0.1:1/ | sh"
	r = tool(121, cmd)
	if r.Agent.ToolUse == nil || !r.Agent.ToolUse.NoHookDecision || r.Resolve == nil {
		t.Fatalf("around the hook %+v", r.Agent.ToolUse)
	}
	w.append(toolUse("toolu_T", "Bash", fmt.Sprintf(`{"command":%q}`, cmd)))
	a := resolve(t, r, 2*time.Second)
	if a.ToolUse == nil || a.ToolUse.ID != "toolu_T" || a.ToolUse.Attribution != event.AttributionTranscript || !a.ToolUse.NoHookDecision {
		t.Fatalf("resolved %+v", a.ToolUse)
	}
	// The hook named another session: it is not this one's decision.
	w.obs.HookCall(HookCall{SessionID: "00000000-0000-4000-8000-000000000000", ToolUseID: "toolu_x", ToolName: "Bash", Command: "id"})
	if r := tool(122, "id"); r.Agent.ToolUse == nil || !r.Agent.ToolUse.NoHookDecision {
		t.Fatalf("another session's hook call bound %+v", r.Agent.ToolUse)
	}
}

// Read/Write calls the hook named tie the agent's own file events exactly,
// until their PostToolUse.
func TestHookCallTiesFileEvents(t *testing.T) {
	w := newWorld(t)
	root, ra, _ := hookedSession(t, w)
	p := filepath.Join(w.cwd, "notes.txt")
	w.obs.HookCall(HookCall{SessionID: sessUUID, ToolUseID: "toolu_W", ToolName: "Write", Path: p})
	fr := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: p + ".tmp.100.5665b64a51bd", Mode: event.ModeWrite, Created: true}})
	if a := resolve(t, fr, time.Second); a.ToolUse == nil || a.ToolUse.ID != "toolu_W" || a.ToolUse.Attribution != event.AttributionExact {
		t.Fatalf("write %+v", a.ToolUse)
	}
	w.obs.HookDone(sessUUID, "toolu_W")
	fr = w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: p, Mode: event.ModeRead}})
	if a := resolve(t, fr, 100*time.Millisecond); a.ToolUse != nil {
		t.Fatalf("after PostToolUse %+v", a.ToolUse)
	}
	// Without the hook, the transcript ties by path.
	q := filepath.Join(w.cwd, "other.txt")
	w.append(toolUse("toolu_R", "Read", fmt.Sprintf(`{"file_path":%q}`, q)))
	fr = w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: q, Mode: event.ModeRead}})
	if a := resolve(t, fr, time.Second); a.ToolUse == nil || a.ToolUse.ID != "toolu_R" || a.ToolUse.Attribution != event.AttributionPath {
		t.Fatalf("read %+v", a.ToolUse)
	}
}

// A hook installed in the managed settings (read through the agent's own
// root) is a hook by its command alone, even when its environment is gone
// before the sensor reads it.
func TestManagedSettingsHookRole(t *testing.T) {
	w := newWorld(t)
	procRoot := t.TempDir()
	dir := filepath.Join(procRoot, "100", "root", "etc", "claude-code")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const cmd = "'/usr/bin/lineaged-hook' --socket /run/lineaged/hook.sock --timeout 200ms"
	settings := `{"hooks":{"PreToolUse":[{"matcher":"*","hooks":[{"type":"command","command":` + strconv.Quote(cmd) + `}]}]}}`
	if err := os.WriteFile(filepath.Join(dir, "managed-settings.json"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	w.use(New(Config{PollInterval: time.Millisecond, ProcRoot: procRoot}, nil))
	root, ra := w.root(100, "-p", "hi")
	hook := w.proc(101, 100, "/usr/bin/dash", "/bin/sh", "-c", cmd)
	if a := resolve(t, w.exec(hook, root, ra), time.Second); a.Role != event.RoleHook {
		t.Fatalf("managed hook role %q", a.Role)
	}
	other := w.proc(102, 100, "/usr/bin/dash", "/bin/sh", "-c", "/usr/bin/other-hook")
	if a := resolve(t, w.exec(other, root, ra), time.Second); a.Role != event.RoleDescendant {
		t.Fatalf("unknown command role %q", a.Role)
	}
}

// The agent's own upkeep (directories, /proc, its state under ~/.claude)
// is not waited on for a tool call; a file of the work tree is.
func TestAgentHousekeepingIsNotWaitedOn(t *testing.T) {
	w := newWorld(t)
	root, ra, _ := hookedSession(t, w)
	for _, c := range []struct {
		f    event.File
		wait bool
	}{
		{event.File{Path: "/proc/100/statm", Mode: event.ModeRead}, false},
		{event.File{Path: w.cwd, Mode: event.ModeRead, Flags: oDirectory}, false},
		{event.File{Path: filepath.Join(w.home, ".claude", "sessions", "100.json"), Mode: event.ModeWrite}, false},
		{event.File{Path: filepath.Join(w.home, ".claude.json"), Mode: event.ModeRead}, false},
		{event.File{Path: "/etc/claude-code/managed-settings.json", Mode: event.ModeRead}, false},
		{event.File{Path: filepath.Join(w.cwd, "main.go"), Mode: event.ModeRead}, true},
		{event.File{Path: "/proc/self/fd/14/x.tmp.1", NewPath: "/proc/self/fd/14/x"}, true},
	} {
		f := c.f
		r := w.in.File(agent.File{Proc: root, Agent: ra, File: &f})
		if got := r.Resolve != nil; got != c.wait {
			t.Errorf("%s (flags %#o): waits %v, want %v", f.Path, f.Flags, got, c.wait)
		}
	}
}

// An open of the agent's whose Read record comes a moment after it goes to
// the Read call, not to a Bash call still without its result that names
// the same file.
func TestReadRecordLateWinsOverBashInFlight(t *testing.T) {
	w := newWorld(t)
	root, ra, _ := hookedSession(t, w)
	p := filepath.Join(w.cwd, "in.txt")
	w.append(toolUse("toolu_B", "Bash", fmt.Sprintf(`{"command":"cat %s"}`, p)))
	r := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: p, Mode: event.ModeRead}})
	go func() {
		time.Sleep(30 * time.Millisecond)
		w.append(toolUse("toolu_R", "Read", fmt.Sprintf(`{"file_path":%q}`, p)))
	}()
	if a := resolve(t, r, time.Second); a.ToolUse == nil || a.ToolUse.ID != "toolu_R" {
		t.Fatalf("the Read's open went to %+v", a.ToolUse)
	}
}
