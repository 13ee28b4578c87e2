package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/tests/testutil"
)

// ClaudeVersion is the Claude Code release the tests pin.
const ClaudeVersion = testutil.ClaudeVersion

// repoRoot is the module root (tests/e2e/../..).
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// installClaude installs the pinned Claude Code from npm into a cache
// directory (tests/e2e/.cache, or $LINEAGED_E2E_CACHE) once, and returns
// the path of the native binary the npm package runs.
func installClaude(t testing.TB) string {
	t.Helper()
	cache := os.Getenv("LINEAGED_E2E_CACHE")
	if cache == "" {
		cache = filepath.Join(repoRoot(t), "tests", "e2e", ".cache")
	}
	bin, err := testutil.InstallClaude(context.Background(), cache)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// goBuild builds a package of this module into dir.
func goBuild(t testing.TB, dir, pkg, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// sensorRun is a running `lineaged run --output FILE`.
type sensorRun struct {
	cmd    *exec.Cmd
	out    string
	stderr *testutil.SyncBuffer
	done   chan error
}

func (s *sensorRun) stderrString() string { return s.stderr.String() }

func startSensor(t testing.TB, bin, out string, extra ...string) *sensorRun {
	t.Helper()
	args := append([]string{"run", "--output", out}, extra...)
	cmd := exec.Command(bin, args...)
	// The binary hash cache lives beside the cached Claude Code, not in
	// the machine's /var/lib/lineaged.
	cmd.Env = append(os.Environ(), "LINEAGED_HASHING_CACHE_DIR="+filepath.Join(repoRoot(t), "tests", "e2e", ".cache", "binid"))
	// Its own state (sequence, audit key) beside its output, kept across
	// restarts within a test: never the machine's, which another sensor
	// running at the same time holds.
	if os.Getenv("LINEAGED_STATE_DIR") == "" {
		cmd.Env = append(cmd.Env, "LINEAGED_STATE_DIR="+filepath.Join(filepath.Dir(out), "state"))
	}
	// These tests check what an event is tied to, not how fast: under CI,
	// other test packages load the host at the same time, and a tool call's
	// transcript record can come later than the default 2 s wait.
	if os.Getenv("LINEAGED_LINEAGE_ENRICH_WAIT") == "" {
		cmd.Env = append(cmd.Env, "LINEAGED_LINEAGE_ENRICH_WAIT=10s")
	}
	stderr := &testutil.SyncBuffer{}
	cmd.Stderr = stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sensorRun{cmd: cmd, out: out, stderr: stderr, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })
	// Ready once it reports its own start (the sensor.start event, or its
	// "sensor started" log line): from then on, execs are seen.
	s.waitFor(t, 60*time.Second, "sensor start", func(evs []*event.Event) bool {
		for _, e := range evs {
			if e.Kind == event.KindSensorStart {
				return true
			}
		}
		return strings.Contains(s.stderrString(), "sensor started")
	})
	return s
}

// stop ends the sensor with SIGINT (it flushes what it holds) and waits.
func (s *sensorRun) stop(t testing.TB) {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("lineaged did not stop on SIGINT within 30s")
	}
}

// events parses the output file so far.
func (s *sensorRun) events(t testing.TB) []*event.Event {
	t.Helper()
	b, err := os.ReadFile(s.out)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	var evs []*event.Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e event.Event
		if err := json.Unmarshal(line, &e); err != nil {
			// The last line may be half written while the sensor runs.
			continue
		}
		evs = append(evs, &e)
	}
	return evs
}

// waitFor polls the output until cond holds: the test proceeds on a marker
// event, never on a fixed sleep. The deadline only turns a hang into a
// failure.
func (s *sensorRun) waitFor(t testing.TB, d time.Duration, what string, cond func([]*event.Event) bool) []*event.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		evs := s.events(t)
		if cond(evs) {
			return evs
		}
		select {
		case err := <-s.done:
			t.Fatalf("lineaged exited (%v) while waiting for %s; stderr:\n%s", err, what, s.stderrString())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v (%d events); lineaged stderr:\n%s", what, d, len(evs), tail(s.stderrString(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// claudeEnv is the environment for Claude Code against the fake API.
func claudeEnv(home, apiURL, apiKey string) []string { return testutil.ClaudeEnv(home, apiURL, apiKey) }

// transcriptWith finds the transcript Claude Code wrote under home that
// holds the tool_use id: its name is the session UUID.
func transcriptWith(t testing.TB, home, toolUseID string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(home, ".claude", "projects", "*", "*.jsonl"))
	var found []string
	for _, p := range m {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(`"id":"`+toolUseID+`"`)) {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one transcript under %s with %s, found %q among %q", home, toolUseID, found, m)
	}
	return strings.TrimSuffix(filepath.Base(found[0]), ".jsonl")
}

// tcpSink accepts loopback connections and counts them.
type tcpSink struct {
	ln    net.Listener
	mu    sync.Mutex
	count int
}

func newTCPSink(t testing.TB) *tcpSink {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpSink{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.count++
			s.mu.Unlock()
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *tcpSink) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *tcpSink) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// hasher recomputes SHA-256 of files, once per path.
type hasher struct {
	mu   sync.Mutex
	sums map[string]string
}

func (h *hasher) sum(t testing.TB, path string) string {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sums == nil {
		h.sums = map[string]string{}
	}
	if s, ok := h.sums[path]; ok {
		return s
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("hash %s: %v", path, err)
	}
	defer f.Close()
	d := sha256.New()
	if _, err := io.Copy(d, f); err != nil {
		t.Fatal(err)
	}
	s := hex.EncodeToString(d.Sum(nil))
	h.sums[path] = s
	return s
}

func describe(e *event.Event) string {
	b, _ := json.Marshal(struct {
		Kind  string
		Proc  any
		File  *event.File
		Net   *event.Net
		Agent *event.Agent
	}{e.Kind, procBrief(e.Process), e.File, e.Net, e.Agent})
	return string(b)
}

func procBrief(p *event.Process) any {
	if p == nil {
		return nil
	}
	return fmt.Sprintf("%d %s %q", p.PID, p.Exe, p.Argv)
}
