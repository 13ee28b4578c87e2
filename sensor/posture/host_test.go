package posture

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestHost runs every built-in check against the machine the test runs on:
// each must return a result with a detail, whatever the host's posture.
// Session membership is "nobody"; the sensor's programs are not loaded
// here, so sensor_attached is left to the kernel package's root test.
func TestHost(t *testing.T) {
	s, err := New(Config{InSession: func(int32) bool { return false }}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	p := s.Sample(context.Background())
	if p.SampledAt.Before(before.UTC().Add(-time.Second)) {
		t.Errorf("sampled_at %v is before the sample started", p.SampledAt)
	}
	want := len(CheckNames()) - 1 // sensor_attached
	if _, err := os.Stat(DefaultManagedSettings); err != nil {
		want-- // agent_hooks runs by default only where the hook was installed
	}
	if len(p.Checks) != want {
		t.Fatalf("got %d results, want %d", len(p.Checks), want)
	}
	nfail := 0
	for _, name := range s.Checks() {
		r, found := p.Checks[name]
		if !found {
			t.Errorf("no result for %s", name)
			continue
		}
		if r.Detail == "" || r.Detail == "no detail" {
			t.Errorf("%s: empty detail", name)
		}
		if !r.OK {
			nfail++
		}
		t.Logf("%-27s ok=%-5t %s", name, r.OK, r.Detail)
	}
	if p.Compliant != (nfail == 0) || len(p.Failed) != nfail {
		t.Errorf("compliant=%t failed=%v, but %d checks failed", p.Compliant, p.Failed, nfail)
	}
	if got := s.Latest(); got == nil || !got.SampledAt.Equal(p.SampledAt) {
		t.Errorf("Latest() = %v, want the sample just taken", got)
	}
}
