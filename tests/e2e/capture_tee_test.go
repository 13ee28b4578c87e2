package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/fakeapi"
	"github.com/lineaged/lineaged/tests/testutil"
)

// A real Claude Code session, recorded by `lineaged capture` while the
// service runs with its programs pinned: the capture is a tee of the
// service's stream over its control socket (no programs of its own), and
// replayed where /proc is empty it gives the service's events for that
// window line for line, seqs included, sensor.source aside
// (docs/capture.md).
//
// A stand-in agent another test package starts on the host during the tee
// is a session of this service too, and may have started before the tee:
// replay starts from the service's engine state at the tee's start, so its
// events inside the tee replay identically as well.
func TestCaptureTeeClaudeCode(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	claude := installClaude(t)
	tmp := t.TempDir()
	lineaged := goBuild(t, tmp, "./cmd/lineaged", "lineaged")
	goBuild(t, tmp, "./cmd/lineaged-hook", "lineaged-hook")
	name := "tee"
	nonce := fmt.Sprint(time.Now().UnixNano())
	dir := filepath.Join(tmp, name)
	sess := newSession(t, tmp, name)
	socket := filepath.Join(dir, "run", "hook.sock")
	control := filepath.Join(dir, "ctl", "control.sock")
	b := make([]byte, 6)
	rand.Read(b)
	pin := "/sys/fs/bpf/lineaged-test-e2e-tee-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := kernel.Unpin(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("unpin %s: %v", pin, err)
		}
	})
	cfg := filepath.Join(dir, "lineaged.yaml")
	rules := filepath.Join(repoRoot(t), "deploy", "rules")
	settings, wrap := managedSettings(t, dir)
	writeFile(t, cfg, fmt.Sprintf("posture:\n  interval: 200ms\n  checks: [firewall]\n  required: [firewall]\n  managed_settings: %s\npolicy:\n  rules: %s\nhook:\n  socket: %s\n  timeout: 2s\naudit:\n  enabled: false\nkernel:\n  pin_path: %s\ncontrol:\n  socket: %s\n",
		settings, rules, socket, pin, control))
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
	script := "tee"
	api, err := fakeapi.Start([]fakeapi.Script{{Name: script, Match: "e2e-tee-" + nonce, Turns: turns}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	out := filepath.Join(dir, "events.jsonl")
	sens := startSensor(t, lineaged, out, "--config", cfg)

	capPath := filepath.Join(dir, "tee.lcap")
	capCmd := exec.Command(lineaged, "capture", "--config", cfg, "-o", capPath)
	capErr := &testutil.SyncBuffer{}
	capCmd.Stderr = capErr
	if err := capCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer capCmd.Process.Kill()
	testutil.WaitForText(t, 60*time.Second, capErr, "teeing the running sensor's stream")

	sess.start(t, claude, api.URL(), "sk-ant-e2e-"+nonce, "e2e-tee-"+nonce)
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
	if err := capCmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := capCmd.Wait(); err != nil {
		t.Fatalf("capture: %v\n%s", err, capErr.String())
	}
	if strings.Contains(capErr.String(), "own, unpinned programs") || !strings.Contains(capErr.String(), "teed from the running sensor") {
		t.Fatalf("capture did not tee:\n%s", capErr.String())
	}
	sens.stop(t)
	live, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	bySeq := map[uint64]string{}
	var first uint64
	for _, line := range strings.Split(strings.TrimSuffix(string(live), "\n"), "\n") {
		var ev struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("live line: %v", err)
		}
		if first == 0 {
			first = ev.Seq // after the state directory's last run
		}
		if ev.Seq != first+uint64(len(bySeq)) {
			t.Fatalf("live output: seq %d after %d events from seq %d", ev.Seq, len(bySeq), first)
		}
		bySeq[ev.Seq] = strings.ReplaceAll(line, `"source":"live"`, `"source":"replay"`)
	}

	shell := `mount -t tmpfs none /proc && exec "$@"`
	cmd := exec.Command("unshare", "-m", "sh", "-c", shell, "sh", lineaged, "replay", "--config", cfg, capPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	got := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	var toolCalls int
	for i, line := range got {
		var ev struct {
			Seq  uint64 `json:"seq"`
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("replay line %d: %v", i+1, err)
		}
		if line != bySeq[ev.Seq] {
			t.Fatalf("replay line %d (seq %d, of %d) differs from the live event:\nlive:   %s\nreplay: %s", i+1, ev.Seq, len(got), bySeq[ev.Seq], line)
		}
		if ev.Kind == event.KindAgentToolCall {
			toolCalls++
		}
	}
	if toolCalls < len(turns)-1 {
		t.Fatalf("the replayed tee holds %d tool calls, want %d", toolCalls, len(turns)-1)
	}
	t.Logf("%d events of the tee replayed identically to the service's", len(got))
}
