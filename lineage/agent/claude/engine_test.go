package claude_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/agent/claude"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

type host struct{}

func (host) Host() (event.Host, error) {
	return event.Host{Hostname: "h", MachineID: "m", BootID: "b0", OS: "linux", Kernel: "6.18"}, nil
}

type boot struct{}

func (boot) BootTime() (time.Time, error) { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), nil }

type procs struct{ env map[uint32]map[string]string }

func (p procs) Proc(pid uint32) (*procfs.Proc, error) {
	return nil, fmt.Errorf("pid %d: %w", pid, procfs.ErrGone)
}

func (p procs) Cwd(pid uint32) (string, error) { return "/w", nil }

func (p procs) Env(pid uint32, key string) (string, bool, error) {
	v, ok := p.env[pid][key]
	return v, ok, nil
}

type bins struct{}

func (bins) Cached(r lineage.BinaryRequest) (*event.Binary, bool) {
	return &event.Binary{Path: r.Path, SHA256: "sha-" + r.Path, Verdict: event.VerdictUnsigned}, true
}

func (bins) Inspect(_ context.Context, r lineage.BinaryRequest) *event.Binary {
	b, _ := bins{}.Cached(r)
	return b
}

type users struct{}

func (users) UserName(uint32) (string, bool) { return "root", true }

