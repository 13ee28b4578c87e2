package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/capture"
	"github.com/lineaged/lineaged/tests/testutil"
)

// replayNoProc runs replay as nobody in a mount namespace whose /proc is an
// empty tmpfs: any fact not taken from the capture fails.
func replayNoProc(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	for _, tool := range []string{"unshare", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	script := `mount -t tmpfs none /proc && exec setpriv --reuid 65534 --regid 65534 --clear-groups "$@"`
	cmd := exec.Command("unshare", append([]string{"-m", "sh", "-c", script, "sh", binary, "replay"}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// A capture of a real agent session, replayed as nobody with no /proc,
// gives the live output byte for byte, sensor.source aside; replayed with
// another rule set it raises that set's alerts.
func TestCaptureReplayMatchesLive(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir, err := os.MkdirTemp("", "lineaged-replay-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // nobody reads the capture
		t.Fatal(err)
	}
	agentPath := testutil.AgentPath(dir)
	testutil.CopyFile(t, "/bin/dash", agentPath, 0o755)
	cfgPath := filepath.Join(dir, "lineaged.yaml")
	// No audit chain: its links and keys live in the state directory of
	// the live host (docs/capture.md).
	if err := os.WriteFile(cfgPath, []byte("audit:\n  enabled: false\npolicy:\n  rules: \"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, "live.jsonl")
	capPath := filepath.Join(dir, "session.lcap")
	cmd := exec.Command(binary, "run", "--config", cfgPath, "--output", live, "--capture", capPath)
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir())
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, &stderr, "sensor started")

	work := filepath.Join(dir, "work")
	script := "mkdir " + work + " && cd " + work + " && cat /etc/hostname >/dev/null && echo hi > f && mv f g && rm g && ls >/dev/null && /bin/true --password=hunter2-not-real && /bin/true replay-marker"
	if out, err := exec.Command(agentPath, "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("agent stand-in: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !fileHasExec(t, live, "replay-marker") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if st, err := os.Stat(capPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("capture mode: %v %v", st, err)
	}
	if err := os.Chmod(capPath, 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(live)
	if err != nil {
		t.Fatal(err)
	}
	// Redacted by default, as the output is: the secret is in neither.
	if n := captureHolds(t, capPath, "hunter2-not-real"); n != 0 || bytes.Contains(want, []byte("hunter2-not-real")) {
		t.Fatalf("the secret argument is in %d capture records (or the output)", n)
	}
	if !bytes.Contains(want, []byte("replay-marker")) {
		t.Fatalf("live output lacks the session's marker exec:\n%s", stderr.String())
	}
	got, errOut, code := replayNoProc(t, "--config", cfgPath, capPath)
	if code != 0 {
		t.Fatalf("replay exit %d:\n%s", code, errOut)
	}
	wantReplay := strings.ReplaceAll(string(want), `"source":"live"`, `"source":"replay"`)
	if got != wantReplay {
		wl, gl := strings.Split(wantReplay, "\n"), strings.Split(got, "\n")
		for i := range min(len(wl), len(gl)) {
			if wl[i] != gl[i] {
				t.Fatalf("replay differs from live at line %d (of %d live, %d replayed):\nlive:   %s\nreplay: %s", i+1, len(wl), len(gl), wl[i], gl[i])
			}
		}
		t.Fatalf("replay has %d lines, live %d", len(gl), len(wl))
	}

	// The sessions view reads the capture as it reads the live output.
	fromLive := runBinary(t, nil, "sessions", "--color", "never", live)
	fromCapture := runBinary(t, nil, "sessions", "--color", "never", capPath)
	if fromLive.code != 0 || fromCapture.code != 0 || fromLive.stdout != fromCapture.stdout || !strings.Contains(fromCapture.stdout, "claude-code") {
		t.Fatalf("sessions of the capture differ from those of the live output:\nlive (exit %d):\n%s\ncapture (exit %d, %s):\n%s",
			fromLive.code, fromLive.stdout, fromCapture.code, fromCapture.stderr, fromCapture.stdout)
	}

	// --session keeps one session's events, nothing else.
	m := regexp.MustCompile(`"root_exec_id":"([0-9a-f]+)"`).FindStringSubmatch(string(want))
	if m == nil {
		t.Fatal("no agent session in the live output")
	}
	got, errOut, code = replayNoProc(t, "--config", cfgPath, "--session", m[1], capPath)
	if code != 0 || lines(got) == 0 || lines(got) >= lines(string(want)) || lines(got) != strings.Count(got, `"root_exec_id":"`+m[1]+`"`) {
		t.Fatalf("--session %s: exit %d, %d of %d lines\n%s", m[1], code, lines(got), lines(string(want)), errOut)
	}

	// Another rule set over the same capture.
	rules := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(rules, []byte(`rules:
  - id: cat-in-agent-session
    description: cat run inside an agent session
    severity: low
    condition: kind == "process.exec" && agent.name == "claude-code" && process.exe.endsWith("/cat")
    actions: [alert]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, errOut, code = replayNoProc(t, "--config", cfgPath, "--rules", rules, capPath)
	if code != 0 {
		t.Fatalf("replay --rules exit %d:\n%s", code, errOut)
	}
	if strings.Contains(string(want), "cat-in-agent-session") || !strings.Contains(got, `"rule":"cat-in-agent-session"`) {
		t.Fatalf("replay with other rules did not raise cat-in-agent-session:\n%s", got)
	}
}

// lineaged capture records for --duration, without publishing, and its
// capture replays.
func TestCaptureCommand(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	capPath := filepath.Join(dir, "c.lcap")
	cmd := exec.Command(binary, "capture", "-o", capPath, "--duration", "4s", "--scope", "all", "--raw")
	// No control socket: this capture loads its own programs whatever
	// sensor runs on the host (tee_test.go tees from one).
	cmd.Env = append(os.Environ(), "LINEAGED_CONTROL_SOCKET=")
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, &stderr, "sensor started")
	marker := filepath.Join(dir, "capture-marker")
	if err := os.Symlink("/bin/true", marker); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(marker, "--password=hunter2-raw").Run(); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(marker, "capture-cmd-marker").Run(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("capture: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "capture written to "+capPath) {
		t.Fatalf("capture did not say where it wrote:\n%s", stderr.String())
	}
	if st, err := os.Stat(capPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("capture file: %v %v", st, err)
	}
	f, err := os.Open(capPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cr, err := capture.NewReader(f, capture.ReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if h := cr.Header(); !h.Raw || h.FormatVersion != capture.FormatVersion || h.Kernel == "" || len(h.ConfigDigest) != 64 || h.Meta[metaInstance] == "" {
		t.Fatalf("header %+v", h)
	}
	// --raw keeps what the output would redact.
	if captureHolds(t, capPath, "hunter2-raw") == 0 {
		t.Fatal("a --raw capture lost the argument the output redacts")
	}
	r := runBinary(t, nil, "replay", "--scope", "all", capPath)
	if r.code != 0 || !strings.Contains(r.stdout, "capture-cmd-marker") {
		t.Fatalf("replay of the capture: exit %d, marker missing\n%s", r.code, r.stderr)
	}
}

// captureHolds counts the records of a capture whose payload contains s.
func captureHolds(t *testing.T, path, s string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := capture.NewReader(f, capture.ReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		rec, err := r.Next()
		if err != nil {
			return n
		}
		if bytes.Contains(rec.Payload, []byte(s)) {
			n++
		}
	}
}
