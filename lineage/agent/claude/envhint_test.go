package claude

import (
	"strconv"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// CLAUDE_CODE_SESSION_ID read from a process below the agent's direct
// children is whatever a member passed to execve: the event carries it as
// a hint (session_id_hint), and the agent's own direct child replaces it.
func TestEnvSessionIDBelowDirectChildIsAHint(t *testing.T) {
	w := newWorld(t)
	root, ra := w.root(400, "-p", "x")
	shell := w.proc(401, 400, "/bin/bash", "/bin/bash", "-c", "env")
	sa := resolve(t, w.exec(shell, root, ra), 50*time.Millisecond)
	const forged = "00000000-0000-4000-8000-000000000bad"
	w.env[402] = map[string]string{"CLAUDE_CODE_SESSION_ID": forged, "CLAUDE_PID": "400"}
	deep := w.proc(402, 401, "/usr/bin/env", "env")
	da := resolve(t, w.exec(deep, shell, sa), 50*time.Millisecond)
	if da.SessionID != forged || !da.SessionIDHint {
		t.Fatalf("deeper descendant's environment taken as established: %+v", da)
	}
	// The agent's direct child says the real id: established from then on.
	w.env[403] = map[string]string{"CLAUDE_CODE_SESSION_ID": sessUUID, "CLAUDE_PID": strconv.Itoa(400)}
	tool := w.proc(403, 400, "/bin/bash", "/bin/bash", "-c", "true")
	ta := resolve(t, w.exec(tool, root, ra), 50*time.Millisecond)
	if ta.SessionID != sessUUID || ta.SessionIDHint {
		t.Fatalf("direct child %+v", ta)
	}
	again := resolve(t, w.exec(w.proc(404, 401, "/usr/bin/true", "true"), shell, da), 50*time.Millisecond)
	if again.SessionID != sessUUID || again.SessionIDHint {
		t.Errorf("after the direct child: %+v", again)
	}
	if w.obs.Stats().SessionHints != 1 {
		t.Errorf("hints %d", w.obs.Stats().SessionHints)
	}
	_ = event.RoleTool
}