// The observer plugged into the real lineage engine: a Claude Code session
// as the kernel reports it (exec of the root, its transcript opened, a Bash
// tool forked and exec'd, its child, its connect, a Read inside the agent),
// with the tool_use record landing in the transcript after the tool's exec.
func TestEngineAttribution(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	pkg := filepath.Join(dir, "nm", "@anthropic-ai", "claude-code")
	tdir := filepath.Join(home, ".claude", "projects", "-w")
	for _, d := range []string{filepath.Join(pkg, "bin"), tdir} {
		os.MkdirAll(d, 0o700)
	}
	os.WriteFile(filepath.Join(pkg, "package.json"), []byte(`{"name":"@anthropic-ai/claude-code","version":"2.1.332"}`), 0o600)
	exe := filepath.Join(pkg, "bin", "claude.exe")
	const uuid = "634a8a3c-632e-4930-9f55-11663681db9e"
	tpath := filepath.Join(tdir, uuid+".jsonl")
	os.WriteFile(tpath, []byte(`{"type":"queue-operation"}`+"\n"), 0o600)

	procRoot := filepath.Join(dir, "proc")
	os.MkdirAll(filepath.Join(procRoot, "100"), 0o700)
	os.Symlink("/", filepath.Join(procRoot, "100", "root"))
	obs := claude.New(claude.Config{PollInterval: time.Millisecond, FileWait: time.Second, ProcRoot: procRoot}, nil)
	eng, err := lineage.New(lineage.Config{EnrichWait: 3 * time.Second},
		lineage.Deps{Host: host{}, Boot: boot{}, Proc: procs{env: map[uint32]map[string]string{
			100: {"HOME": home},
			101: {"CLAUDE_CODE_SESSION_ID": uuid, "CLAUDE_PID": "100", "AI_AGENT": "claude-code_2-1-332_agent"},
		}}, Binaries: bins{}, Users: users{}, Observer: agent.NewRouter(agent.RouterConfig{Integrations: map[sensor.AgentKind]agent.Integration{sensor.AgentClaudeCode: obs}})}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	eng.Seed([]*procfs.Proc{{PID: 1, Key: sensor.ProcKey{PID: 1, StartNs: 1e7}, Exe: "/sbin/init", Argv: []string{"init"}}})

	k := func(pid uint32) sensor.ProcKey { return sensor.ProcKey{PID: pid, StartNs: uint64(pid) * 1e9} }
	sess := sensor.SessionRef{Root: k(100), Agent: sensor.AgentClaudeCode}
	var ts uint64 = 200e9
	hdr := func(kind sensor.Kind, pid uint32) sensor.Header {
		ts += 1e6
		return sensor.Header{Kind: kind, KtimeNs: ts, Proc: k(pid), Session: sess}
	}
	cmd := "cat in.txt && (exec 3<>/dev/tcp/127.0.0.1/9)"
	toolArgv := []string{"/bin/bash", "-c", "source /h/.claude/shell-snapshots/snapshot-bash-1-a.sh 2>/dev/null || true && eval '" + cmd + "' < /dev/null && pwd -P >| /tmp/claude-1-cwd"}
	wr := uint32(syscall.O_WRONLY | syscall.O_APPEND | syscall.O_CREAT)
	evs := []sensor.Event{
		{Header: hdr(sensor.KindFork, 100), Fork: &sensor.Fork{Parent: k(1)}},
		{Header: hdr(sensor.KindExec, 100), Exec: &sensor.Exec{Parent: k(1), Exe: exe, Argv: []string{"/usr/bin/claude", "-p", "x"}, Recognised: sensor.AgentClaudeCode}},
		{Header: hdr(sensor.KindOpen, 100), File: &sensor.File{Op: sensor.FileOpen, Path: tpath, Flags: wr}},
		{Header: hdr(sensor.KindFork, 101), Fork: &sensor.Fork{Parent: k(100)}},
		{Header: hdr(sensor.KindExec, 101), Exec: &sensor.Exec{Parent: k(100), Exe: "/usr/bin/bash", Argv: toolArgv}},
		{Header: hdr(sensor.KindFork, 102), Fork: &sensor.Fork{Parent: k(101)}},
		{Header: hdr(sensor.KindExec, 102), Exec: &sensor.Exec{Parent: k(101), Exe: "/usr/bin/cat", Argv: []string{"cat", "in.txt"}}},
		{Header: hdr(sensor.KindOpen, 102), File: &sensor.File{Op: sensor.FileOpen, Path: "/w/in.txt"}},
		{Header: hdr(sensor.KindConnect, 101), Connect: &sensor.Connect{Protocol: syscall.IPPROTO_TCP, Family: syscall.AF_INET}},
		{Header: hdr(sensor.KindOpen, 100), File: &sensor.File{Op: sensor.FileOpen, Path: "/w/in.txt"}},
	}
	in := make(chan sensor.Event, len(evs))
	for _, e := range evs {
		in <- e
	}
	close(in)
	go func() {
		// The tool_use records land after the tool's exec was read.
		time.Sleep(50 * time.Millisecond)
		f, _ := os.OpenFile(tpath, os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintf(f, `{"type":"assistant","message":{"content":[{"type":"tool_use","id":"toolu_B","name":"Bash","input":{"command":%q}}]}}`+"\n", cmd)
		fmt.Fprintf(f, `{"type":"assistant","message":{"content":[{"type":"tool_use","id":"toolu_R","name":"Read","input":{"file_path":"/w/in.txt"}}]}}`+"\n")
		f.Close()
	}()
	out := make(chan *event.Event, 64)
	if err := eng.Run(context.Background(), in, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []*event.Event
	for e := range out {
		got = append(got, e)
	}
	want := []struct {
		kind, exe, role, tool string
		session               bool
	}{
		{event.KindProcessExec, exe, event.RoleRoot, "", false},
		{event.KindFileOpen, exe, event.RoleRoot, "", true},
		{event.KindProcessExec, "/usr/bin/bash", event.RoleTool, "toolu_B", true},
		{event.KindProcessExec, "/usr/bin/cat", event.RoleTool, "toolu_B", true},
		{event.KindFileOpen, "/usr/bin/cat", event.RoleTool, "toolu_B", true},
		{event.KindNetConnect, "/usr/bin/bash", event.RoleTool, "toolu_B", true},
		{event.KindFileOpen, exe, event.RoleRoot, "toolu_R", true},
	}
	if len(got) != len(want) {
		for _, e := range got {
			t.Logf("%s %+v %+v", e.Kind, e.Process, e.Agent)
		}
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	rootID := got[0].Process.ExecID
	for i, w := range want {
		e := got[i]
		a := e.Agent
		if e.Kind != w.kind || e.Process.Exe != w.exe || a == nil {
			t.Fatalf("event %d: %s %s agent %+v, want %s %s", i, e.Kind, e.Process.Exe, a, w.kind, w.exe)
		}
		tool := ""
		if a.ToolUse != nil {
			tool = a.ToolUse.ID
		}
		if a.Role != w.role || tool != w.tool || a.RootExecID != rootID || a.Name != "claude-code" || a.Version != "2.1.332" || (a.SessionID == uuid) != w.session {
			t.Errorf("event %d (%s %s): agent %+v tool %q, want role %s tool %q session %v", i, e.Kind, e.Process.Exe, a, tool, w.role, w.tool, w.session)
		}
	}
}
