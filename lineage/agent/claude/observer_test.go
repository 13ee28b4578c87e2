package claude

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

const sessUUID = "1dc37556-28e4-4d82-aae6-f40f12ed25d7"

// world is a fake host for the observer: a HOME with Claude Code's
// directories, an npm install, processes with environments.
type world struct {
	t      testing.TB
	home   string
	cwd    string
	exe    string
	tpath  string
	obs    *Observer
	in     agent.Integration // obs behind the router, as the engine calls it
	nextID int
	env    map[uint32]map[string]string
	// procRoot holds <pid>/root links to "/" for the fake processes.
	procRoot string
}

// linkRoots makes <procRoot>/<pid>/root a link to "/" for each pid, as
// /proc/<pid>/root is for a process in the host's root.
func linkRoots(t testing.TB, procRoot string, pids ...uint32) {
	for _, pid := range pids {
		d := filepath.Join(procRoot, fmt.Sprint(pid))
		if _, err := os.Lstat(filepath.Join(d, "root")); err == nil {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/", filepath.Join(d, "root")); err != nil {
			t.Fatal(err)
		}
	}
}

func newWorld(t testing.TB) *world {
	dir := t.TempDir()
	w := &world{t: t, home: filepath.Join(dir, "home"), cwd: filepath.Join(dir, "work"), env: map[uint32]map[string]string{}, procRoot: filepath.Join(dir, "proc")}
	pkg := filepath.Join(dir, "node_modules", "@anthropic-ai", "claude-code")
	for _, d := range []string{w.cwd, filepath.Join(pkg, "bin"), filepath.Join(w.home, ".claude", "projects", "-work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(pkg, "package.json"), []byte(`{"name":"@anthropic-ai/claude-code","version":"2.1.332"}`), 0o644)
	w.exe = filepath.Join(pkg, "bin", "claude.exe")
	w.tpath = filepath.Join(w.home, ".claude", "projects", "-work", sessUUID+".jsonl")
	w.use(New(Config{PollInterval: time.Millisecond, FileWait: 200 * time.Millisecond, ProcRoot: w.procRoot}, nil))
	return w
}

// use makes o the world's observer, behind a router as in the binary.
func (w *world) use(o *Observer) {
	w.obs = o
	w.in = agent.NewRouter(agent.RouterConfig{Integrations: map[sensor.AgentKind]agent.Integration{sensor.AgentClaudeCode: o}})
}

func (w *world) proc(pid, ppid uint32, exe string, argv ...string) *event.Process {
	w.nextID++
	linkRoots(w.t, w.procRoot, pid)
	return &event.Process{ExecID: fmt.Sprintf("exec-%d-%d", pid, w.nextID), PID: pid, PPID: ppid, Exe: exe, Argv: argv, Cwd: w.cwd}
}

func (w *world) envOf(pid uint32) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := w.env[pid][k]
		return v, ok
	}
}

// exec runs the observer as the lineage engine does: a child of the
// session root inherits the root's attribution as a descendant.
func (w *world) exec(p, parent *event.Process, pa *event.Agent) agent.Result {
	if pa != nil && pa.Role == event.RoleRoot && parent != nil && parent.ExecID == pa.RootExecID {
		d := *pa
		d.Role = event.RoleDescendant
		pa = &d
	}
	return w.in.Exec(agent.Exec{Proc: p, Parent: parent, ParentAgent: pa, Env: w.envOf(p.PID)})
}

func (w *world) append(lines ...string) {
	f, err := os.OpenFile(w.tpath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		f.WriteString(l + "\n")
	}
}

func toolUse(id, name string, input string) string {
	return fmt.Sprintf(`{"type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","id":%q,"name":%q,"input":%s}]},"sessionId":%q}`, id, name, input, sessUUID)
}

func resolve(t testing.TB, r agent.Result, d time.Duration) *event.Agent {
	t.Helper()
	if r.Agent == nil {
		t.Fatal("no attribution")
	}
	if r.Resolve != nil {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		r.Resolve(ctx, r.Agent)
	}
	return r.Agent
}

func (w *world) root(pid uint32, argv ...string) (*event.Process, *event.Agent) {
	w.env[pid] = map[string]string{"HOME": w.home}
	p := w.proc(pid, 1, w.exe, append([]string{"/usr/bin/claude"}, argv...)...)
	r := w.exec(p, nil, nil)
	a := resolve(w.t, r, time.Second)
	if a.Role != event.RoleRoot || a.Name != "claude-code" || a.Version != "2.1.332" || a.RootExecID != p.ExecID {
		w.t.Fatalf("root attribution %+v", a)
	}
	return p, a
}

