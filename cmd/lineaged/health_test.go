package main

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// An idle host: the heartbeat never moves, no event is written, and the
// probes still reach the sink stage, so the pipeline is alive.
func TestLivenessIdleHostStaysAlive(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLiveness(clk.now)
	arrived := make(chan *event.Event, 1)
	for range 100 {
		clk.add(10 * time.Second)
		l.sendProbe(func() (uint64, error) { return 7, nil }, func(ev *event.Event) { arrived <- ev })
		if !l.takeProbe(<-arrived) {
			t.Fatal("the probe was not recognised")
		}
		if why := l.stalled(30 * time.Second); why != "" {
			t.Fatalf("idle host stalled: %s", why)
		}
	}
}

// Probes that never arrive stall the pipeline once the limit passes; only
// one is in flight at a time.
func TestLivenessStallsWhenProbesDoNotArrive(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLiveness(clk.now)
	sent := 0
	var mu sync.Mutex
	done := make(chan struct{}, 10)
	for range 4 {
		clk.add(10 * time.Second)
		l.sendProbe(func() (uint64, error) { return 1, nil }, func(*event.Event) { mu.Lock(); sent++; mu.Unlock(); done <- struct{}{} })
	}
	<-done
	if why := l.stalled(30 * time.Second); !strings.Contains(why, "has not advanced") {
		t.Fatalf("stalled = %q after 40s without a probe", why)
	}
	mu.Lock()
	defer mu.Unlock()
	if sent != 1 {
		t.Fatalf("%d probes in flight, want 1", sent)
	}
	l2 := newLiveness(clk.now)
	l2.sendProbe(func() (uint64, error) { return 0, errors.New("map closed") }, func(*event.Event) {})
	if why := l2.stalled(30 * time.Second); !strings.Contains(why, "heartbeat cannot be read") {
		t.Fatalf("stalled = %q with an unreadable heartbeat", why)
	}
}

// A run of failures turns the sink unhealthy after sinkFailingLimit and
// ends once failures stop for that long.
func TestLivenessSinkFailing(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLiveness(clk.now)
	l.failed(errors.New("ENOSPC"))
	if why := l.sinkFailing(); why != "" {
		t.Fatalf("one failure: %q", why)
	}
	for range 6 {
		clk.add(time.Second)
		l.failed(errors.New("ENOSPC"))
	}
	if why := l.sinkFailing(); !strings.Contains(why, "ENOSPC") {
		t.Fatalf("6s of failures: %q", why)
	}
	clk.add(sinkFailingLimit + time.Second)
	if why := l.sinkFailing(); why != "" {
		t.Fatalf("after a quiet spell: %q", why)
	}
}
