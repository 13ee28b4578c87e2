//go:build linux

package tamper

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/sensor/posture"
	"github.com/lineaged/lineaged/tests/testutil"
)

// TestRootSelfCheckFailsPosture: the sensor's programs are detached (the
// link pins removed by a member, the link descriptors closed in the
// sensor). The self-check repairs them and the posture check
// sensor_attached turns failing at once (a sample taken on the finding,
// not at the sampler's next tick, an hour away), naming the self-check's
// finding, and passes again once a later self-check finds the repair
// holding. Between the two, the posture is not compliant.
func TestRootSelfCheckFailsPosture(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	path := pinPath(t)
	ls := startKernel(t, kernel.Config{PinPath: path, ProcessOnly: true, SelfCheckInterval: 200 * time.Millisecond})
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: uint32(os.Getpid()), StartNs: 10_000_000}, Agent: sensor.AgentClaudeCode}

	sampler, err := posture.New(posture.Config{Interval: time.Hour, Checks: []string{posture.CheckSensorAttached},
		Attached: ls.s.AttachedPrograms, SelfCheck: ls.s.SelfCheckProblem}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls.s.OnSelfCheckChange(sampler.Resample)
	var mu sync.Mutex
	var changes []*posture.Sample
	var samples int
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- sampler.Run(ctx, func(kind posture.Report, p *posture.Sample) {
			mu.Lock()
			defer mu.Unlock()
			samples++
			if kind == posture.Changed {
				changes = append(changes, p)
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	testutil.WaitFor(t, 5*time.Second, "the first sample", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return samples > 0
	}, nil)
	if l := sampler.Latest(); l == nil || !l.Compliant {
		t.Fatalf("before: %+v, want compliant", l)
	}

	rmPins := exec.Command("/bin/sh", "-c", `read go; rm -f "$0"/link_*`, path)
	runMember(t, ls.s, ref, rmPins)
	closeLinkFDs(t)
	tamperOp(t, ls, sensor.TamperDetached)

	describe := func() string {
		mu.Lock()
		defer mu.Unlock()
		var b strings.Builder
		for _, c := range changes {
			fmt.Fprintf(&b, "compliant=%v failed=%v %s\n", c.Compliant, c.Failed, c.Checks[posture.CheckSensorAttached].Detail)
		}
		return b.String()
	}
	// The repair is confirmed once the kernel heartbeat moves again: some
	// exec must run (a matrix guest is otherwise idle).
	testutil.WaitFor(t, 30*time.Second, "a failing sample, then a passing one", func() bool {
		_ = exec.Command("/bin/true").Run()
		mu.Lock()
		defer mu.Unlock()
		return len(changes) >= 2
	}, describe)
	mu.Lock()
	bad, good := changes[0], changes[1]
	mu.Unlock()
	r := bad.Checks[posture.CheckSensorAttached]
	if bad.Compliant || len(bad.Failed) != 1 || bad.Failed[0] != posture.CheckSensorAttached ||
		!strings.Contains(r.Detail, "self-check: programs found detached or not firing") {
		t.Errorf("after the detach: %s", describe())
	}
	if !good.Compliant || !good.Checks[posture.CheckSensorAttached].OK {
		t.Errorf("after the repair: %s", describe())
	}
}