// A full Claude Code session: the Bash tool's exec comes before its
// tool_use record is read (the transcript lags), descendants inherit the
// tool call, Read/Write run inside the agent, the UUID comes from the
// transcript the agent opens.
func TestSessionBashToolLaggingTranscript(t *testing.T) {
	w := newWorld(t)
	root, ra := w.root(100, "-p", "hi", "--dangerously-skip-permissions")
	if ra.SessionID != "" {
		t.Fatalf("session id before anything says it: %q", ra.SessionID)
	}

	// Startup helper (environment probe): a descendant, no session id yet.
	w.env[101] = map[string]string{"AI_AGENT": "claude-code_2-1-332_harness"}
	probe := w.proc(101, 100, "/bin/bash", "/bin/bash", "-c", "env")
	pa := resolve(t, w.exec(probe, root, ra), 50*time.Millisecond)
	if pa.Role != event.RoleDescendant || pa.RootExecID != root.ExecID || pa.SessionID != "" || pa.ToolUse != nil {
		t.Fatalf("probe %+v", pa)
	}

	// The agent opens its transcript for append: the session UUID.
	fr := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: w.tpath, Mode: event.ModeWrite}})
	if a := resolve(t, fr, time.Second); a.SessionID != sessUUID || a.ToolUse != nil {
		t.Fatalf("transcript open %+v", a)
	}

	// Bash tool process, real argv shape; its record lands 30ms later.
	cmd := "echo 'hi there' > out.txt; curl -s http://127.0.0.1:1/"
	tool := w.proc(102, 100, "/usr/bin/bash", toolArgv(cmd)...)
	w.env[102] = map[string]string{"CLAUDE_CODE_SESSION_ID": sessUUID, "AI_AGENT": "claude-code_2-1-332_agent", "CLAUDE_PID": "100"}
	tr := w.exec(tool, root, ra)
	if tr.Agent.Role != event.RoleTool || tr.Agent.ToolUse == nil || tr.Agent.ToolUse.Name != "Bash" || tr.Resolve == nil {
		t.Fatalf("tool before resolve %+v", tr.Agent)
	}
	// A child of the tool, exec'd before the tool is resolved.
	curl := w.proc(103, 102, "/usr/bin/curl", "curl", "-s", "http://127.0.0.1:1/")
	cr := w.exec(curl, tool, tr.Agent)
	go func() {
		time.Sleep(30 * time.Millisecond)
		w.append(toolUse("toolu_other", "Bash", `{"command":"ls"}`), toolUse("toolu_A", "Bash", fmt.Sprintf(`{"command":%q,"description":"d"}`, cmd)))
	}()
	ta := resolve(t, tr, 2*time.Second)
	if ta.ToolUse == nil || ta.ToolUse.ID != "toolu_A" || ta.ToolUse.Name != "Bash" || ta.SessionID != sessUUID {
		t.Fatalf("tool %+v %+v", ta, ta.ToolUse)
	}
	ca := resolve(t, cr, 2*time.Second)
	if ca.Role != event.RoleTool || ca.ToolUse == nil || ca.ToolUse.ID != "toolu_A" || ca.SessionID != sessUUID {
		t.Fatalf("tool child %+v %+v", ca, ca.ToolUse)
	}
	// A grandchild after resolution needs no wait.
	gc := w.proc(104, 103, "/usr/bin/true", "true")
	gr := w.exec(gc, curl, tr.Agent) // the table may still hold the placeholder
	if gr.Resolve != nil || gr.Agent.ToolUse.ID != "toolu_A" {
		t.Fatalf("grandchild %+v resolve=%v", gr.Agent.ToolUse, gr.Resolve != nil)
	}
	// The same command again is a different call: toolu_A is taken.
	again := w.proc(105, 100, "/usr/bin/bash", toolArgv(cmd)...)
	ar := w.exec(again, root, ra)
	w.append(toolUse("toolu_B", "Bash", fmt.Sprintf(`{"command":%q}`, cmd)))
	if a := resolve(t, ar, 2*time.Second); a.ToolUse.ID != "toolu_B" {
		t.Fatalf("second identical command bound to %+v", a.ToolUse)
	}

	// Read of a symlink (the kernel reports the target), Write through a
	// temporary file renamed into place.
	os.WriteFile(filepath.Join(w.cwd, "real.txt"), []byte("x"), 0o644)
	os.Symlink(filepath.Join(w.cwd, "real.txt"), filepath.Join(w.cwd, "link.txt"))
	w.append(toolUse("toolu_R", "Read", fmt.Sprintf(`{"file_path":%q}`, filepath.Join(w.cwd, "link.txt"))))
	rr := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: filepath.Join(w.cwd, "real.txt"), Mode: event.ModeRead}})
	if a := resolve(t, rr, time.Second); a.ToolUse == nil || a.ToolUse.ID != "toolu_R" || a.Role != event.RoleRoot {
		t.Fatalf("read %+v", a)
	}
	wpath := filepath.Join(w.cwd, "w.txt")
	w.append(toolUse("toolu_W", "Write", fmt.Sprintf(`{"file_path":%q,"content":"c"}`, wpath)))
	wr := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: wpath + ".tmp.100.5665b64a51bd", Mode: event.ModeWrite, Created: true}})
	if a := resolve(t, wr, time.Second); a.ToolUse == nil || a.ToolUse.ID != "toolu_W" {
		t.Fatalf("write tmp %+v", a)
	}
	rn := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: "/proc/self/fd/14/w.txt.tmp.100.5665b64a51bd", NewPath: "/proc/self/fd/14/w.txt"}})
	if a := resolve(t, rn, time.Second); a.ToolUse == nil || a.ToolUse.ID != "toolu_W" {
		t.Fatalf("rename %+v", a)
	}
	// The agent opens files a Bash command names while vetting it: tied to
	// the Bash call in flight (toolu_B has no result yet).
	vet := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: "/w/vetted.txt", Mode: event.ModeRead}})
	w.append(toolUse("toolu_V", "Bash", `{"command":"cat /w/vetted.txt | wc -l"}`))
	if a := resolve(t, vet, time.Second); a.ToolUse == nil || a.ToolUse.ID != "toolu_V" || a.ToolUse.Name != "Bash" {
		t.Fatalf("vetting open %+v", a)
	}
	// A prefix of a named path is not the path.
	pre := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: "/w/vetted", Mode: event.ModeRead}})
	if a := resolve(t, pre, time.Second); a.ToolUse != nil {
		t.Fatalf("prefix matched %+v", a.ToolUse)
	}
	// Once the call has its result, its paths are the agent's own again.
	w.append(`{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_V"}]}}`)
	after := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: "/w/vetted.txt", Mode: event.ModeRead}})
	if a := resolve(t, after, time.Second); a.ToolUse != nil {
		t.Fatalf("finished call matched %+v", a.ToolUse)
	}
	// The agent's own files match no tool call.
	other := w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: "/etc/passwd", Mode: event.ModeRead}})
	if a := resolve(t, other, time.Second); a.ToolUse != nil || a.SessionID != sessUUID {
		t.Fatalf("unrelated file %+v", a)
	}
	// A tool process reading the transcript does not change the session.
	w.in.File(agent.File{Proc: tool, Agent: ta, File: &event.File{Path: "/x/.claude/projects/-w/" + "00000000-0000-0000-0000-000000000000.jsonl", Mode: event.ModeRead}})
	st := w.obs.Stats()
	if st.ToolsBound != 2 || st.FilesBound != 4 || st.Transcript.ToolCalls != 6 || st.Sessions != 1 {
		t.Errorf("stats %+v", st)
	}
}

