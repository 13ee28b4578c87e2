package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// binary is the lineaged binary built once for the tests that run it as a
// user would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lineaged-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The unprivileged test runs the binary as nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "lineaged")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building lineaged:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func runBinary(t *testing.T, cred *syscall.Credential, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// oneLine asserts the failure is one line naming want, with no stack trace.
func oneLine(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("want a one-line error, got %d lines:\n%s", len(lines), r.stderr)
	}
	if !strings.HasPrefix(lines[0], "lineaged: ") || !strings.Contains(lines[0], want) {
		t.Fatalf("error %q does not name %q", lines[0], want)
	}
	if strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("stack trace in output:\n%s", r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	oneLine(t, runBinary(t, nil, "run", "--scope", "bogus"), exitUsage, `scope: "bogus"`)
	oneLine(t, runBinary(t, nil, "run", "--no-such-flag"), exitUsage, "no-such-flag")
	oneLine(t, runBinary(t, nil, "run", "extra"), exitUsage, "takes no arguments")
	oneLine(t, runBinary(t, nil, "run", "--config", "/nonexistent.yaml"), exitUsage, "/nonexistent.yaml")
	r := runBinary(t, nil, "frobnicate")
	if r.code != exitUsage || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: code %d stderr %q", r.code, r.stderr)
	}
	if r := runBinary(t, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "lineaged ") {
		t.Fatalf("version: %+v", r)
	}
}

var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// Without privileges, run and doctor say what is missing in one line.
func TestUnprivileged(t *testing.T) {
	testutil.RequireRoot(t, "to drop to an unprivileged user")
	r := runBinary(t, nobody, "run", "--output", "-")
	oneLine(t, r, exitRuntime, "CAP_BPF")
	d := runBinary(t, nobody, "doctor")
	if d.code == 0 {
		t.Fatalf("doctor as nobody exited 0:\n%s", d.stdout)
	}
	if !strings.Contains(d.stdout, "capabilities") || !strings.Contains(d.stderr, "CAP_BPF") {
		t.Fatalf("doctor as nobody: stdout:\n%s\nstderr:\n%s", d.stdout, d.stderr)
	}
}

func TestDoctorAsRoot(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	r := runBinary(t, nil, "doctor")
	if r.code != 0 {
		t.Fatalf("doctor failed on this host: %s\n%s", r.stdout, r.stderr)
	}
	for _, want := range []string{"kernel BTF", "ring buffer", "attach tp_btf"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor table lacks %q:\n%s", want, r.stdout)
		}
	}
}

// run writes events to a 0600 file, sees a process started after it with
// --scope all, and stops cleanly on SIGTERM.
func TestRunToFileAndStop(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	out := filepath.Join(dir, "events.jsonl")
	cmd := exec.Command(binary, "run", "--scope", "all", "--output", out, "--log-level", "debug")
	// Its own sequence state: seq from 1, whatever ran before.
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// The marker: a uniquely named command, run until the sensor reports it.
	marker := filepath.Join(dir, "marker-true")
	if err := os.Symlink("/bin/true", marker); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	found := false
	for !found && time.Now().Before(deadline) {
		if err := exec.Command(marker, "lineaged-cmd-marker").Run(); err != nil {
			t.Fatal(err)
		}
		found = fileHasExec(t, out, "lineaged-cmd-marker")
		if !found {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !found {
		t.Fatalf("marker exec never reported; stderr:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run did not exit cleanly on SIGTERM: %v\n%s", err, stderr.String())
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("output mode %v, want 0600", st.Mode().Perm())
	}
	if !strings.Contains(stderr.String(), "sensor stopped") {
		t.Fatalf("no orderly stop logged:\n%s", stderr.String())
	}
	// The stream opens with sensor.start, closes with sensor.stop and the
	// final checkpoint of the audit trail (docs/audit.md), carries a
	// posture sample, and its seq has no gap.
	evs := readEvents(t, out)
	if n := len(evs); evs[0].Kind != "sensor.start" || evs[n-2].Kind != "sensor.stop" || evs[n-1].Kind != "sensor.checkpoint" {
		t.Fatalf("stream runs %s ... %s %s", evs[0].Kind, evs[len(evs)-2].Kind, evs[len(evs)-1].Kind)
	}
	sawPosture := false
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: a gap", i, ev.Seq)
		}
		sawPosture = sawPosture || ev.Kind == "posture.sample"
		if ev.Posture == nil && ev.Kind != "sensor.checkpoint" {
			t.Errorf("%s event %d carries no posture", ev.Kind, ev.Seq)
		}
	}
	if !sawPosture {
		t.Error("no posture.sample event")
	}
}

