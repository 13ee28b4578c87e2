package policy

import (
	"fmt"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// kinds lists the kinds of evs, in order.
func kinds(evs []*event.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}

// A session's summary opens before its first event and closes after its
// root's exit and the alerts on it, counting processes, distinct written
// files, connections, tool calls (denied ones apart) and alerts; a
// session still running when the sensor stops ends before sensor.stop.
func TestSessionSummariesCountWhatTheSessionDid(t *testing.T) {
	rs, err := LoadRules(writeRules(t, t.TempDir(), "r.yaml", goodRule))
	if err != nil {
		t.Fatal(err)
	}
	st, err := New(Config{Rules: rs, SessionSummaries: true})
	if err != nil {
		t.Fatal(err)
	}
	var all []*event.Event
	feed := func(ev *event.Event) []*event.Event {
		out := append([]*event.Event(nil), st.Process(ev)...)
		all = append(all, out...)
		return out
	}
	at := func(ev *event.Event, d time.Duration) *event.Event { ev.Time = t0.Add(d); return ev }

	rootExec := session(event.KindProcessExec, "/home/dev/.local/share/claude/versions/2.1.332", "/home/dev/proj")
	rootExec.Process = &rootExec.Ancestry[1]
	rootExec.Process.StartTime = t0.Add(-time.Second)
	rootExec.Ancestry = nil
	f, tr := false, true
	rootExec.Agent = &event.Agent{Name: "claude-code", RootExecID: "root", Role: event.RoleRoot, Verified: &f, Verification: "pending"}
	if got := kinds(feed(rootExec)); len(got) != 2 || got[0] != event.KindAgentSessionStart || got[1] != event.KindProcessExec {
		t.Fatalf("root exec gave %v, want the session start before it", got)
	}
	feed(at(session(event.KindProcessExec, "/usr/bin/curl", "/tmp"), time.Second)) // + an alert
	feed(at(session(event.KindProcessExec, "/usr/bin/git", "/tmp"), 2*time.Second))
	for i, p := range []string{"/tmp/a", "/tmp/a", "/tmp/b"} {
		w := at(session(event.KindFileOpen, "/usr/bin/git", "/tmp"), time.Duration(3+i)*time.Second)
		w.File = &event.File{Path: p, Mode: event.ModeWrite}
		feed(w)
	}
	r := at(session(event.KindFileOpen, "/usr/bin/git", "/tmp"), 6*time.Second)
	r.File = &event.File{Path: "/etc/passwd", Mode: event.ModeRead}
	feed(r)
	c := at(session(event.KindNetConnect, "/usr/bin/curl", "/tmp"), 7*time.Second)
	c.Net = &event.Net{Protocol: "tcp", DstIP: "10.0.0.1", DstPort: 443}
	feed(c)
	for i, d := range []string{event.DecisionAllow, event.DecisionDeny} {
		tc := at(session(event.KindAgentToolCall, "/usr/bin/lineaged-hook", "/tmp"), time.Duration(8+i)*time.Second)
		tc.Tool = &event.ToolCall{ID: "toolu_x", Name: "Bash", Hook: HookPreToolUse, Decision: d}
		feed(tc)
	}
	post := at(session(event.KindAgentToolCall, "/usr/bin/lineaged-hook", "/tmp"), 10*time.Second)
	post.Tool = &event.ToolCall{ID: "toolu_x", Name: "Bash", Hook: HookPostToolUse, Decision: event.DecisionAllow}
	feed(post)
	// Another session, still running at the end.
	other := at(session(event.KindProcessExec, "/usr/bin/ls", "/tmp"), 11*time.Second)
	other.Agent = &event.Agent{Name: "claude-code", RootExecID: "root-2", Role: event.RoleDescendant, SessionID: "s-2"}
	if got := kinds(feed(other)); len(got) != 2 || got[0] != event.KindAgentSessionStart {
		t.Fatalf("first event of a seeded session gave %v, want its start first", got)
	}

	exit := at(session(event.KindProcessExit, "", ""), 12*time.Second)
	exit.Process = &event.Process{ExecID: "root", Exe: rootExec.Process.Exe}
	settledAt := t0.Add(time.Second)
	exit.Agent = &event.Agent{Name: "claude-code", SessionID: "s-1", RootExecID: "root", Role: event.RoleRoot,
		Verified: &tr, Verification: "hash-list", VerifiedAt: &settledAt, Release: "2.1.332"}
	exit.Exit = &event.Exit{}
	out := feed(exit)
	if got := kinds(out); len(got) != 2 || got[1] != event.KindAgentSessionEnd {
		t.Fatalf("root exit gave %v, want the session end after it", got)
	}
	end := out[1]
	want := event.SessionCounts{Processes: 3, FilesWritten: 2, Connections: 1, ToolCalls: 2, DeniedToolCalls: 1, Alerts: 1}
	if s := end.Session; s == nil || s.Counts == nil || *s.Counts != want || s.EndReason != event.SessionEndExit ||
		!s.Start.Equal(t0.Add(-time.Second)) || !s.End.Equal(t0.Add(12*time.Second)) {
		t.Fatalf("session end %+v counts %+v, want %+v", end.Session, end.Session.Counts, want)
	}
	if end.Agent.SessionID != "s-1" || end.Agent.Role != event.RoleRoot || end.Process == nil || end.Process.ExecID != "root" {
		t.Errorf("session end agent %+v process %+v: want the session id learned after the start, role root, the root", end.Agent, end.Process)
	}
	if a := end.Agent; a.Verified == nil || !*a.Verified || a.Verification != "hash-list" || a.VerifiedAt == nil || a.Release != "2.1.332" {
		t.Errorf("session end agent %+v: want the verification settled during the session", a)
	}

	stop := feed(at(&event.Event{Kind: event.KindSensorStop}, 13*time.Second))
	if got := kinds(stop); len(got) != 2 || got[0] != event.KindAgentSessionEnd || got[1] != event.KindSensorStop {
		t.Fatalf("sensor.stop gave %v, want the running session's end before it", got)
	}
	if s := stop[0].Session; s.EndReason != event.SessionEndSensorStop || stop[0].Agent.RootExecID != "root-2" || s.Counts.Processes != 1 {
		t.Errorf("running session ended with %+v %+v", s, s.Counts)
	}
	starts, ends := 0, 0
	for _, e := range all {
		switch e.Kind {
		case event.KindAgentSessionStart:
			starts++
		case event.KindAgentSessionEnd:
			ends++
		}
	}
	if starts != 2 || ends != 2 {
		t.Errorf("%d starts and %d ends in the stream, want 2 and 2", starts, ends)
	}
}

// Past maxSummaries open sessions, a new session gets no summary and its
// events are reported lost to the summaries (sensor.loss), at once the
// first time and the rest at sensor.stop.
func TestSessionSummariesAreBounded(t *testing.T) {
	st, err := New(Config{SessionSummaries: true})
	if err != nil {
		t.Fatal(err)
	}
	exec := func(root string) []*event.Event {
		return st.Process(&event.Event{Kind: event.KindProcessExec, Time: t0,
			Process: &event.Process{ExecID: root}, Agent: &event.Agent{Name: "claude-code", RootExecID: root, Role: event.RoleRoot}})
	}
	for i := range maxSummaries {
		if out := exec(fmt.Sprint("root-", i)); len(out) != 2 {
			t.Fatalf("session %d: %v", i, kinds(out))
		}
	}
	out := exec("one-too-many")
	if got := kinds(out); len(got) != 2 || got[0] != event.KindProcessExec || got[1] != event.KindSensorLoss ||
		out[1].Loss.Where != lossSummaries || out[1].Loss.Count != 1 {
		t.Fatalf("the session over the bound gave %v", got)
	}
	exec("one-too-many")
	exec("two-too-many")
	out = st.Process(&event.Event{Kind: event.KindSensorStop, Time: t0})
	if len(out) != maxSummaries+2 || out[0].Kind != event.KindSensorLoss || out[0].Loss.Count != 2 ||
		out[1].Kind != event.KindAgentSessionEnd || out[len(out)-1].Kind != event.KindSensorStop {
		t.Fatalf("sensor.stop gave %d events, first %v", len(out), kinds(out[:2]))
	}
}

// agent.session_start carries the root's ancestry, the chain above the
// session every event of it shares: from the root's exec, or from the
// ancestors after the root in a seeded session's first event.
func TestSessionStartCarriesRootAncestry(t *testing.T) {
	above := []event.Process{{ExecID: "zsh", PID: 4100, Exe: "/usr/bin/zsh"}, {ExecID: "init", PID: 1, Exe: "/sbin/init"}}
	for name, first := range map[string]func() *event.Event{
		"root exec": func() *event.Event {
			ev := session(event.KindProcessExec, "/home/dev/.local/share/claude/versions/2.1.332", "/home/dev/proj")
			ev.Process = &ev.Ancestry[1]
			ev.Ancestry = append([]event.Process(nil), above...)
			ev.Agent.Role = event.RoleRoot
			return ev
		},
		"seeded session": func() *event.Event {
			ev := session(event.KindProcessExec, "/usr/bin/git", "/tmp")
			ev.Ancestry = append(ev.Ancestry, above...)
			return ev
		},
	} {
		st, err := New(Config{SessionSummaries: true})
		if err != nil {
			t.Fatal(err)
		}
		out := st.Process(first())
		if len(out) != 2 || out[0].Kind != event.KindAgentSessionStart {
			t.Fatalf("%s: %v, want the session start first", name, kinds(out))
		}
		start := out[0]
		if start.Process == nil || start.Process.ExecID != "root" {
			t.Fatalf("%s: session start process %+v, want the root", name, start.Process)
		}
		if len(start.Ancestry) != 2 || start.Ancestry[0].ExecID != "zsh" || start.Ancestry[1].ExecID != "init" {
			t.Errorf("%s: session start ancestry %+v, want zsh then init", name, start.Ancestry)
		}
	}
}
