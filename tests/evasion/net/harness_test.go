//go:build linux && amd64

// Package net is the network part of the adversarial suite: each test runs
// one evasion technique inside an agent session (a member added to the
// kernel's session map, as tests/denyexec does), with the real BPF
// programs, and asserts what the sensor reports for it.
package net

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// helperEnv selects a technique when the test binary runs as the member.
const helperEnv = "LINEAGED_NETEV_HELPER"

// TestMain runs the member's technique when asked to, else the tests (with
// RLIMIT_MEMLOCK lifted for older kernels).
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
	testutil.Main(m)
}

// guard only turns a hang into a failure; a test ends on the member's exit.
const guard = 60 * time.Second

// env is a running sensor and its events.
type env struct {
	s   *kernel.Sensor
	out chan sensor.Event
	ref sensor.SessionRef
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t, "to load BPF programs")
	s, err := kernel.New(kernel.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := &env{s: s, out: make(chan sensor.Event, 4096),
		ref: sensor.SessionRef{Root: sensor.ProcKey{PID: uint32(os.Getpid()), StartNs: 10_000_000}, Agent: sensor.AgentClaudeCode}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, e.out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// result is what a member reports on stdout: facts the test checks the
// sensor's records against.
type result struct {
	Real  string            `json:"real,omitempty"`  // the destination the kernel used
	Decoy string            `json:"decoy,omitempty"` // what the caller's memory said at exit
	Errno int               `json:"errno"`           // of the technique's call
	Extra map[string]string `json:"extra,omitempty"`
}

// runMember starts the test binary as a session member running mode,
// lets it go once it is in the session map, and returns its report and
// every record of its pid up to its exit.
func (e *env) runMember(t *testing.T, mode string, args ...string) (result, []sensor.Event) {
	t.Helper()
	return e.runMemberOf(t, e.ref, mode, args...)
}

// runMemberOf is runMember in the session ref.
func (e *env) runMemberOf(t *testing.T, ref sensor.SessionRef, mode string, args ...string) (result, []sensor.Event) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	// No asynchronous preemption: the runtime's SIGURG would interrupt
	// the member's blocking calls (EINTR) at moments of its choosing.
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "GODEBUG=asyncpreemptoff=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	if err := e.s.AddSessionMembers(map[uint32]sensor.SessionRef{pid: ref}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("member %s: %v\n%s", mode, err, stderr.String())
	}
	var r result
	if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil {
		t.Fatalf("member %s report %q: %v\n%s", mode, stdout.String(), err, stderr.String())
	}
	var evs []sensor.Event
	timer := time.NewTimer(guard)
	defer timer.Stop()
	// Where tracepoint callbacks can be preempted (7.3), the kernel may
	// skip the exit program's run; the sensor then reports a skipped
	// exit run (sensor.loss where "skipped"), and the test takes the
	// records it has after a short wait instead of the exit record.
	var grace <-chan time.Time
	for {
		select {
		case <-grace:
			t.Logf("member %d (%s): no exit record, and the sensor reported a skipped run of the exit program", pid, mode)
			return r, evs
		case ev := <-e.out:
			if l := ev.Loss; l != nil && l.Where == "skipped" && l.Of == sensor.KindExit && grace == nil {
				grace = time.After(2 * time.Second)
			}
			if ev.Proc.PID != pid {
				continue
			}
			if ev.Exit != nil {
				return r, evs
			}
			evs = append(evs, ev)
		case <-timer.C:
			t.Fatalf("no exit record of member %d (%s) within %s; %d records; sensor counters %+v, skipped program runs %v", pid, mode, guard, len(evs), e.s.Stats(), e.s.MissedRuns())
		}
	}
}

// netRecords keeps the network records.
func netRecords(evs []sensor.Event) []*sensor.Connect {
	var r []*sensor.Connect
	for _, ev := range evs {
		if ev.Connect != nil {
			r = append(r, ev.Connect)
		}
	}
	return r
}

func describe(cs []*sensor.Connect) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  %s %+v\n", c.Op, *c)
	}
	return b.String()
}

// waitGo blocks the member until the test has put it in the session.
func waitGo() {
	var b [3]byte
	io.ReadFull(os.Stdin, b[:])
}

func report(r result) int {
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

func runHelper(mode string, args []string) int {
	waitGo()
	var r result
	var err error
	switch mode {
	case "race":
		r, err = raceConnect(args[0])
	case "unix":
		r, err = unixConnects(args)
	case "send":
		r, err = addressedSends(args)
	case "listen":
		r, err = listens(args)
	case "ia32":
		r, err = ia32Calls(args)
	case "park":
		r, err = park(args)
	case "connect":
		r, err = connectTCP(args)
	case "open":
		r, err = openFile(args)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return report(r)
}
