package claude

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// Sessions already running when the sensor started: the observer sees the
// root (seeded from /proc, no raw exec) and a tool process whose
// environment gives the UUID; the transcript is found by name.
func TestSeededSession(t *testing.T) {
	w := newWorld(t)
	w.append(toolUse("toolu_S", "Bash", `{"command":"sleep 30"}`))
	root, ra := w.root(700, "-p", "x")
	w.env[701] = map[string]string{"CLAUDE_CODE_SESSION_ID": sessUUID, "AI_AGENT": "claude-code_2-1-332_agent", "CLAUDE_PID": "700"}
	a := resolve(t, w.exec(w.proc(701, 700, "/bin/bash", toolArgv("sleep 30")...), root, ra), time.Second)
	if a.SessionID != sessUUID || a.ToolUse == nil || a.ToolUse.ID != "toolu_S" {
		t.Fatalf("seeded tool %+v %+v", a, a.ToolUse)
	}
}

// A session running before the sensor started: the observer never sees the
// root's or the tool's exec, only the engine's default attribution
// (descendant of the seeded root). A child the slow tool call starts is
// still tied to the tool call, with the session UUID from its environment.
func TestSeededSessionFromProc(t *testing.T) {
	w := newWorld(t)
	w.append(toolUse("toolu_P", "Bash", `{"command":"sleep 5; cat data"}`))
	root := w.proc(900, 1, w.exe, "/usr/bin/claude", "-p", "x")
	tool := w.proc(901, 900, "/usr/bin/bash", toolArgv("sleep 5; cat data")...)
	def := &event.Agent{Name: "claude-code", RootExecID: root.ExecID, Role: event.RoleDescendant}
	w.env[902] = map[string]string{"HOME": w.home, "CLAUDE_CODE_SESSION_ID": sessUUID, "AI_AGENT": "claude-code_2-1-332_agent", "CLAUDE_PID": "900"}
	cat := w.proc(902, 901, "/usr/bin/cat", "cat", "data")
	a := resolve(t, w.exec(cat, tool, def), time.Second)
	if a.Role != event.RoleTool || a.SessionID != sessUUID || a.ToolUse == nil || a.ToolUse.ID != "toolu_P" || a.RootExecID != root.ExecID {
		t.Fatalf("seeded tool child %+v %+v", a, a.ToolUse)
	}
	// The tool's own file event (a redirection) is tied too.
	f := resolve(t, w.in.File(agent.File{Proc: tool, Agent: def, File: &event.File{Path: "/tmp/x", Mode: event.ModeWrite}}), time.Second)
	if f.Role != event.RoleTool || f.ToolUse == nil || f.ToolUse.ID != "toolu_P" {
		t.Fatalf("seeded tool file %+v", f)
	}
	// A forked copy of the tool that opens a redirection before exec.
	fork := &event.Process{ExecID: "fork-903", ParentExecID: tool.ExecID, PID: 903, PPID: 901, Exe: tool.Exe, Argv: tool.Argv}
	ff := resolve(t, w.in.File(agent.File{Proc: fork, Agent: def, File: &event.File{Path: "/tmp/late", Mode: event.ModeWrite}}), time.Second)
	if ff.Role != event.RoleTool || ff.ToolUse == nil || ff.ToolUse.ID != "toolu_P" {
		t.Fatalf("seeded tool fork file %+v %+v", ff, ff.ToolUse)
	}
	// The root's next transcript append completes the session's root info.
	rootDef := &event.Agent{Name: "claude-code", RootExecID: root.ExecID, Role: event.RoleRoot}
	ra := resolve(t, w.in.File(agent.File{Proc: root, Agent: rootDef, File: &event.File{Path: w.tpath, Mode: event.ModeWrite}}), time.Second)
	if ra.SessionID != sessUUID || ra.Role != event.RoleRoot {
		t.Fatalf("seeded root %+v", ra)
	}
	if st := w.obs.Stats(); st.Sessions != 1 || st.ToolsBound != 1 {
		t.Errorf("stats %+v", st)
	}
}

