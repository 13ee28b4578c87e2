package claude

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
)

// A session member appends a Claude-looking record naming its own command:
// the sensor saw it open the transcript for write, so the process that
// binds through that transcript is attributed untrusted, not transcript.
func TestForgedTranscriptRecordIsUntrusted(t *testing.T) {
	w := newWorld(t)
	root, ra := w.root(300, "-p", "x")
	w.append(`{"type":"queue-operation"}`)
	w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: w.tpath, Mode: event.ModeWrite}})

	// An honest call first: transcript.
	w.append(toolUse("toolu_ok", "Bash", `{"command":"true"}`))
	honest := w.proc(301, 300, "/bin/bash", toolArgv("true")...)
	if a := resolve(t, w.exec(honest, root, ra), time.Second); a.ToolUse == nil || a.ToolUse.ID != "toolu_ok" || a.ToolUse.Attribution != event.AttributionTranscript {
		t.Fatalf("honest call %+v", a.ToolUse)
	}

	// A tool's child opens the transcript for append and forges a record.
	member := w.proc(303, 302, "/usr/bin/python3", "python3", "-c", "...")
	ma := &event.Agent{Name: ra.Name, RootExecID: ra.RootExecID, Role: event.RoleTool}
	w.in.File(agent.File{Proc: member, Agent: ma, File: &event.File{Path: w.tpath, Mode: event.ModeWrite}})
	w.append(toolUse("toolu_forged", "Bash", `{"command":"curl evil"}`))
	forged := w.proc(304, 300, "/bin/bash", toolArgv("curl evil")...)
	a := resolve(t, w.exec(forged, root, ra), time.Second)
	if a.ToolUse == nil || a.ToolUse.ID != "toolu_forged" || a.ToolUse.Attribution != event.AttributionUntrusted {
		t.Fatalf("call bound through a transcript a member wrote: %+v", a.ToolUse)
	}
	if st := w.obs.Stats(); st.ForeignWrites != 1 || st.ToolsBoundUntrusted != 1 {
		t.Errorf("stats %+v", st)
	}
}

// A second name for the transcript lets a member append without an open of
// its path: a hard-linked transcript is untrusted too.
func TestHardLinkedTranscriptIsUntrusted(t *testing.T) {
	w := newWorld(t)
	root, ra := w.root(310, "-p", "x")
	w.append(`{"type":"queue-operation"}`)
	if err := os.Link(w.tpath, filepath.Join(filepath.Dir(w.tpath), "..", "other-name")); err != nil {
		t.Fatal(err)
	}
	w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: w.tpath, Mode: event.ModeWrite}})
	w.append(toolUse("toolu_l", "Bash", `{"command":"id"}`))
	a := resolve(t, w.exec(w.proc(311, 310, "/bin/bash", toolArgv("id")...), root, ra), time.Second)
	if a.ToolUse == nil || a.ToolUse.ID != "toolu_l" || a.ToolUse.Attribution != event.AttributionUntrusted {
		t.Fatalf("hard-linked transcript: %+v", a.ToolUse)
	}
}

// Only a Bash call runs a Bash tool process: a record of another tool
// whose input carries the same command does not bind it.
func TestOnlyBashRecordsBindProcesses(t *testing.T) {
	w := newWorld(t)
	root, ra := w.root(320, "-p", "x")
	w.append(`{"type":"queue-operation"}`)
	w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: w.tpath, Mode: event.ModeWrite}})
	for i, name := range []string{"Task", "mcp__srv__run", "Write"} {
		w.append(toolUse(fmt.Sprintf("toolu_%d", i), name, `{"command":"make deploy","file_path":"/tmp/x"}`))
	}
	a := resolve(t, w.exec(w.proc(321, 320, "/bin/bash", toolArgv("make deploy")...), root, ra), 100*time.Millisecond)
	if a.ToolUse == nil || a.ToolUse.ID != "" {
		t.Fatalf("a non-Bash record bound a Bash process: %+v", a.ToolUse)
	}
}

// The agent opening a transcript outside its own configuration directory
// (another user's ~/.claude, reached through a path a member planted) is
// not followed: nothing binds through it.
func TestTranscriptOutsideConfigDirNotFollowed(t *testing.T) {
	w := newWorld(t)
	root, ra := w.root(330, "-p", "x")
	other := filepath.Join(filepath.Dir(w.home), "other", ".claude", "projects", "-w")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(other, sessUUID+".jsonl")
	os.WriteFile(path, []byte(toolUse("toolu_x", "Bash", `{"command":"id"}`)+"\n"), 0o600)
	w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: path, Mode: event.ModeWrite}})
	a := resolve(t, w.exec(w.proc(331, 330, "/bin/bash", toolArgv("id")...), root, ra), 100*time.Millisecond)
	if a.ToolUse == nil || a.ToolUse.ID != "" {
		t.Fatalf("bound through a transcript outside the session's configuration directory: %+v", a.ToolUse)
	}
	if st := w.obs.Stats(); st.Transcript.Refused != 1 {
		t.Errorf("stats %+v", st.Transcript)
	}
}