// The tool_use never appears: the tool keeps its role and session, the
// tool_use id stays empty, and the failure is counted.
func TestToolUnresolved(t *testing.T) {
	w := newWorld(t)
	root, ra := w.root(200, "-p", "x")
	w.append(`{"type":"queue-operation"}`)
	w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: w.tpath, Mode: event.ModeWrite}})
	tool := w.proc(201, 200, "/bin/bash", toolArgv("sleep 1")...)
	a := resolve(t, w.exec(tool, root, ra), 30*time.Millisecond)
	if a.Role != event.RoleTool || a.SessionID != sessUUID || a.ToolUse == nil || a.ToolUse.ID != "" {
		t.Fatalf("%+v %+v", a, a.ToolUse)
	}
	if w.obs.Stats().ToolsUnbound != 1 {
		t.Error("unbound tool not counted")
	}
}

// Roles from argv and config: --mcp-config servers, --settings hooks; the
// session UUID from CLAUDE_CODE_SESSION_ID without any transcript.
func TestRolesFromConfig(t *testing.T) {
	w := newWorld(t)
	mcp := filepath.Join(w.cwd, "mcp.json")
	os.WriteFile(mcp, []byte(`{"mcpServers":{"lin":{"type":"stdio","command":"/opt/mcpserver","args":["--x"]},"web":{"type":"http","url":"http://x"}}}`), 0o644)
	os.MkdirAll(filepath.Join(w.cwd, ".claude"), 0o755)
	os.WriteFile(filepath.Join(w.cwd, ".claude", "settings.json"), []byte(`{"hooks":{"Stop":[{"hooks":[{"type":"command","command":"notify-send done"}]}]}}`), 0o644)
	root, ra := w.root(300, "--mcp-config", mcp, `{"mcpServers":{"inline":{"command":"npx","args":["-y","srv"]}}}`,
		"--settings", `{"hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"echo pre >> log"}]}]}}`, "-p", "x")

	w.env[301] = map[string]string{"CLAUDE_CODE_SESSION_ID": sessUUID, "CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS": sessUUID}
	m := resolve(t, w.exec(w.proc(301, 300, "/opt/mcpserver", "/opt/mcpserver", "--x"), root, ra), time.Second)
	if m.Role != event.RoleMCPServer || m.SessionID != sessUUID {
		t.Fatalf("mcp %+v", m)
	}
	// Inline config, command resolved through PATH; and its child inherits.
	np := w.proc(302, 300, "/usr/bin/npx", "npx", "-y", "srv")
	na := resolve(t, w.exec(np, root, ra), time.Second)
	if na.Role != event.RoleMCPServer {
		t.Fatalf("inline mcp %+v", na)
	}
	if c := resolve(t, w.exec(w.proc(303, 302, "/usr/bin/node", "node", "srv.js"), np, na), time.Second); c.Role != event.RoleMCPServer {
		t.Fatalf("mcp child %+v", c)
	}
	for _, h := range []string{"echo pre >> log", "notify-send done"} {
		if a := resolve(t, w.exec(w.proc(304, 300, "/bin/sh", "/bin/sh", "-c", h), root, ra), time.Second); a.Role != event.RoleHook || a.ToolUse != nil {
			t.Fatalf("hook %q: %+v", h, a)
		}
	}
	// Unknown to the config: roles from the environment Claude Code sets.
	w.env[305] = map[string]string{"CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS": sessUUID}
	if a := resolve(t, w.exec(w.proc(305, 300, "/usr/bin/python3", "python3", "srv.py"), root, ra), time.Second); a.Role != event.RoleMCPServer {
		t.Fatalf("env mcp %+v", a)
	}
	w.env[306] = map[string]string{"AI_AGENT": "claude-code_2-1-332_harness", "CLAUDE_PID": "300"}
	w.env[308] = map[string]string{"AI_AGENT": "claude-code_2-1-332_harness", "CLAUDE_PID": "1"}
	if a := resolve(t, w.exec(w.proc(308, 300, "/bin/sh", "/bin/sh", "-c", "x"), root, ra), time.Second); a.Role != event.RoleDescendant {
		t.Fatalf("inherited CLAUDE_PID taken for a hook: %+v", a)
	}
	if a := resolve(t, w.exec(w.proc(306, 300, "/bin/sh", "/bin/sh", "-c", "other hook"), root, ra), time.Second); a.Role != event.RoleHook {
		t.Fatalf("env hook %+v", a)
	}
	// Exited before its environment could be read: descendant.
	if a := resolve(t, w.exec(w.proc(307, 300, "/usr/bin/id", "id", "-u"), root, ra), time.Second); a.Role != event.RoleDescendant {
		t.Fatalf("helper %+v", a)
	}
}