// The order the kernel reports a seeded tool's `cat in > out`: the forked
// copy opens the redirection before it execs cat. Both share one binding,
// and the UUID, unknown at the open, comes from cat's environment.
func TestSeededToolForkBeforeExec(t *testing.T) {
	w := newWorld(t)
	w.append(toolUse("toolu_Q", "Bash", `{"command":"cat in > out"}`))
	root := w.proc(950, 1, w.exe, "/usr/bin/claude", "-p", "x")
	tool := w.proc(951, 950, "/usr/bin/bash", toolArgv("cat in > out")...)
	def := &event.Agent{Name: "claude-code", RootExecID: root.ExecID, Role: event.RoleDescendant}
	fork := &event.Process{ExecID: "fork-952", ParentExecID: tool.ExecID, PID: 952, PPID: 951, Exe: tool.Exe, Argv: tool.Argv}
	fr := w.in.File(agent.File{Proc: fork, Agent: def, File: &event.File{Path: "/w/out", Mode: event.ModeWrite}})
	w.env[952] = map[string]string{"HOME": w.home, "CLAUDE_CODE_SESSION_ID": sessUUID, "CLAUDE_PID": "950"}
	cat := w.proc(952, 951, "/usr/bin/cat", "cat", "in")
	cr := w.exec(cat, tool, def)
	for name, r := range map[string]agent.Result{"fork open": fr, "cat exec": cr} {
		a := resolve(t, r, time.Second)
		if a.Role != event.RoleTool || a.SessionID != sessUUID || a.ToolUse == nil || a.ToolUse.ID != "toolu_Q" {
			t.Errorf("%s: %+v %+v", name, a, a.ToolUse)
		}
	}
}

// fakeProcs is a /proc for the observer.
type fakeProcs struct {
	procs map[uint32]*procfs.Proc
	env   map[uint32]map[string]string
}

func (f fakeProcs) Proc(pid uint32) (*procfs.Proc, error) {
	if p, ok := f.procs[pid]; ok {
		return p, nil
	}
	return nil, procfs.ErrGone
}

func (f fakeProcs) Env(pid uint32, key string) (string, bool, error) {
	v, ok := f.env[pid][key]
	return v, ok, nil
}

// An MCP server and a hook running before the sensor started: their first
// events are file events; the root is read from /proc through their parent
// pid and its --mcp-config / --settings give their roles.
func TestSeededMCPAndHook(t *testing.T) {
	w := newWorld(t)
	mcp := filepath.Join(w.cwd, "mcp.json")
	os.WriteFile(mcp, []byte(`{"mcpServers":{"lin":{"command":"/opt/srv","args":["-x"]}}}`), 0o644)
	rootArgv := []string{"/usr/bin/claude", "--mcp-config", mcp, "--settings", `{"hooks":{"Stop":[{"hooks":[{"type":"command","command":"notify done"}]}]}}`, "-p", "x"}
	linkRoots(t, w.procRoot, 990)
	w.use(New(Config{PollInterval: time.Millisecond, ProcRoot: w.procRoot, Proc: fakeProcs{
		procs: map[uint32]*procfs.Proc{990: {PID: 990, Exe: w.exe, Argv: rootArgv, Cwd: w.cwd}},
		env:   map[uint32]map[string]string{990: {"HOME": w.home}},
	}}, nil))
	rootExec := "exec-990-root"
	def := &event.Agent{Name: "claude-code", RootExecID: rootExec, Role: event.RoleDescendant}
	srv := &event.Process{ExecID: "exec-991", ParentExecID: rootExec, PID: 991, PPID: 990, Exe: "/opt/srv", Argv: []string{"/opt/srv", "-x"}}
	if a := resolve(t, w.in.File(agent.File{Proc: srv, Agent: def, File: &event.File{Path: "/w/db", Mode: event.ModeWrite}}), time.Second); a.Role != event.RoleMCPServer || a.Version != "2.1.332" {
		t.Fatalf("seeded MCP server %+v", a)
	}
	hook := &event.Process{ExecID: "exec-992", ParentExecID: rootExec, PID: 992, PPID: 990, Exe: "/bin/sh", Argv: []string{"/bin/sh", "-c", "notify done"}}
	if a := resolve(t, w.in.File(agent.File{Proc: hook, Agent: def, File: &event.File{Path: "/w/log", Mode: event.ModeWrite}}), time.Second); a.Role != event.RoleHook {
		t.Fatalf("seeded hook %+v", a)
	}
	other := &event.Process{ExecID: "exec-993", ParentExecID: rootExec, PID: 993, PPID: 990, Exe: "/bin/true", Argv: []string{"true"}}
	if a := resolve(t, w.in.File(agent.File{Proc: other, Agent: def, File: &event.File{Path: "/w/x", Mode: event.ModeRead}}), time.Second); a.Role != event.RoleDescendant {
		t.Fatalf("seeded helper %+v", a)
	}
}

