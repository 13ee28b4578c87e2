//go:build linux

// Package kerneltest runs the kernel sensor for tests outside its own
// package (which cannot import this one: it imports sensor/kernel).
package kerneltest

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// Run loads the sensor with cfg (as root) and runs it until the test
// ends, when it is stopped and closed; out, of room for buffer events,
// receives its events.
func Run(t *testing.T, cfg kernel.Config, buffer int) (*kernel.Sensor, chan sensor.Event) {
	t.Helper()
	testutil.RequireRoot(t, "to load BPF programs")
	s, err := kernel.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	out := make(chan sensor.Event, buffer)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, out
}
