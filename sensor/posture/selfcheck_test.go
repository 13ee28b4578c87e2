package posture

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// sensor_attached fails while the sensor's self-check reports a problem,
// even with every program attached again, and passes once it clears.
func TestSensorAttachedFailsOnSelfCheck(t *testing.T) {
	attached := func() ([]string, []string, error) { return []string{"handle_exec"}, []string{"handle_exec"}, nil }
	problem := "programs found detached or not firing: handle_exec; attached again, until the next self-check confirms it"
	c := SensorAttached{Attached: attached, SelfCheck: func() string { return problem }}
	if r := c.Run(context.Background(), "/"); r.OK || !strings.HasPrefix(r.Detail, "self-check: programs found detached") {
		t.Errorf("with a finding: %+v", r)
	}
	problem = ""
	if r := c.Run(context.Background(), "/"); !r.OK {
		t.Errorf("repaired: %+v", r)
	}
}

// Resample makes Run sample at once, not at its next tick.
func TestResampleSamplesNow(t *testing.T) {
	mu := &sync.Mutex{}
	res := map[string]Result{"a": {OK: true}}
	s := newSampler(Config{Interval: time.Hour, Root: "/"}, []Check{fakeCheck{"a", mu, res}}, nil, nil)
	s.newTicker = func(time.Duration) (<-chan time.Time, func()) { return make(chan time.Time), func() {} }
	got := make(chan Report, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(k Report, _ *Sample) { got <- k }) }()
	defer func() { cancel(); <-done }()
	if k := <-got; k != Sampled {
		t.Fatalf("first report %v", k)
	}
	mu.Lock()
	res["a"] = Result{OK: false, Detail: "broken"}
	mu.Unlock()
	s.Resample()
	for _, want := range []Report{Sampled, Changed} {
		select {
		case k := <-got:
			if k != want {
				t.Errorf("report %v, want %v", k, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %v after Resample", want)
		}
	}
}
