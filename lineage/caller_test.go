package lineage

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// waitLive waits until the engine's table holds n live images.
func waitLive(t *testing.T, r *rig, n int) {
	t.Helper()
	for range 400 {
		if r.e.Stats().Live >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the table never held %d live images: %+v", n, r.e.Stats())
}

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
	r.e.EmitFor(999, &event.Event{Kind: event.KindAgentToolCall, Agent: &event.Agent{SessionID: "s-1", ToolUse: tu}})
	// The fork is read before the hook call is handled, its exec after.
	in := make(chan sensor.Event, 4)
	out := make(chan *event.Event, 16)
	in <- claudeRoot(5000 * ms)
	in <- forkEv(hook, key(50, 500), 6000*ms, sess)
	done := make(chan error, 1)
	go func() { done <- r.e.Run(context.Background(), in, out) }()
	waitLive(t, r, 6) // the seed's 4, the agent, the forked hook
	r.e.EmitFor(70, &event.Event{Kind: event.KindAgentToolCall, Agent: &event.Agent{SessionID: "s-1", ToolUse: tu}})
	time.Sleep(50 * time.Millisecond)
	in <- execEv(hook, key(50, 500), 6001*ms, sess, "/usr/bin/lineaged", "lineaged", "hook")
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []*event.Event
	for ev := range out {
		got = append(got, ev)
	}
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
