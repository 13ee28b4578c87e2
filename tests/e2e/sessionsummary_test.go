package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/tests/fakeapi"
	"github.com/lineaged/lineaged/tests/testutil"
)

// TestSessionSummaries runs the real Claude Code under the real sensor with
// its hooks, on a device the shipped rules find non-compliant (firewall
// required): a Read of a .env file (allowed, alerted) and a Bash call
// (denied by posture-noncompliant-deny-tool). The session's
// agent.session_start comes before its first event, its agent.session_end
// after its root's exit, and the end's counts equal what the session's own
// events say. `lineaged sessions --json` over the same output shows the
// session with both calls and the denial.
func TestSessionSummaries(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	claude := installClaude(t)
	tmp := t.TempDir()
	lineaged := goBuild(t, tmp, "./cmd/lineaged", "lineaged")
	goBuild(t, tmp, "./cmd/lineaged-hook", "lineaged-hook")
	env := filepath.Join(tmp, "summary", "secrets", ".env")
	if err := os.MkdirAll(filepath.Dir(env), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, env, "TOKEN=e2e-not-a-secret\n")
	marker := filepath.Join(tmp, "summary", "denied-marker")
	r := runHooked(t, claude, lineaged, tmp, "summary", "firewall", []fakeapi.Turn{
		{Tool: "Read", Input: map[string]any{"file_path": env}},
		{Tool: "Bash", Input: map[string]any{"command": "touch " + marker, "description": "denied"}},
		{Text: "done"},
	}, nil)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the denied Bash call ran")
	}

	root := ""
	for _, e := range r.evs {
		if e.Kind == event.KindAgentToolCall && e.Agent != nil && e.Agent.SessionID == r.sess.uuid {
			root = e.Agent.RootExecID
		}
	}
	if root == "" {
		t.Fatal("no agent.tool_call of the session")
	}
	var start, end *event.Event
	startAt, endAt, firstAt, exitAt := -1, -1, -1, -1
	var want event.SessionCounts
	written := map[string]bool{}
	for i, e := range r.evs {
		if e.Agent == nil || e.Agent.RootExecID != root {
			continue
		}
		switch e.Kind {
		case event.KindAgentSessionStart:
			start, startAt = e, i
			continue
		case event.KindAgentSessionEnd:
			end, endAt = e, i
			continue
		case event.KindProcessExec:
			want.Processes++
		case event.KindNetConnect:
			want.Connections++
		case event.KindPolicyAlert:
			want.Alerts++
		case event.KindAgentToolCall:
			if e.Tool.Hook == "PreToolUse" {
				want.ToolCalls++
				if e.Tool.Decision == event.DecisionDeny {
					want.DeniedToolCalls++
				}
			}
		case event.KindFileOpen:
			if e.File.Mode == event.ModeWrite || e.File.Mode == event.ModeReadWrite || e.File.Created {
				written[e.File.Path] = true
			}
		case event.KindFileDelete:
			written[e.File.Path] = true
		case event.KindFileRename:
			written[e.File.NewPath] = true
		case event.KindFileModify:
			// A link writes its new name; any other change, its path.
			if e.File.Op == event.FileOpLink {
				written[e.File.NewPath] = true
			} else {
				written[e.File.Path] = true
			}
		case event.KindProcessExit:
			if e.Process != nil && e.Process.ExecID == root {
				exitAt = i
			}
		}
		if firstAt < 0 {
			firstAt = i
		}
	}
	want.FilesWritten = uint64(len(written))
	if start == nil || end == nil {
		t.Fatalf("session %s: start %v end %v", root, start != nil, end != nil)
	}
	if startAt > firstAt || exitAt < 0 || endAt < exitAt {
		t.Errorf("order: start at %d, first event at %d, root exit at %d, end at %d", startAt, firstAt, exitAt, endAt)
	}
	if start.Process == nil || start.Process.ExecID != root || start.Agent.Role != event.RoleRoot || start.Session == nil ||
		!start.Session.Start.Equal(start.Process.StartTime) || start.Posture == nil || start.Posture.Compliant {
		t.Errorf("session start: %s session %+v", describe(start), start.Session)
	}
	s := end.Session
	if s == nil || s.Counts == nil || s.EndReason != event.SessionEndExit || end.Agent.SessionID != r.sess.uuid {
		t.Fatalf("session end: %s session %+v", describe(end), s)
	}
	if *s.Counts != want || want.DeniedToolCalls != 1 || want.ToolCalls != 2 || want.Alerts < 2 || want.Processes == 0 {
		t.Errorf("session end counts %+v, the session's events say %+v", *s.Counts, want)
	}

	// The sessions view of the same output.
	out, err := exec.Command(lineaged, "sessions", "--json", "--session", r.sess.uuid, filepath.Join(tmp, "summary", "events.jsonl")).Output()
	if err != nil {
		t.Fatalf("lineaged sessions: %v", err)
	}
	var rep struct {
		Sessions []struct {
			RootExecID string `json:"root_exec_id"`
			ToolCalls  []struct {
				Name     string `json:"name"`
				Decision string `json:"decision"`
				Input    string `json:"input"`
			} `json:"tool_calls"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Sessions) != 1 {
		t.Fatalf("sessions --json: %v\n%.2000s", err, out)
	}
	calls := rep.Sessions[0].ToolCalls
	if rep.Sessions[0].RootExecID != root || len(calls) != 2 || calls[0].Name != "Read" || calls[0].Input != env ||
		calls[1].Name != "Bash" || calls[1].Decision != event.DecisionDeny {
		t.Errorf("sessions --json: %+v", rep.Sessions[0])
	}
}
