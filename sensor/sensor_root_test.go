//go:build linux

package sensor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// These tests load the real programs: they need root (CI runs as root).
// Every test ends with a marker exec and waits for it; the timeout below is
// only a guard against a hang, never a synchronisation.
const guard = 30 * time.Second

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs")
	}
}

// harness runs one sensor and collects its events.
type harness struct {
	t      *testing.T
	s      *Sensor
	cancel context.CancelFunc
	done   chan error
	out    chan Event
	seen   []Event
}

func startSensor(t *testing.T, cfg Config) *harness {
	t.Helper()
	requireRoot(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg, log)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Logf("%+v", ve)
		}
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, s: s, cancel: cancel, done: make(chan error, 1), out: make(chan Event, 4096)}
	go func() { h.done <- s.Run(ctx, h.out) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.cancel = nil
	if err := h.s.Close(); err != nil {
		h.t.Errorf("Close: %v", err)
	}
}

// until collects events until pred holds for one of them (inclusive).
func (h *harness) until(pred func(Event) bool) []Event {
	h.t.Helper()
	timer := time.NewTimer(guard)
	defer timer.Stop()
	start := len(h.seen)
	for {
		select {
		case ev := <-h.out:
			h.seen = append(h.seen, ev)
			if pred(ev) {
				return h.seen[start:]
			}
		case <-timer.C:
			h.t.Fatalf("no matching event within %s (%d events seen)", guard, len(h.seen)-start)
			return nil
		}
	}
}

// untilExecArg waits for an exec whose argv contains arg.
func (h *harness) untilExecArg(arg string) (Event, []Event) {
	h.t.Helper()
	evs := h.until(func(ev Event) bool { return ev.Exec != nil && slices.Contains(ev.Exec.Argv, arg) })
	return evs[len(evs)-1], evs
}

func marker(t *testing.T) string {
	return fmt.Sprintf("lineaged-marker-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
}

func mustRun(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", cmd.Args, err, out)
	}
}

func find(evs []Event, pred func(Event) bool) []Event {
	var out []Event
	for _, ev := range evs {
		if pred(ev) {
			out = append(out, ev)
		}
	}
	return out
}

func execOf(pid uint32) func(Event) bool {
	return func(ev Event) bool { return ev.Exec != nil && ev.Proc.PID == pid }
}

func exitOf(pid uint32) func(Event) bool {
	return func(ev Event) bool { return ev.Exit != nil && ev.Proc.PID == pid }
}

// fakeAgent copies a small program (dash) to a Claude-Code-shaped path,
// so the recognisers see a native install.
func fakeAgentPath(t *testing.T) string {
	t.Helper()
	return copyTo(t, "/bin/dash", filepath.Join(t.TempDir(), "home", ".local", "share", "claude", "versions", "2.1.332"))
}

func copyTo(t *testing.T, src, dst string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o700); err != nil {
		t.Fatal(err)
	}
	return dst
}

// agentShell is a fake agent reading shell commands from stdin, one per line.
type agentShell struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
	mu    sync.Mutex
}

func startAgentShell(t *testing.T, path string) *agentShell {
	t.Helper()
	cmd := exec.Command(path, "-c", `while read -r line; do eval "$line"; done`)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentShell{cmd: cmd, stdin: in, lines: bufio.NewScanner(out)}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	return a
}

func (a *agentShell) pid() uint32 { return uint32(a.cmd.Process.Pid) }

func (a *agentShell) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(a.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// readLine waits for the agent to print a line (a handshake).
func (a *agentShell) readLine(t *testing.T) string {
	t.Helper()
	if !a.lines.Scan() {
		t.Fatalf("agent output ended: %v", a.lines.Err())
	}
	return a.lines.Text()
}

func TestRootLoad(t *testing.T) {
	h := startSensor(t, Config{Scope: ScopeAll})
	m := marker(t)
	mustRun(t, exec.Command("/bin/true", m))
	ev, _ := h.untilExecArg(m)
	if ev.Exec.Exe != "/usr/bin/true" {
		t.Errorf("exe %q", ev.Exec.Exe)
	}
	_ = runtime.NumCPU
}
