package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/tests/fakeapi"
	"github.com/lineaged/lineaged/tests/testutil"
)

// A real Claude Code session with hooks, rules and posture, captured with
// run --capture and replayed in a mount namespace whose /proc is empty:
// the replayed output is the live output byte for byte, sensor.source
// aside (docs/capture.md).
func TestCaptureReplayClaudeCode(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	claude := installClaude(t)
	tmp := t.TempDir()
	lineaged := goBuild(t, tmp, "./cmd/lineaged", "lineaged")
	goBuild(t, tmp, "./cmd/lineaged-hook", "lineaged-hook")
	name := "capture"
	nonce := fmt.Sprint(time.Now().UnixNano())
	dir := filepath.Join(tmp, name)
	sess := newSession(t, tmp, name)
	socket := filepath.Join(dir, "run", "hook.sock")
	cfg := filepath.Join(dir, "lineaged.yaml")
	rules := filepath.Join(repoRoot(t), "deploy", "rules")
	settings, wrap := managedSettings(t, dir)
	// No audit chain: its links and key belong to the live host's state.
	writeFile(t, cfg, fmt.Sprintf("posture:\n  interval: 200ms\n  checks: [firewall]\n  required: [firewall]\n  managed_settings: %s\npolicy:\n  rules: %s\nhook:\n  socket: %s\n  timeout: 2s\naudit:\n  enabled: false\n",
		settings, rules, socket))
	sess.wrap = wrap
	if b, err := exec.Command(lineaged, "hook", "install", "--settings", settings, "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("hook install: %v\n%s", err, b)
	}
	work := sess.work
	turns := []fakeapi.Turn{
		{Tool: "Bash", Input: map[string]any{"command": "cd " + work + " && echo hi > notes.txt && cat notes.txt && ls -la", "description": "write"}},
		{Tool: "Read", Input: map[string]any{"file_path": filepath.Join(work, "notes.txt")}},
		{Text: "done"},
	}
	script := "capture"
	api, err := fakeapi.Start([]fakeapi.Script{{Name: script, Match: "e2e-capture-" + nonce, Turns: turns}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	out := filepath.Join(dir, "events.jsonl")
	capPath := filepath.Join(dir, "session.lcap")
	sens := startSensor(t, lineaged, out, "--config", cfg, "--capture", capPath)
	sess.start(t, claude, api.URL(), "sk-ant-e2e-"+nonce, "e2e-capture-"+nonce)
	sess.wait(t, fakeapi.ToolUseID(script, 0))
	last := fakeapi.ToolUseID(script, len(turns)-2)
	sens.waitFor(t, 60*time.Second, "the last tool call", func(evs []*event.Event) bool {
		for _, e := range evs {
			if e.Kind == event.KindAgentToolCall && e.Tool != nil && e.Tool.ID == last {
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond)
	sens.stop(t)
	live, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"kind":"agent.tool_call"`, `"kind":"policy.alert"`, `"kind":"agent.session_end"`, "notes.txt"} {
		if !bytes.Contains(live, []byte(want)) {
			t.Fatalf("live output lacks %s", want)
		}
	}

	// Replay where /proc is an empty tmpfs: nothing can be read live.
	shell := `mount -t tmpfs none /proc && exec "$@"`
	cmd := exec.Command("unshare", "-m", "sh", "-c", shell, "sh", lineaged, "replay", "--config", cfg, capPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	want := strings.ReplaceAll(string(live), `"source":"live"`, `"source":"replay"`)
	if got := stdout.String(); got != want {
		wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
		for i := range min(len(wl), len(gl)) {
			if wl[i] != gl[i] {
				t.Fatalf("replay differs from live at line %d (of %d live, %d replayed):\nlive:   %s\nreplay: %s", i+1, len(wl), len(gl), wl[i], gl[i])
			}
		}
		t.Fatalf("replay has %d lines, live %d", len(gl), len(wl))
	}
	t.Logf("%d events replayed identically", strings.Count(want, "\n"))
}
