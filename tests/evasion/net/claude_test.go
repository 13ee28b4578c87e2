//go:build linux && amd64

package net

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/tests/fakeapi"
	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

// TestClaudeCodeNetwork runs the real Claude Code under the real lineaged
// binary. One Bash tool call hands work to a "tmux server" by a relative
// AF_UNIX name (the socket file lives where tmux keeps its sockets), sends
// an unconnected UDP datagram and opens a listening port. The output
// carries each as a net.* event bound to the tool call, the AF_UNIX path
// resolved in the kernel, and the default rule agent-hands-off-work
// alerts on the hand-off.
func TestClaudeCodeNetwork(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	root := repoRoot()
	cache := os.Getenv("LINEAGED_E2E_CACHE")
	if cache == "" {
		cache = filepath.Join(root, "tests", "e2e", ".cache")
	}
	claude, err := testutil.InstallClaude(context.Background(), cache)
	if err != nil {
		t.Skipf("no Claude Code to run: %v", err)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("the tool call's workload needs python3")
	}
	tmp := t.TempDir()
	lineaged := filepath.Join(tmp, "lineaged")
	build := exec.Command("go", "build", "-o", lineaged, "./cmd/lineaged")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	nonce := fmt.Sprint(time.Now().UnixNano())

	// Where tmux keeps a server's socket: /tmp/tmux-<uid>/default. The uid
	// is one no user has, so no real server is disturbed.
	tmuxDir := fmt.Sprintf("/tmp/tmux-%d", 4_000_000_000+os.Getpid()%100_000)
	if err := os.Mkdir(tmuxDir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmuxDir) })
	sock := filepath.Join(tmuxDir, "default")
	listenUnix(t, sock)
	udp := listenInet(t, unix.SOCK_DGRAM)

	home, work := filepath.Join(tmp, "home"), filepath.Join(tmp, "work")
	for _, d := range []string{home, work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf(`import socket
s = socket.socket(socket.AF_UNIX); s.connect("default")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"x", ("127.0.0.1", %d))
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(5)`, udp.Port())
	scriptPath := filepath.Join(work, "net.py")
	if err := os.WriteFile(scriptPath, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	cmdline := fmt.Sprintf("cd %s && python3 %s", tmuxDir, scriptPath)
	scripts := []fakeapi.Script{{Name: "net", Match: "evasion-net-" + nonce, Turns: []fakeapi.Turn{
		{Tool: "Bash", Input: map[string]any{"command": cmdline, "description": "hand work to a server"}},
		{Text: "done"},
	}}}
	api, err := fakeapi.Start(scripts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	toolID := fakeapi.ToolUseID("net", 0)

	cfg := filepath.Join(tmp, "lineaged.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+filepath.Join(tmp, "state")+"\npolicy:\n  rules: "+filepath.Join(root, "deploy", "rules")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "events.jsonl")
	sens := exec.Command(lineaged, "run", "--output", out, "--config", cfg)
	sens.Env = append(os.Environ(), "LINEAGED_HASHING_CACHE_DIR="+filepath.Join(cache, "binid"))
	stderr := &testutil.SyncBuffer{}
	sens.Stderr = stderr
	if err := sens.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sens.Wait() }()
	stop := func() {
		if sens.ProcessState != nil {
			return
		}
		sens.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			sens.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	testutil.WaitOutputEvents(t, out, stderr, "sensor start", func(evs []*event.Event) bool {
		return has(evs, func(e *event.Event) bool { return e.Kind == event.KindSensorStart })
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	agent := exec.CommandContext(ctx, claude, "-p", "evasion-net-"+nonce, "--dangerously-skip-permissions")
	agent.Dir = work
	agent.Env = testutil.ClaudeEnv(home, api.URL(), "sk-ant-evasion-"+nonce)
	if b, err := agent.CombinedOutput(); err != nil {
		t.Fatalf("claude: %v\n%s", err, b)
	}
	inTool := func(e *event.Event) bool {
		return e.Agent != nil && e.Agent.ToolUse != nil && e.Agent.ToolUse.ID == toolID && e.Net != nil
	}
	evs := testutil.WaitOutputEvents(t, out, stderr, "the tool call's network events and the alert", func(evs []*event.Event) bool {
		return has(evs, func(e *event.Event) bool { return e.Kind == event.KindNetListen && inTool(e) }) &&
			has(evs, func(e *event.Event) bool {
				return e.Kind == event.KindPolicyAlert && e.Alert != nil && e.Alert.Rule == "agent-hands-off-work"
			})
	})
	stop()

	var conn, send, listen *event.Event
	for _, e := range evs {
		if !inTool(e) {
			continue
		}
		switch {
		case e.Kind == event.KindNetConnect && e.Net.Family == "unix":
			conn = e
		case e.Kind == event.KindNetSend:
			send = e
		case e.Kind == event.KindNetListen:
			listen = e
		}
	}
	if conn == nil || conn.Net.UnixPath != sock || conn.Net.UnixPathAsGiven || conn.Net.DstSource != "socket" || conn.Net.Result != 0 {
		t.Errorf("AF_UNIX connect of the tool call: %s, want unix_path %s from the socket", brief(conn), sock)
	}
	if send == nil || send.Net.DstIP != "127.0.0.1" || send.Net.DstPort != udp.Port() || send.Net.Protocol != "udp" || send.Net.DstSource != "caller" {
		t.Errorf("UDP send of the tool call: %s, want 127.0.0.1:%d from the caller", brief(send), udp.Port())
	}
	if listen == nil || listen.Net.SrcIP != "127.0.0.1" || listen.Net.SrcPort == 0 || listen.Net.Backlog != 5 {
		t.Errorf("listen of the tool call: %s, want 127.0.0.1 with backlog 5", brief(listen))
	}
	if conn != nil && !has(evs, func(e *event.Event) bool {
		return e.Kind == event.KindPolicyAlert && e.Alert.Rule == "agent-hands-off-work" && e.Alert.TriggerEventID == conn.EventID
	}) {
		t.Errorf("no agent-hands-off-work alert naming the AF_UNIX connect %s", conn.EventID)
	}
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

func has(evs []*event.Event, pred func(*event.Event) bool) bool {
	for _, e := range evs {
		if pred(e) {
			return true
		}
	}
	return false
}

func brief(e *event.Event) string {
	if e == nil {
		return "none"
	}
	b, _ := json.Marshal(e.Net)
	return string(b)
}
