//go:build linux && amd64

package files

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
)

// TestClaudeCodeFileModify runs the real Claude Code under the real
// lineaged binary. One Bash tool call truncates a file, plants a symlink to
// /etc/shadow and makes a directory. The output carries each as a
// file.modify event bound to the tool call, and the default rule
// agent-links-sensitive-file alerts on the symlink.
func TestClaudeCodeFileModify(t *testing.T) {
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
	tmp, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lineaged := filepath.Join(tmp, "lineaged")
	build := exec.Command("go", "build", "-o", lineaged, "./cmd/lineaged")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	nonce := fmt.Sprint(time.Now().UnixNano())
	home, work := filepath.Join(tmp, "home"), filepath.Join(tmp, "work")
	for _, d := range []string{home, work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	logf := filepath.Join(work, "build.log")
	if err := os.WriteFile(logf, []byte("evidence\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmdline := fmt.Sprintf("cd %s && truncate -s 0 build.log && ln -s /etc/shadow s && mkdir d", work)
	scripts := []fakeapi.Script{{Name: "mod", Match: "evasion-mod-" + nonce, Turns: []fakeapi.Turn{
		{Tool: "Bash", Input: map[string]any{"command": cmdline, "description": "tidy up"}},
		{Text: "done"},
	}}}
	api, err := fakeapi.Start(scripts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	toolID := fakeapi.ToolUseID("mod", 0)

	cfg := filepath.Join(tmp, "lineaged.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+filepath.Join(tmp, "state")+"\npolicy:\n  rules: "+filepath.Join(root, "deploy", "rules")+
		// Every stand-in agent other test packages run on the host is a
		// session to this sensor too, floods included: a ring eight
		// times the default keeps their records from shedding this one's.
		"\nsensor:\n  ring_buffer_bytes: 67108864\n"), 0o600); err != nil {
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
	agent := exec.CommandContext(ctx, claude, "-p", "evasion-mod-"+nonce, "--dangerously-skip-permissions")
	agent.Dir = work
	agent.Env = testutil.ClaudeEnv(home, api.URL(), "sk-ant-evasion-"+nonce)
	if b, err := agent.CombinedOutput(); err != nil {
		t.Fatalf("claude: %v\n%s", err, b)
	}
	inTool := func(e *event.Event) bool {
		return e.Kind == event.KindFileModify && e.Agent != nil && e.Agent.ToolUse != nil &&
			e.Agent.ToolUse.ID == toolID && e.File != nil
	}
	evs := testutil.WaitOutputEvents(t, out, stderr, "the tool call's file.modify events and the alert", func(evs []*event.Event) bool {
		return has(evs, func(e *event.Event) bool { return inTool(e) && e.File.Op == event.FileOpMkdir }) &&
			has(evs, func(e *event.Event) bool {
				return e.Kind == event.KindPolicyAlert && e.Alert != nil && e.Alert.Rule == "agent-links-sensitive-file"
			})
	})
	stop()

	var trunc, sym, mkdir *event.Event
	for _, e := range evs {
		if !inTool(e) {
			continue
		}
		switch e.File.Op {
		case event.FileOpTruncate:
			trunc = e
		case event.FileOpSymlink:
			sym = e
		case event.FileOpMkdir:
			mkdir = e
		}
	}
	if trunc == nil || trunc.File.Path != logf || trunc.File.Length == nil || *trunc.File.Length != 0 || trunc.File.Inode == 0 {
		t.Errorf("truncate of the tool call: %s, want %s to length 0 with its inode", brief(trunc), logf)
	}
	if sym == nil || sym.File.Path != filepath.Join(work, "s") || sym.File.Target != "/etc/shadow" || sym.File.Result != 0 {
		t.Errorf("symlink of the tool call: %s, want %s -> /etc/shadow", brief(sym), filepath.Join(work, "s"))
	}
	if mkdir == nil || mkdir.File.Path != filepath.Join(work, "d") || mkdir.File.Perm == nil {
		t.Errorf("mkdir of the tool call: %s, want %s with its mode", brief(mkdir), filepath.Join(work, "d"))
	}
	if sym != nil && !has(evs, func(e *event.Event) bool {
		return e.Kind == event.KindPolicyAlert && e.Alert.Rule == "agent-links-sensitive-file" && e.Alert.TriggerEventID == sym.EventID
	}) {
		t.Errorf("no agent-links-sensitive-file alert naming the symlink %s", sym.EventID)
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
	b, _ := json.Marshal(e.File)
	return string(b)
}
