package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// managedDir is where Claude Code reads its managed settings.
const managedDir = "/etc/claude-code"

// The default rule set on a live sensor: a stand-in agent session runs a
// scripted workload where each file, exec and connect rule must fire, next
// to benign look-alikes where none may; its hook asks the sensor about one
// Bash call, whose tool process is decided, and another tool process goes
// around the hook. (The posture rules need a posture transition: they are
// tested on events in lineage/policy and with the real Claude Code in
// tests/e2e.)
func TestRunDefaultRulesOnAWorkload(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	rulesDir, err := filepath.Abs("../../deploy/rules")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A user home: the rules know homes as /root and /home/<user>.
	home, err := os.MkdirTemp("/home", "lineaged-rules-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	proj, other := filepath.Join(dir, "proj"), filepath.Join(dir, "other")
	for _, f := range []string{home + "/.ssh/id_test", home + "/.ssh/id_test.pub", proj + "/README"} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	payload := testutil.CopyFile(t, "/bin/true", other+"/payload", 0o755)
	// sleep, not true: the working directory of an exec is read from /proc
	// while the process lives (one that is gone keeps its parent's).
	testutil.CopyFile(t, "/bin/sleep", other+"/target/release/tool", 0o755)
	inProject := testutil.CopyFile(t, "/bin/true", proj+"/scripts/gen", 0o755)
	agentPath := testutil.AgentPath(dir)
	testutil.CopyFile(t, "/bin/dash", agentPath, 0o755)

	cfg := filepath.Join(dir, "lineaged.yaml")
	out := filepath.Join(dir, "events.jsonl")
	socket := filepath.Join(dir, "run", "hook.sock")
	// A posture this host passes, so the hook allows the call it asks
	// about (the posture rules are tested elsewhere).
	if err := os.WriteFile(cfg, []byte("output: "+out+"\nposture:\n  checks: [aslr]\npolicy:\n  rules: "+rulesDir+"\nhook:\n  socket: "+socket+"\n  timeout: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Claude Code's managed settings directory: the workload writes a file
	// there, in a private mount namespace where a directory of the test is
	// bind-mounted over it, so nothing on the machine changes and tests
	// running beside this one (packaging, the end-to-end hook tests) are
	// not raced. The mount point must exist; an empty one is left.
	for _, tool := range []string{"unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s (util-linux) is needed: %v", tool, err)
		}
	}
	if err := os.MkdirAll(managedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ownManaged := filepath.Join(dir, "etc-claude-code")
	if err := os.MkdirAll(ownManaged, 0o755); err != nil {
		t.Fatal(err)
	}
	settingsProbe := filepath.Join(managedDir, "lineaged-rules-test.json")
	// The agent's hook asks about one Bash call ("id -u"); the tool
	// process of that call is decided, the next one ("whoami", run by
	// dash so its alert is told apart) went around the hook.
	const sessionID = "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77"
	hookIn := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(hookIn, []byte(`{"session_id":"`+sessionID+`","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"id -u"},"tool_use_id":"toolu_live_1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	toolScript := func(shell, cmd string, n int) string {
		return fmt.Sprintf(`AI_AGENT=claude-code_2-1-332_agent %s -c "source %s/.claude/shell-snapshots/snapshot-bash-1-x.sh 2>/dev/null || true && eval '%s' < /dev/null && pwd -P >| %s/claude-%d-cwd"`,
			shell, home, cmd, dir, n)
	}
	cmd := exec.Command(binary, "run", "--config", cfg)
	// Its own sequence state: seq from 1, whatever ran before.
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir())
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, &stderr, "sensor started")

	script := strings.Join([]string{
		// What Claude Code gives its children: its pid and session.
		"export CLAUDE_PID=$$ CLAUDE_CODE_SESSION_ID=" + sessionID,
		"cat " + home + "/.ssh/id_test",     // credentials
		"cat " + home + "/.ssh/id_test.pub", // benign: a public key
		"cat " + proj + "/README",           // benign
		"echo x >> " + home + "/.bashrc",    // persistence
		"mkdir -p " + other + "/.git/hooks",
		"echo x > " + other + "/.git/hooks/pre-commit",        // persistence
		"echo x > " + other + "/.git/hooks/pre-commit.sample", // benign: what git init writes
		"echo x > " + proj + "/notes.txt",                     // benign
		payload,                                               // unsigned, outside
		inProject,                                             // benign: in the session's directory
		"(cd " + other + " && ./target/release/tool 0.5)",     // benign: build output
		"/bin/true",                              // benign
		"bash -c 'echo > /dev/tcp/127.0.0.1/22'", // hand-off: localhost sshd
		"tmux -V",                                // hand-off: a tmux client
		"bash -c 'echo > /dev/tcp/127.0.0.1/443'", // benign
		"echo '{}' > " + settingsProbe,            // managed settings tampered
		"cat " + settingsProbe,                    // benign: reading them
		// A hook of the agent (sh -c <command>, marked as a hook's), then
		// the tool process of the call it named: decided, benign.
		"AI_AGENT=claude-code_2-1-332_harness sh -c '" + binary + " hook --config " + cfg + "' < " + hookIn,
		toolScript("bash", "id -u", 1),
		toolScript("sh", "whoami", 2), // around the hook
		"true",
	}, "\n") + "\n"
	agent := exec.Command("unshare", "--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", `mount --bind "$0" `+managedDir+` && exec "$@"`, ownManaged, agentPath, "-c", script)
	agent.Dir = proj
	o, err := agent.CombinedOutput()
	if err != nil {
		t.Logf("workload: %v", err)
	}
	t.Logf("workload output:\n%s", o)

	want := []string{
		"agent-reads-credentials " + home + "/.ssh/id_test",
		"agent-writes-persistence " + home + "/.bashrc",
		"agent-writes-persistence " + other + "/.git/hooks/pre-commit",
		"agent-runs-unverified-binary " + payload,
		"agent-hands-off-work 127.0.0.1:22",
		"agent-hands-off-work /usr/bin/tmux",
		"managed-settings-tampered " + settingsProbe,
		"tool-without-hook-decision /usr/bin/dash",
		// The hook run by the session: a test build, unsigned, outside
		// the session's directory.
		"agent-runs-unverified-binary " + binary,
		// The stand-in agent is a copy of dash at Claude Code's path: no
		// known release (docs/agents.md, "Agent identity").
		"agent-unverified " + agentPath,
	}
	slices.Sort(want)
	// alerts lists the session's alerts as "rule object".
	alerts := func() []string {
		b, _ := os.ReadFile(out)
		var got []string
		for _, line := range strings.Split(string(b), "\n") {
			var ev struct {
				Kind    string `json:"kind"`
				Alert   struct{ Rule string }
				Agent   struct{ Name string }
				Process struct {
					Exe    string `json:"exe"`
					Binary struct{ Path string }
				}
				Ancestry []struct{ Exe string }
				File     *struct{ Path string }
				Net      *struct {
					DstIP   string `json:"dst_ip"`
					DstPort int    `json:"dst_port"`
				}
			}
			if json.Unmarshal([]byte(line), &ev) != nil || ev.Kind != "policy.alert" || ev.Alert.Rule == "posture-noncompliant-in-session" {
				continue
			}
			ours := ev.Process.Exe == agentPath
			for _, a := range ev.Ancestry {
				ours = ours || a.Exe == agentPath
			}
			if !ours {
				continue // another agent session on this host
			}
			obj := ev.Process.Binary.Path
			switch {
			case ev.File != nil:
				obj = ev.File.Path
			case ev.Net != nil:
				obj = fmt.Sprintf("%s:%d", ev.Net.DstIP, ev.Net.DstPort)
			}
			got = append(got, ev.Alert.Rule+" "+obj)
		}
		slices.Sort(got)
		return slices.Compact(got)
	}
	testutil.WaitFor(t, 30*time.Second, "alert of every default rule", func() bool {
		got := alerts()
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	}, func() string {
		b, _ := os.ReadFile(out)
		var rel []string
		for _, l := range strings.Split(string(b), "\n") {
			var ev struct {
				Kind  string          `json:"kind"`
				File  json.RawMessage `json:"file"`
				Agent json.RawMessage `json:"agent"`
			}
			if json.Unmarshal([]byte(l), &ev) == nil && (strings.Contains(string(ev.File), "bashrc") || strings.Contains(string(ev.File), "hooks")) {
				rel = append(rel, ev.Kind+" "+string(ev.File)+" "+string(ev.Agent))
			}
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		last := lines[max(0, len(lines)-3):]
		return fmt.Sprintf("got %q\nwant %q\n%d lines, %d alerts; last:\n%s\n%s\n%s", alerts(), want, len(lines), strings.Count(string(b), `"kind":"policy.alert"`), strings.Join(last, "\n"), strings.Join(rel, "\n"), stderr.String())
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if got := alerts(); !slices.Equal(got, want) {
		t.Errorf("alerts of the session:\n got %q\nwant %q", got, want)
	}
}