// --session-id gives the UUID at the root's exec; nested claude started
// by a tool is its own session linked to the parent; claude.exe re-run as
// ugrep inside a tool is not.
func TestNestedAndHelpers(t *testing.T) {
	w := newWorld(t)
	const given = "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
	root, ra := w.root(400, "--session-id", given, "-p", "x")
	if ra.SessionID != given {
		t.Fatalf("session from argv %+v", ra)
	}
	w.append(toolUse("toolu_N", "Bash", `{"command":"claude -p inner | grep x"}`))
	w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: w.tpath, Mode: event.ModeWrite}})
	tool := w.proc(401, 400, "/bin/bash", toolArgv("claude -p inner | grep x")...)
	ta := resolve(t, w.exec(tool, root, ra), time.Second)
	if ta.ToolUse == nil || ta.ToolUse.ID != "toolu_N" || ta.SessionID != sessUUID {
		t.Fatalf("tool %+v", ta)
	}
	// The transcript the agent writes wins over the argv hint.
	ug := w.proc(402, 401, w.exe, "ugrep", "-G", "x")
	if a := resolve(t, w.exec(ug, tool, ta), time.Second); a.Role != event.RoleTool || a.ToolUse.ID != "toolu_N" || a.RootExecID != root.ExecID {
		t.Fatalf("ugrep helper %+v", a)
	}
	// A kernel recogniser that ignores argv[0] makes the helper a session
	// root: the observer still gives it, and its file events, the tool's
	// attribution.
	ug2 := w.proc(405, 401, w.exe, "ugrep", "-G", "y")
	hr := w.in.Exec(agent.Exec{Proc: ug2, Parent: tool, Raw: &sensor.Exec{Recognised: sensor.AgentClaudeCode}})
	if a := hr.Agent; a == nil || a.Role != event.RoleTool || a.RootExecID != root.ExecID || a.ToolUse == nil || a.ToolUse.ID != "toolu_N" {
		t.Fatalf("kernel-recognised helper %+v", a)
	}
	bogus := &event.Agent{Name: "claude-code", RootExecID: ug2.ExecID, Role: event.RoleRoot}
	hf := resolve(t, w.in.File(agent.File{Proc: ug2, Agent: bogus, File: &event.File{Path: "/w/x", Mode: event.ModeRead}}), time.Second)
	if hf.RootExecID != root.ExecID || hf.Role != event.RoleTool || hf.ToolUse == nil || hf.ToolUse.ID != "toolu_N" {
		t.Fatalf("helper file %+v", hf)
	}
	w.env[403] = map[string]string{"HOME": w.home, "CLAUDE_CODE_SESSION_ID": sessUUID} // inherited from the parent: must not be used
	inner := w.proc(403, 401, w.exe, "claude", "-p", "inner")
	// As the engine calls it: a new session root gets no ParentAgent.
	ia := resolve(t, w.in.Exec(agent.Exec{Proc: inner, Parent: tool, Env: w.envOf(inner.PID)}), time.Second)
	if ia.Role != event.RoleRoot || ia.RootExecID != inner.ExecID || ia.ParentRootExecID != root.ExecID || ia.SessionID != "" || ia.ToolUse != nil {
		t.Fatalf("nested %+v", ia)
	}
	// The nested agent's startup helper inherits the outer session's
	// variables (no CLAUDE_PID of its own): they must not name its session.
	w.env[404] = map[string]string{"CLAUDE_CODE_SESSION_ID": sessUUID, "CLAUDE_PID": "400", "AI_AGENT": "claude-code_2-1-332_harness"}
	ha := resolve(t, w.exec(w.proc(404, 403, "/bin/bash", "/bin/bash", "-c", "env"), inner, ia), 20*time.Millisecond)
	if ha.SessionID != "" || ha.RootExecID != inner.ExecID || ha.Role != event.RoleDescendant {
		t.Fatalf("nested helper took the outer session: %+v", ha)
	}
}

