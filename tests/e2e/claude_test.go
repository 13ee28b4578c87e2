package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/tests/fakeapi"
	"github.com/lineaged/lineaged/tests/testutil"
)

// session is one Claude Code run of the test.
type session struct {
	name, home, work string
	// wrap, when set, runs Claude Code through this command line (the
	// agent's argv is appended).
	wrap       []string
	cmd        *exec.Cmd
	done       chan error
	uuid       string
	rootExecID string
}

func newSession(t *testing.T, base, name string) *session {
	s := &session{name: name, home: filepath.Join(base, name, "home"), work: filepath.Join(base, name, "work")}
	for _, d := range []string{s.home, s.work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *session) start(t *testing.T, claude, apiURL, apiKey, prompt string, args ...string) {
	t.Helper()
	argv := append([]string{"-p", prompt, "--dangerously-skip-permissions"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	argv = append([]string{claude}, argv...)
	if len(s.wrap) > 0 {
		argv = append(append([]string(nil), s.wrap...), argv...)
	}
	s.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	s.cmd.Dir = s.work
	s.cmd.Env = claudeEnv(s.home, apiURL, apiKey)
	out, err := os.Create(filepath.Join(s.home, "claude.out"))
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait(); out.Close() }()
}

func (s *session) wait(t *testing.T, firstTool string) {
	t.Helper()
	if err := <-s.done; err != nil {
		b, _ := os.ReadFile(filepath.Join(s.home, "claude.out"))
		t.Fatalf("claude (%s) failed: %v\n%s", s.name, err, b)
	}
	s.uuid = transcriptWith(t, s.home, firstTool)
}

func (s *session) pid() uint32 { return uint32(s.cmd.Process.Pid) }

// waitProc polls /proc until a process whose cmdline holds all of parts
// exists (readiness of a workload started outside the sensor).
func waitProc(t *testing.T, d time.Duration, parts ...string) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue
			}
			ok := true
			for _, p := range parts {
				if !strings.Contains(string(b), p) {
					ok = false
					break
				}
			}
			if ok {
				var pid int
				fmt.Sscan(e.Name(), &pid)
				return pid
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no process with %q after %v", parts, d)
	return 0
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestClaudeCode runs the real Claude Code under the real sensor: one
// session already running when the sensor starts, one full session (Bash
// with files and a TCP connect, Read, Write, a daemonized child, a stdio MCP
// server, a hook), and the same actions outside any agent.
func TestClaudeCode(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	claude := installClaude(t)
	tmp := t.TempDir()
	lineaged := goBuild(t, tmp, "./cmd/lineaged", "lineaged")
	mcpBin := goBuild(t, tmp, "./tests/e2e/mcpserver", "mcpserver")
	sink := newTCPSink(t)
	nonce := fmt.Sprint(time.Now().UnixNano())
	apiKey := "sk-ant-e2e-" + nonce
	secretTok := "e2etok" + nonce

	toolID := fakeapi.ToolUseID
	main := newSession(t, tmp, "main")
	pre := newSession(t, tmp, "pre")
	outside := filepath.Join(tmp, "outside")
	os.MkdirAll(outside, 0o700)

	in := filepath.Join(main.work, "in.txt")
	writeFile(t, in, "input for the Bash and Read tools\n")
	bashOut := filepath.Join(main.work, "bash-out.txt")
	written := filepath.Join(main.work, "written.txt")
	daemonOut := filepath.Join(main.work, "daemon.txt")
	mcpOut := filepath.Join(main.work, "mcp.txt")
	hookLog := filepath.Join(main.work, "hook.log")
	preIn := filepath.Join(pre.work, "in.txt")
	writeFile(t, preIn, "input of the session that was already running\n")
	late := filepath.Join(pre.work, "late.txt")
	gate := filepath.Join(pre.work, "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// On failure, release a tool call still blocked on the gate.
		if f, err := os.OpenFile(gate, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.WriteString("go\n")
			f.Close()
		}
	})
	outIn := filepath.Join(outside, "in.txt")
	writeFile(t, outIn, "outside input\n")

	bashCmd := fmt.Sprintf("sha256sum %s > %s && cat %s && (exec 3<>/dev/tcp/127.0.0.1/%d; echo ping >&3) && echo --token=%s > /dev/null",
		in, bashOut, in, sink.port(), secretTok)
	// Double fork + setsid: the subshell starts the daemon and exits; the
	// daemon waits until it is orphaned, then execs the image that writes.
	daemonCmd := fmt.Sprintf(`(p=$BASHPID; setsid sh -c 'while kill -0 $0 2>/dev/null; do sleep 0.05; done; exec sh -c "echo daemon > %s"' $p > /dev/null 2>&1 &)`, daemonOut)
	nestedIn := filepath.Join(main.work, "nested-in.txt")
	writeFile(t, nestedIn, "read by the nested agent\n")
	nestedCmd := fmt.Sprintf("%s -p e2e-nested-%s --dangerously-skip-permissions", claude, nonce)
	preCmd := fmt.Sprintf("read -r _ < %s; cat %s > %s", gate, preIn, late)
	scripts := []fakeapi.Script{
		{Name: "main", Match: "e2e-main-" + nonce, Turns: []fakeapi.Turn{
			{Tool: "Bash", Input: map[string]any{"command": bashCmd, "description": "files and a connection"}},
			{Tool: "Read", Input: map[string]any{"file_path": in}},
			{Tool: "Write", Input: map[string]any{"file_path": written, "content": "written by the Write tool\n"}},
			{Tool: "Bash", Input: map[string]any{"command": daemonCmd, "description": "leave a daemon"}},
			{Tool: "mcp__lin__probe", Input: map[string]any{"path": mcpOut, "text": "from the MCP server"}},
			{Tool: "Bash", Input: map[string]any{"command": nestedCmd, "description": "a nested agent"}},
			{Text: "done"},
		}},
		{Name: "nested", Match: "e2e-nested-" + nonce, Turns: []fakeapi.Turn{
			{Tool: "Bash", Input: map[string]any{"command": "cat " + nestedIn, "description": "inner work"}},
			{Text: "inner done"},
		}},
		{Name: "pre", Match: "e2e-pre-" + nonce, Turns: []fakeapi.Turn{
			{Tool: "Bash", Input: map[string]any{"command": preCmd, "description": "wait for the gate"}},
			{Text: "done"},
		}},
	}
	api, err := fakeapi.Start(scripts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()

	mcpCfg := filepath.Join(main.work, "mcp.json")
	b, _ := json.Marshal(map[string]any{"mcpServers": map[string]any{"lin": map[string]any{"type": "stdio", "command": mcpBin, "args": []string{"--e2e"}}}})
	writeFile(t, mcpCfg, string(b))
	settings, _ := json.Marshal(map[string]any{"hooks": map[string]any{"PreToolUse": []any{map[string]any{
		"matcher": "Read", "hooks": []any{map[string]any{"type": "command", "command": "echo hook >> " + hookLog}}}}}})

	// 1. A session already running when the sensor starts: its Bash tool
	// call blocks on the gate.
	pre.start(t, claude, api.URL(), apiKey, "e2e-pre-"+nonce)
	preTool := waitProc(t, 90*time.Second, "eval", gate)
	t.Logf("session already running: claude pid %d, tool pid %d", pre.pid(), preTool)

	// 2. The sensor.
	out := filepath.Join(tmp, "events.jsonl")
	// --scope all: processes outside any session are reported too, so the
	// outside workload's events exist and must carry no attribution.
	sens := startSensor(t, lineaged, out, "--scope", "all")

	// 3. A full session under the sensor.
	main.start(t, claude, api.URL(), apiKey, "e2e-main-"+nonce, "--mcp-config", mcpCfg, "--settings", string(settings))
	main.wait(t, toolID("main", 0))
	for _, p := range []string{bashOut, written, mcpOut, hookLog} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the session did not do its work: %v", err)
		}
	}

	// 4. The same actions outside any agent.
	outCmd := exec.Command("bash", "-c", fmt.Sprintf("sha256sum %s > %s && cat %s && (exec 3<>/dev/tcp/127.0.0.1/%d; echo ping >&3)",
		outIn, filepath.Join(outside, "out.txt"), outIn, sink.port()))
	if b, err := outCmd.CombinedOutput(); err != nil {
		t.Fatalf("outside workload: %v\n%s", err, b)
	}
	outPID := uint32(outCmd.Process.Pid)

	// 5. Release the session that was already running.
	g, err := os.OpenFile(gate, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteString("go\n")
	g.Close()
	pre.wait(t, toolID("pre", 0))

	// 6. Markers: both roots' exits and the daemon's write.
	waitFile(t, daemonOut, 60*time.Second)
	evs := sens.waitFor(t, 90*time.Second, "exits of both sessions and the daemon's write", func(evs []*event.Event) bool {
		var m, p, d bool
		for _, e := range evs {
			switch {
			case e.Kind == event.KindProcessExit && e.Process != nil && e.Process.PID == main.pid():
				m = true
			case e.Kind == event.KindProcessExit && e.Process != nil && e.Process.PID == pre.pid():
				p = true
			case e.File != nil && e.File.Path == daemonOut:
				d = true
			}
		}
		return m && p && d
	})
	sens.stop(t)
	evs = sens.events(t)
	t.Cleanup(func() {
		if t.Failed() {
			keep := filepath.Join(os.TempDir(), "lineaged-e2e-events-"+nonce+".jsonl")
			if b, err := os.ReadFile(out); err == nil && os.WriteFile(keep, b, 0o600) == nil {
				t.Logf("events kept in %s", keep)
			}
		}
	})
	t.Logf("%d events; %d connections accepted", len(evs), sink.accepted())
	h := &hasher{}
	idx := indexHashes(evs)

	main.rootExecID = rootExec(t, evs, main.pid())

	t.Run("root", func(t *testing.T) {
		e := find(t, evs, "exec of the claude root", func(e *event.Event) bool {
			return e.Kind == event.KindProcessExec && e.Process.PID == main.pid()
		})
		// The root's exec comes before anything names the session (the
		// transcript is first opened ~1.5s later): root_exec_id only.
		if e.Agent != nil && e.Agent.SessionID == "" {
			sess := *main
			sess.uuid = ""
			checkAgent(t, e, &sess, event.RoleRoot, "")
		} else {
			checkAgent(t, e, main, event.RoleRoot, "")
		}
		if e.Agent != nil && e.Agent.ParentRootExecID != "" {
			t.Errorf("root linked to a parent session %q", e.Agent.ParentRootExecID)
		}
		// Hashing the 400 MB binary may outlast the enrichment deadline of
		// this first event: checkAncestry then wants it in a later event.
		if bin := e.Process.Binary; bin == nil || bin.Path != claude {
			t.Errorf("claude binary %+v, want %s", bin, claude)
		}
		checkAncestry(t, e, "", h, idx)
		// Events the agent integration is not asked about (exit,
		// connections) still carry the session's id once it is known.
		x := find(t, evs, "exit of the claude root", func(e *event.Event) bool {
			return e.Kind == event.KindProcessExit && e.Process.PID == main.pid()
		})
		checkAgent(t, x, main, event.RoleRoot, "")
		// From the root's first open of its transcript, the event that
		// names the session to the observer, on.
		known := false
		for _, e := range evs {
			if e.Process == nil || e.Process.PID != main.pid() || e.Agent == nil {
				continue
			}
			known = known || e.Kind == event.KindFileOpen && strings.HasSuffix(e.File.Path, "/"+main.uuid+".jsonl")
			if known && e.Kind == event.KindNetConnect && e.Agent.SessionID != main.uuid {
				t.Errorf("a connection of the root after it opened its transcript: %s", describe(e))
			}
		}
	})

	t.Run("bash-tool", func(t *testing.T) {
		id := toolID("main", 0)
		tool := find(t, evs, "exec of the Bash tool process", func(e *event.Event) bool {
			return e.Kind == event.KindProcessExec && e.Process.PPID == main.pid() && argvHas(e.Process, bashOut) && argvHas(e.Process, "eval")
		})
		checkAgent(t, tool, main, event.RoleTool, id)
		checkAncestry(t, tool, main.rootExecID, h, idx)
		for _, c := range []struct {
			what string
			pred func(e *event.Event) bool
		}{
			{"exec of sha256sum", func(e *event.Event) bool {
				return e.Kind == event.KindProcessExec && filepath.Base(e.Process.Exe) == "sha256sum" && argvHas(e.Process, in)
			}},
			{"read of in.txt by sha256sum", func(e *event.Event) bool {
				return e.Kind == event.KindFileOpen && e.File.Path == in && filepath.Base(e.Process.Exe) == "sha256sum"
			}},
			{"write of bash-out.txt", func(e *event.Event) bool {
				return e.Kind == event.KindFileOpen && e.File.Path == bashOut && e.File.Mode != event.ModeRead
			}},
			{"exec of cat", func(e *event.Event) bool {
				return e.Kind == event.KindProcessExec && filepath.Base(e.Process.Exe) == "cat" && argvHas(e.Process, in)
			}},
			{"TCP connect to the test's listener", func(e *event.Event) bool {
				return e.Kind == event.KindNetConnect && e.Net.DstPort == uint16(sink.port()) && e.Net.DstIP == "127.0.0.1"
			}},
		} {
			e := find(t, evs, c.what, c.pred)
			checkAgent(t, e, main, event.RoleTool, id)
			checkAncestry(t, e, main.rootExecID, h, idx)
		}
	})

	t.Run("read-write-tools", func(t *testing.T) {
		// The agent opens in.txt O_PATH many times (vetting the Bash
		// command's paths, stat-ing for Read); the Read tool's read is the
		// one real open.
		r := find(t, evs, "the Read tool's open of in.txt", func(e *event.Event) bool {
			return e.Kind == event.KindFileOpen && e.File.Path == in && e.Process.PID == main.pid() && e.File.Flags&unix.O_PATH == 0
		})
		checkAgent(t, r, main, event.RoleRoot, toolID("main", 1))
		checkAncestry(t, r, "", h, idx)
		w := find(t, evs, "the Write tool's temporary file", func(e *event.Event) bool {
			return e.Kind == event.KindFileOpen && e.Process.PID == main.pid() && strings.HasPrefix(e.File.Path, written+".tmp.") && e.File.Created
		})
		checkAgent(t, w, main, event.RoleRoot, toolID("main", 2))
	})

	t.Run("hook", func(t *testing.T) {
		e := find(t, evs, "the hook's write of hook.log", func(e *event.Event) bool {
			return e.Kind == event.KindFileOpen && e.File.Path == hookLog
		})
		checkAgent(t, e, main, event.RoleHook, "")
		checkAncestry(t, e, main.rootExecID, h, idx)
	})

	t.Run("mcp-server", func(t *testing.T) {
		x := find(t, evs, "exec of the MCP server", func(e *event.Event) bool {
			return e.Kind == event.KindProcessExec && e.Process.Exe == mcpBin
		})
		checkAgent(t, x, main, event.RoleMCPServer, "")
		checkAncestry(t, x, main.rootExecID, h, idx)
		w := find(t, evs, "the MCP server's write", func(e *event.Event) bool {
			return e.Kind == event.KindFileOpen && e.File.Path == mcpOut
		})
		checkAgent(t, w, main, event.RoleMCPServer, "")
	})

	t.Run("daemonized-child", func(t *testing.T) {
		e := find(t, evs, "the daemon's write", func(e *event.Event) bool {
			return e.Kind == event.KindFileOpen && e.File.Path == daemonOut
		})
		checkAgent(t, e, main, event.RoleDescendant, toolID("main", 3))
		checkAncestry(t, e, main.rootExecID, h, idx)
	})

	t.Run("already-running", func(t *testing.T) {
		e := find(t, evs, "the gated tool call's read", func(e *event.Event) bool {
			return e.Kind == event.KindFileOpen && e.File.Path == preIn
		})
		pre.rootExecID = ancestorExecID(t, e, pre.pid())
		checkAgent(t, e, pre, event.RoleTool, toolID("pre", 0))
		checkAncestry(t, e, pre.rootExecID, h, idx)
		wr := find(t, evs, "the gated tool call's write", func(e *event.Event) bool {
			return e.Kind == event.KindFileOpen && e.File.Path == late
		})
		checkAgent(t, wr, pre, event.RoleTool, toolID("pre", 0))
		// The tool process itself, never seen exec, is bound to its call
		// by its own file events (its last: the cwd file Claude Code
		// has it write): its exit says so too.
		ex := find(t, evs, "the gated tool process's exit", func(e *event.Event) bool {
			return e.Kind == event.KindProcessExit && e.Process.PID == uint32(preTool)
		})
		checkAgent(t, ex, pre, event.RoleTool, toolID("pre", 0))
		// The seed read the session's id from its tool process: every
		// event of it under the sensor carries it, the root's own polling
		// before its next transcript append too.
		n, bad := 0, 0
		for _, e := range evs {
			if e.Agent == nil || e.Agent.RootExecID != pre.rootExecID {
				continue
			}
			n++
			if e.Agent.SessionID != pre.uuid || e.Agent.SessionIDHint {
				if bad++; bad <= 3 {
					t.Errorf("session_id %q (hint %v), want %q: %s", e.Agent.SessionID, e.Agent.SessionIDHint, pre.uuid, describe(e))
				}
			}
		}
		if bad > 0 || n < 10 {
			t.Errorf("%d of %d events of the session already running without its id", bad, n)
		}
	})

	t.Run("nested-agent", func(t *testing.T) {
		x := find(t, evs, "exec of the nested claude", func(e *event.Event) bool {
			return e.Kind == event.KindProcessExec && e.Process.Exe == claude && argvHas(e.Process, "--dangerously-skip-permissions") && e.Process.PID != main.pid() && e.Process.PID != pre.pid()
		})
		nested := &session{name: "nested", uuid: transcriptWith(t, main.home, toolID("nested", 0)), rootExecID: x.Process.ExecID}
		a := x.Agent
		if a == nil || a.Role != event.RoleRoot || a.RootExecID != x.Process.ExecID || a.ParentRootExecID != main.rootExecID {
			t.Fatalf("nested root %s, want its own session linked to %s", describe(x), main.rootExecID)
		}
		checkAncestry(t, x, main.rootExecID, h, idx)
		// (The nested agent itself also opens the file, O_PATH, when it
		// vets the command's paths: that open is its root's.)
		r := find(t, evs, "the nested agent's tool reading its input", func(e *event.Event) bool {
			return e.Kind == event.KindFileOpen && e.File.Path == nestedIn && filepath.Base(e.Process.Exe) == "cat"
		})
		checkAgent(t, r, nested, event.RoleTool, toolID("nested", 0))
		checkAncestry(t, r, nested.rootExecID, h, idx)
	})

	t.Run("outside-not-attributed", func(t *testing.T) {
		n := 0
		for _, e := range evs {
			if e.Process == nil {
				continue
			}
			mine := e.Process.PID == outPID || argvHas(e.Process, outIn) || (e.File != nil && strings.HasPrefix(e.File.Path, outside))
			if !mine {
				continue
			}
			n++
			if e.Agent != nil {
				t.Errorf("outside event attributed: %s", describe(e))
			}
		}
		if n == 0 {
			t.Errorf("the outside workload (pid %d) was not reported at all under --scope all", outPID)
		}
		if sink.accepted() < 2 {
			t.Errorf("the listener saw %d connections, want the session's and the outside one", sink.accepted())
		}
		t.Logf("%d outside events reported, none attributed", n)
	})

	t.Run("no-secrets-no-prompt-no-env", func(t *testing.T) {
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		for what, s := range map[string]string{
			"API key (environment)": apiKey,
			"--token value":         secretTok,
			"prompt text":           "e2e-main-" + nonce,
			"environment variable":  "CLAUDE_CODE_SESSION_ID=",
		} {
			if strings.Contains(string(raw), s) {
				t.Errorf("output contains the %s %q", what, s)
			}
		}
	})
}

func waitFile(t *testing.T, p string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func argvHas(p *event.Process, s string) bool {
	if p == nil {
		return false
	}
	for _, a := range p.Argv {
		if strings.Contains(a, s) {
			return true
		}
	}
	return false
}

func find(t *testing.T, evs []*event.Event, what string, pred func(*event.Event) bool) *event.Event {
	t.Helper()
	for _, e := range evs {
		if e.Process != nil && pred(e) {
			return e
		}
	}
	t.Fatalf("no event: %s", what)
	return nil
}

// rootExec is the exec_id of the session root with pid.
func rootExec(t *testing.T, evs []*event.Event, pid uint32) string {
	t.Helper()
	for _, e := range evs {
		if e.Kind == event.KindProcessExec && e.Process != nil && e.Process.PID == pid && e.Agent != nil && e.Agent.Role == event.RoleRoot {
			return e.Process.ExecID
		}
	}
	t.Fatalf("no root exec event for pid %d", pid)
	return ""
}

// ancestorExecID is the exec_id of the ancestor of e with pid.
func ancestorExecID(t *testing.T, e *event.Event, pid uint32) string {
	t.Helper()
	for _, a := range e.Ancestry {
		if a.PID == pid {
			return a.ExecID
		}
	}
	t.Fatalf("pid %d not in the ancestry of %s", pid, describe(e))
	return ""
}

func checkAgent(t *testing.T, e *event.Event, s *session, role, toolUse string) {
	t.Helper()
	a := e.Agent
	if a == nil {
		t.Errorf("not attributed: %s", describe(e))
		return
	}
	if a.Name != "claude-code" || a.Version != ClaudeVersion {
		t.Errorf("agent %q %q, want claude-code %s: %s", a.Name, a.Version, ClaudeVersion, describe(e))
	}
	if a.SessionID != s.uuid {
		t.Errorf("session_id %q, want %q: %s", a.SessionID, s.uuid, describe(e))
	}
	if a.RootExecID != s.rootExecID {
		t.Errorf("root_exec_id %q, want %q: %s", a.RootExecID, s.rootExecID, describe(e))
	}
	if a.Role != role {
		t.Errorf("role %q, want %q: %s", a.Role, role, describe(e))
	}
	switch {
	case toolUse == "" && a.ToolUse != nil && a.ToolUse.ID != "":
		t.Errorf("tool_use %+v, want none: %s", a.ToolUse, describe(e))
	case toolUse != "" && (a.ToolUse == nil || a.ToolUse.ID != toolUse):
		t.Errorf("tool_use %+v, want %s: %s", a.ToolUse, toolUse, describe(e))
	}
}

// checkAncestry: parent first, ending at pid 1, through the session root
// (when root is set), every binary hash equal to what the test computes.
// hashIndex maps exec_id to the first SHA-256 any event reports for it,
// and to the path its binary was hashed from, from the whole process
// objects (a compact ancestor, the default, names its binary by sha256 and
// verdict only).
type hashIndex struct {
	sum, path map[string]string
}

func indexHashes(evs []*event.Event) hashIndex {
	idx := hashIndex{sum: map[string]string{}, path: map[string]string{}}
	add := func(p *event.Process) {
		if p != nil && p.Binary != nil && p.Binary.SHA256 != "" && idx.sum[p.ExecID] == "" {
			idx.sum[p.ExecID] = p.Binary.SHA256
		}
		if p != nil && p.Binary != nil && p.Binary.Path != "" && idx.path[p.ExecID] == "" {
			idx.path[p.ExecID] = p.Binary.Path
		}
	}
	for _, e := range evs {
		add(e.Process)
		for i := range e.Ancestry {
			add(&e.Ancestry[i])
		}
	}
	return idx
}

func checkAncestry(t *testing.T, e *event.Event, root string, h *hasher, idx hashIndex) {
	t.Helper()
	if len(e.Ancestry) == 0 || e.Ancestry[len(e.Ancestry)-1].PID != 1 {
		t.Errorf("ancestry does not end at pid 1: %s", describe(e))
	}
	if e.Process.PPID != 0 && len(e.Ancestry) > 0 && e.Ancestry[0].PID != e.Process.PPID && e.Ancestry[0].PID != e.Process.PID && e.Process.CurrentParentExecID == "" {
		t.Errorf("first ancestor pid %d is neither the parent %d nor the previous image", e.Ancestry[0].PID, e.Process.PPID)
	}
	if root != "" {
		found := false
		for _, a := range e.Ancestry {
			found = found || a.ExecID == root
		}
		if !found {
			t.Errorf("session root %s not in the ancestry: %s", root, describe(e))
		}
	}
	procs := append([]event.Process{*e.Process}, e.Ancestry...)
	for i, p := range procs {
		// A compact ancestor (the default) names its binary by sha256 and
		// verdict only (an error has no reason): its file is the one its
		// own process.exec hashed or, for an ancestor older than the
		// sensor, its live /proc/PID/exe.
		compact := i > 0 && p.Binary != nil && p.Binary.Path == ""
		if compact {
			b := *p.Binary
			b.Path = idx.path[p.ExecID]
			if b.Path == "" {
				b.Path = fmt.Sprintf("/proc/%d/exe", p.PID)
				if _, err := os.Stat(b.Path); err != nil {
					continue // gone, and never seen whole: nothing to hash
				}
			}
			p.Binary = &b
		}
		if p.Binary == nil || p.Binary.SHA256 == "" {
			if p.Binary != nil && p.Binary.Verdict == event.VerdictError && (compact || strings.Contains(p.Binary.Reason, "did not finish")) {
				// Emitted before a cold hash finished (the engine's time
				// limit): a later event must carry it, and right.
				if sum, ok := idx.sum[p.ExecID]; !ok {
					t.Errorf("pid %d %s never hashed: %s", p.PID, p.Exe, p.Binary.Reason)
				} else if want := h.sum(t, p.Binary.Path); sum != want {
					t.Errorf("pid %d %s: sha256 %s, recomputed %s", p.PID, p.Binary.Path, sum, want)
				}
				continue
			}
			if _, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID)); p.PID == 1 && errors.Is(err, os.ErrPermission) {
				// Some hosts' init (a VM agent here) hides its executable
				// even from root: nothing can hash it.
				continue
			}
			t.Errorf("no hash for pid %d %s: %+v", p.PID, p.Exe, p.Binary)
			continue
		}
		if want := h.sum(t, p.Binary.Path); p.Binary.SHA256 != want {
			t.Errorf("pid %d %s: sha256 %s, recomputed %s", p.PID, p.Binary.Path, p.Binary.SHA256, want)
		}
	}
}
