//go:build linux

// Package exec is the exec and membership part of the adversarial suite
// (tests/evasion): a session member, or an outsider that inherits a dead
// member's pid, tries to make the sensor misreport who ran what. Root, real
// BPF: the sensor is started through its public API; agents are stand-ins
// at the path Claude Code's native installer uses (testutil.AgentPath),
// started before the sensor so that only the /proc seed can find them.
package exec

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[2:]))
	}
	testutil.Main(m)
}

// guard only stops a hung test; each waits on a marker record.
const guard = 60 * time.Second

// events collects every record the sensor delivers.
type events struct {
	mu  sync.Mutex
	all []sensor.Event
}

func (e *events) snapshot() []sensor.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]sensor.Event(nil), e.all...)
}

// execsOf lists the exec records of pid.
func (e *events) execsOf(pid uint32) []sensor.Event {
	var out []sensor.Event
	for _, ev := range e.snapshot() {
		if ev.Exec != nil && ev.Proc.PID == pid {
			out = append(out, ev)
		}
	}
	return out
}

// runSensor starts the sensor in its default scope (session members only).
func runSensor(t *testing.T, cfg kernel.Config) (*kernel.Sensor, *events) {
	t.Helper()
	testutil.RequireRoot(t, "to load BPF programs")
	s, err := kernel.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	out := make(chan sensor.Event, 1<<16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	r := &events{}
	go func() {
		for ev := range out {
			r.mu.Lock()
			r.all = append(r.all, ev)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	})
	return s, r
}