// A daemonized child of a tool call (double fork + setsid, adopted by pid
// 1) stays in the session with its tool call, as a descendant.
func TestDaemonizedChild(t *testing.T) {
	w := newWorld(t)
	root, ra := w.root(500, "-p", "x")
	w.append(toolUse("toolu_D", "Bash", `{"command":"daemon"}`))
	w.in.File(agent.File{Proc: root, Agent: ra, File: &event.File{Path: w.tpath, Mode: event.ModeWrite}})
	tool := w.proc(501, 500, "/bin/bash", toolArgv("daemon")...)
	ta := resolve(t, w.exec(tool, root, ra), time.Second)
	sh := w.proc(502, 501, "/bin/sh", "sh", "-c", "sleep 1; exec sh -c 'echo x > f'")
	sa := resolve(t, w.exec(sh, tool, ta), time.Second)
	if sa.Role != event.RoleTool {
		t.Fatalf("not yet detached %+v", sa)
	}
	prev := *sh
	again := w.proc(502, 1, "/bin/sh", "sh", "-c", "echo x > f")
	da := resolve(t, w.exec(again, &prev, sa), time.Second)
	if da.Role != event.RoleDescendant || da.ToolUse == nil || da.ToolUse.ID != "toolu_D" || da.RootExecID != root.ExecID {
		t.Fatalf("daemon %+v", da)
	}
	fa := resolve(t, w.in.File(agent.File{Proc: again, Agent: da, File: &event.File{Path: "/tmp/f", Mode: event.ModeWrite}}), time.Second)
	if fa.Role != event.RoleDescendant || fa.ToolUse.ID != "toolu_D" {
		t.Fatalf("daemon file %+v", fa)
	}
	w.in.Exit(root)
	// After the root exited the session is still known to late events.
	if a := resolve(t, w.exec(w.proc(503, 1, "/usr/bin/true", "true"), again, da), time.Second); a.SessionID != sessUUID {
		t.Fatalf("after root exit %+v", a)
	}
}