type testEvent struct {
	Kind    string          `json:"kind"`
	Seq     uint64          `json:"seq"`
	Posture json.RawMessage `json:"posture"`
}

func readEvents(t *testing.T, path string) []testEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []testEvent
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev testEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	return evs
}

// fileHasExec reports whether out holds a process.exec event whose argv
// contains arg, checking each line is a complete JSON object.
func fileHasExec(t *testing.T, out, arg string) bool {
	t.Helper()
	f, err := os.Open(out)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Kind    string `json:"kind"`
			Seq     uint64 `json:"seq"`
			Process struct {
				Argv []string `json:"argv"`
			} `json:"process"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue // a line still being written
		}
		if ev.Kind == "process.exec" {
			for _, a := range ev.Process.Argv {
				if a == arg {
					return true
				}
			}
		}
	}
	return false
}

// With policy.deny_exec, an agent session's exec of a denied binary is
// stopped in the kernel and reported as policy.alert and policy.action; the
// same binary outside the session runs.
func TestRunDenyExecInAgentSession(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	denied := filepath.Join(dir, "denied-true")
	testutil.CopyFile(t, "/bin/true", denied, 0o755)
	// A stand-in agent: a shell at Claude Code's native install path.
	agentPath := testutil.AgentPath(dir)
	testutil.CopyFile(t, "/bin/dash", agentPath, 0o755)
	cfgPath := filepath.Join(dir, "lineaged.yaml")
	if err := os.WriteFile(cfgPath, []byte("policy:\n  deny_exec: ["+denied+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "events.jsonl")
	cmd := exec.Command(binary, "run", "--config", cfgPath, "--output", out)
	// Its own sequence state: seq from 1, whatever ran before.
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir())
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, &stderr, "sensor started")

	// Outside any session the denied path runs.
	if err := exec.Command(denied).Run(); err != nil {
		t.Fatalf("outside a session %s must run: %v", denied, err)
	}
	// Inside the session it must not: the shell reports its child's fate.
	script := denied + "; echo status=$? > " + filepath.Join(dir, "status")
	if err := exec.Command(agentPath, "-c", script).Run(); err != nil {
		t.Fatalf("agent stand-in: %v", err)
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		t.Fatal(err)
	}
	// 137: killed by SIGKILL (tracepoint path); 126: exec refused (LSM path).
	if s := strings.TrimSpace(string(status)); s != "status=137" && s != "status=126" {
		t.Fatalf("denied exec in a session: %s", s)
	}

	var alert map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for alert == nil && time.Now().Before(deadline) {
		alert = findEvent(t, out, "policy.action")
		if alert == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if alert == nil {
		t.Fatalf("no policy.action event; stderr:\n%s", stderr.String())
	}
	a, _ := alert["alert"].(map[string]any)
	if a["rule"] != "deny_exec" || (a["action"] != "killed" && a["action"] != "blocked") {
		t.Fatalf("alert = %v", a)
	}
	ag, _ := alert["agent"].(map[string]any)
	if ag["name"] != "claude-code" {
		t.Fatalf("policy.action not attributed to the agent session: %v", alert["agent"])
	}
	// The policy stage reports the rule that matched, naming the action as
	// its trigger.
	found := findEvent(t, out, "policy.alert")
	fa, _ := found["alert"].(map[string]any)
	if found == nil || fa["rule"] != "deny_exec" || fa["severity"] != "high" || fa["trigger_event_id"] != alert["event_id"] ||
		!strings.Contains(fmt.Sprint(fa["message"]), denied) {
		t.Fatalf("policy.alert = %v, want rule deny_exec naming %s and trigger %v", found, denied, alert["event_id"])
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	// One sequencer numbered them all, whoever made them: lineage's
	// process events, posture's samples, the policy's alert and action,
	// the sensor's start and stop.
	kinds := map[string]bool{}
	for i, ev := range readEvents(t, out) {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d (%s) has seq %d: a gap or a duplicate", i, ev.Kind, ev.Seq)
		}
		kinds[ev.Kind] = true
	}
	for _, k := range []string{"sensor.start", "posture.sample", "process.exec", "policy.alert", "policy.action", "sensor.stop"} {
		if !kinds[k] {
			t.Errorf("no %s in the stream: %v", k, kinds)
		}
	}
}

func findEvent(t *testing.T, path, kind string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["kind"] == kind {
			return ev
		}
	}
	return nil
}
