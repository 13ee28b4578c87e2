package agent

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// recorder is an integration that names every exec a root of its own.
type recorder struct {
	execs, files int
	exits        []string
}

func (r *recorder) Exec(x Exec) Result {
	r.execs++
	return Result{Agent: &event.Agent{Name: "claude-code", RootExecID: x.Proc.ExecID, Role: event.RoleRoot}}
}

func (r *recorder) File(File) Result { r.files++; return Result{} }

func (r *recorder) Exit(p *event.Process) { r.exits = append(r.exits, p.ExecID) }

func TestRouterGenericSessionAndNesting(t *testing.T) {
	const nm = "/usr/lib/node_modules"
	fs := fakeFS{nm + "/@openai/codex/package.json": `{"name":"@openai/codex","version":"0.58.0"}`}
	claude := &recorder{}
	r := NewRouter(RouterConfig{ReadFile: fs.read, Integrations: map[sensor.AgentKind]Integration{sensor.AgentClaudeCode: claude}})
	codexSess := sensor.SessionRef{Root: sensor.ProcKey{PID: 10}, Agent: sensor.AgentCodex}

	// A codex session: no integration of its own.
	root := &event.Process{ExecID: "codex", PID: 10, Exe: "/usr/bin/node", Argv: []string{"node", nm + "/@openai/codex/bin/codex.js"}}
	ra := r.Exec(Exec{Proc: root, Session: codexSess}).Agent
	if ra == nil || ra.Name != "codex" || ra.Version != "0.58.0" || ra.Role != event.RoleRoot || ra.RootExecID != "codex" {
		t.Fatalf("codex root %+v", ra)
	}
	// A member, as the engine passes it: the root's attribution, inherited
	// as a descendant, without the version.
	tool := &event.Process{ExecID: "sh", PID: 11, PPID: 10, Exe: "/bin/sh"}
	inherited := &event.Agent{Name: "codex", RootExecID: "codex", Role: event.RoleDescendant}
	ta := r.Exec(Exec{Proc: tool, Parent: root, ParentAgent: inherited, Session: codexSess}).Agent
	if ta == nil || ta.Version != "0.58.0" || ta.Role != event.RoleDescendant || ta.RootExecID != "codex" {
		t.Fatalf("codex member %+v", ta)
	}
	if fa := r.File(File{Proc: tool, Agent: inherited, File: &event.File{Path: "/x"}}).Agent; fa == nil || fa.Version != "0.58.0" {
		t.Fatalf("codex file %+v", fa)
	}
	// Claude Code started by the codex session's tool: handed to its
	// integration, and linked to the codex session.
	inner := &event.Process{ExecID: "claude", PID: 12, PPID: 11, Exe: "/h/.local/share/claude/versions/2.1.332", Argv: []string{"claude"}}
	ia := r.Exec(Exec{Proc: inner, Parent: tool, Session: sensor.SessionRef{Root: sensor.ProcKey{PID: 12}, Agent: sensor.AgentClaudeCode}}).Agent
	if claude.execs != 1 || ia == nil || ia.ParentRootExecID != "codex" {
		t.Fatalf("nested claude: %d execs, %+v", claude.execs, ia)
	}
	claudeAgent := &event.Agent{Name: "claude-code", RootExecID: "claude", Role: event.RoleRoot}
	r.File(File{Proc: inner, Agent: claudeAgent, File: &event.File{Path: "/y"}})
	if claude.files != 1 {
		t.Errorf("claude file events routed: %d", claude.files)
	}
	r.Exit(inner)
	if len(claude.exits) != 1 || claude.exits[0] != "claude" {
		t.Errorf("exits %v", claude.exits)
	}
	// Not an agent, outside any session: nothing to say.
	if a := r.Exec(Exec{Proc: &event.Process{ExecID: "x", Exe: "/bin/true"}}).Agent; a != nil {
		t.Errorf("outsider %+v", a)
	}
}

func TestRouterDaemonizedMemberIsDescendant(t *testing.T) {
	r := NewRouter(RouterConfig{})
	sess := sensor.SessionRef{Root: sensor.ProcKey{PID: 10}, Agent: sensor.AgentGemini}
	inherited := &event.Agent{Name: "gemini-cli", RootExecID: "g", Role: event.RoleTool}
	d := &event.Process{ExecID: "d", PID: 30, PPID: 1, Exe: "/bin/sleep"}
	if a := r.Exec(Exec{Proc: d, ParentAgent: inherited, Session: sess}).Agent; a == nil || a.Role != event.RoleDescendant {
		t.Errorf("daemon %+v", a)
	}
}

func TestSessionsEvictEndedFirst(t *testing.T) {
	var dropped []string
	s := NewSessions(2, func(v string) { dropped = append(dropped, v) })
	s.Add("a", "A")
	s.Add("b", "B")
	s.End("b")
	s.Add("c", "C")
	if _, ok := s.Get("b"); ok || s.Len() != 2 || len(dropped) != 1 || dropped[0] != "B" {
		t.Errorf("dropped %v, len %d", dropped, s.Len())
	}
	s.Add("d", "D")
	if _, ok := s.Get("a"); ok {
		t.Error("oldest kept when none ended")
	}
}

func TestMembersBounded(t *testing.T) {
	var m Members
	m.Remember("first", "r0")
	for i := range MaxMembers {
		m.Remember(string(rune(i+0x10000)), "r")
	}
	if m.RootOf("first") != "" || m.RootOf(string(rune(0x10000+MaxMembers-1))) != "r" {
		t.Error("bound")
	}
}