// A tool call blocked before the sensor started, released later on a busy
// host: by the time its events are attributed, the tool process and its
// child have exited and /proc has nothing to say. What the seed read while
// they ran names the session and, through the transcript, the call.
func TestSeededToolGoneBeforeItsEvents(t *testing.T) {
	w := newWorld(t)
	w.append(toolUse("toolu_G", "Bash", `{"command":"read -r _ < gate; cat in > late"}`))
	root := w.proc(960, 1, w.exe, "/usr/bin/claude", "-p", "x")
	tool := w.proc(961, 960, "/usr/bin/bash", toolArgv("read -r _ < gate; cat in > late")...)
	tool.ParentExecID = root.ExecID
	procs := fakeProcs{
		procs: map[uint32]*procfs.Proc{960: {PID: 960, Exe: w.exe, Argv: root.Argv, Cwd: w.cwd}, 961: {PID: 961, PPID: 960, Exe: tool.Exe, Argv: tool.Argv}},
		env: map[uint32]map[string]string{
			960: {"HOME": w.home},
			961: {"HOME": w.home, "CLAUDE_CODE_SESSION_ID": sessUUID, "CLAUDE_PID": "960", "AI_AGENT": "claude-code_2-1-332_agent"},
		},
	}
	w.use(New(Config{PollInterval: time.Millisecond, FileWait: 200 * time.Millisecond, ProcRoot: w.procRoot, Proc: procs}, nil))
	w.in.(agent.Seeder).Seeded([]agent.Seeded{{Proc: root, Parent: &event.Process{ExecID: "exec-1", PID: 1, Exe: "/sbin/init"}}, {Proc: tool, Parent: root}})
	// The gate opens; everything of the call exits before its events are read.
	clear(procs.procs)
	clear(procs.env)
	def := &event.Agent{Name: "claude-code", RootExecID: root.ExecID, Role: event.RoleDescendant}
	fork := &event.Process{ExecID: "fork-962", ParentExecID: tool.ExecID, PID: 962, PPID: 961, Exe: tool.Exe, Argv: tool.Argv}
	fr := w.in.File(agent.File{Proc: fork, Agent: def, File: &event.File{Path: "/w/late", Mode: event.ModeWrite}})
	cr := w.exec(w.proc(962, 961, "/usr/bin/cat", "cat", "in"), tool, def)
	rootDef := &event.Agent{Name: "claude-code", RootExecID: root.ExecID, Role: event.RoleRoot}
	rr := w.in.File(agent.File{Proc: root, Agent: rootDef, File: &event.File{Path: "/proc/960/statm", Mode: event.ModeRead}})
	for name, r := range map[string]agent.Result{"fork open": fr, "cat exec": cr} {
		a := resolve(t, r, time.Second)
		if a.Role != event.RoleTool || a.SessionID != sessUUID || a.SessionIDHint || a.ToolUse == nil || a.ToolUse.ID != "toolu_G" {
			t.Errorf("%s: %+v %+v", name, a, a.ToolUse)
		}
	}
	if a := resolve(t, rr, time.Second); a.SessionID != sessUUID || a.Role != event.RoleRoot {
		t.Errorf("the root's own event before its next transcript append: %+v", a)
	}
}