// Outside any session nothing is attributed.
func TestOutsideSession(t *testing.T) {
	w := newWorld(t)
	r := w.exec(w.proc(600, 1, "/bin/bash", toolArgv("ls")...), nil, nil)
	if r.Agent != nil || r.Resolve != nil {
		t.Fatalf("attributed outside a session: %+v", r.Agent)
	}
	if r := w.in.File(agent.File{Proc: w.proc(600, 1, "/bin/cat"), File: &event.File{Path: w.tpath}}); r.Agent != nil {
		t.Fatal("file attributed outside a session")
	}
}

func TestEvictsEndedSessions(t *testing.T) {
	w := newWorld(t)
	w.use(New(Config{MaxSessions: 2, ProcRoot: w.procRoot}, nil))
	var roots []*event.Process
	for i := uint32(0); i < 3; i++ {
		p, _ := w.root(800+i, "-p", "x")
		roots = append(roots, p)
		if i == 0 {
			w.in.Exit(p)
		}
	}
	if st := w.obs.Stats(); st.Sessions != 2 {
		t.Fatalf("sessions %d", st.Sessions)
	}
	w.obs.mu.Lock()
	_, first := w.obs.sessions.Get(roots[0].ExecID)
	_, last := w.obs.sessions.Get(roots[2].ExecID)
	w.obs.mu.Unlock()
	if first || !last {
		t.Errorf("evicted the wrong session: first kept %v, last kept %v", first, last)
	}
}

// CLAUDE_CONFIG_DIR moves ~/.claude: the transcript is found there.
func TestConfigDir(t *testing.T) {
	w := newWorld(t)
	cfg := filepath.Join(w.home, "elsewhere")
	tdir := filepath.Join(cfg, "projects", "-w")
	os.MkdirAll(tdir, 0o700)
	os.WriteFile(filepath.Join(tdir, sessUUID+".jsonl"), []byte(toolUse("toolu_C", "Bash", `{"command":"ls"}`)+"\n"), 0o600)
	root := w.proc(970, 1, w.exe, "/usr/bin/claude", "-p", "x")
	tool := w.proc(971, 970, "/usr/bin/bash", toolArgv("ls")...)
	def := &event.Agent{Name: "claude-code", RootExecID: root.ExecID, Role: event.RoleDescendant}
	w.env[972] = map[string]string{"HOME": w.home, "CLAUDE_CONFIG_DIR": cfg, "CLAUDE_CODE_SESSION_ID": sessUUID, "CLAUDE_PID": "970"}
	a := resolve(t, w.exec(w.proc(972, 971, "/usr/bin/ls", "ls"), tool, def), time.Second)
	if a.SessionID != sessUUID || a.ToolUse == nil || a.ToolUse.ID != "toolu_C" {
		t.Fatalf("%+v %+v", a, a.ToolUse)
	}
}

// BenchmarkExecDescendant is the observer's cost on the event path for an
// ordinary exec inside a session (a build run by a tool call).
func BenchmarkExecDescendant(b *testing.B) {
	w := newWorld(b)
	root, ra := w.root(100, "-p", "x")
	tool := w.proc(101, 100, "/bin/bash", toolArgv("make")...)
	ta := w.exec(tool, root, ra).Agent
	parent := w.proc(102, 101, "/usr/bin/make", "make", "-j4")
	pa := *ta
	pa.ToolUse = &event.ToolUse{ID: "toolu_x", Name: "Bash"}
	p := w.proc(103, 102, "/usr/bin/cc", "cc", "-O2", "-c", "file.c", "-o", "file.o")
	x := agent.Exec{Proc: p, Parent: parent, ParentAgent: &pa, Env: w.envOf(103)}
	b.ReportAllocs()
	for b.Loop() {
		_ = w.in.Exec(x)
	}
}
