package lineage

import (
	"slices"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
)

// An event a hook process reports (EmitFor) goes out with that process,
// its ancestry and its session from the table, keeping the tool call it is
// about, even when it is queued before the process's exec is read; one for
// a process the table never learns of goes out marked partial.
func TestEmitForFillsTheProcessAndSession(t *testing.T) {
	r := newRig(t, Config{}, nil)
	seedBase(r)
	settle(r)
	hook := key(70, 700)
	tu := &event.ToolUse{ID: "toolu_01", Name: "Bash", Attribution: event.AttributionExact}
	r.e.EmitFor(70, &event.Event{Kind: event.KindAgentToolCall, Agent: &event.Agent{SessionID: "s-1", ToolUse: tu}})
	r.e.EmitFor(999, &event.Event{Kind: event.KindAgentToolCall, Agent: &event.Agent{SessionID: "s-1", ToolUse: tu}})
	got := r.run(
		claudeRoot(5000*ms),
		forkEv(hook, key(50, 500), 6000*ms, sess),
		execEv(hook, key(50, 500), 6001*ms, sess, "/usr/bin/lineaged", "lineaged", "hook"),
	)
	var calls []*event.Event
	for _, ev := range got {
		if ev.Kind == event.KindAgentToolCall {
			calls = append(calls, ev)
		}
	}
	if len(calls) != 2 {
		t.Fatalf("%d tool calls out of %d events", len(calls), len(got))
	}
	slices.SortFunc(calls, func(a, b *event.Event) int { return len(a.Partial) - len(b.Partial) })
	c := calls[0]
	if c.Process == nil || c.Process.PID != 70 || c.Process.Exe != "/usr/bin/lineaged" {
		t.Fatalf("process %+v", c.Process)
	}
	if want := []uint32{50, 20, 10, 1}; !slices.Equal(pids(c.Ancestry), want) {
		t.Fatalf("ancestry %v, want %v", pids(c.Ancestry), want)
	}
	if a := c.Agent; a == nil || a.RootExecID == "" || a.Name != "claude-code" || a.SessionID != "s-1" || a.ToolUse != tu {
		t.Fatalf("agent %+v", c.Agent)
	}
	if len(c.Partial) != 0 || c.Schema != event.Schema || c.Host == nil {
		t.Fatalf("event %+v", c)
	}
	u := calls[1]
	if u.Process != nil || !slices.Contains(u.Partial, event.PartialProcess) || u.Agent == nil || u.Agent.ToolUse != tu {
		t.Fatalf("unknown process: %+v", u)
	}
}
