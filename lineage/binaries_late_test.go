package lineage

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// An exec whose hash was late goes out with verdict error and partial
// "binary"; once the hash completes, a process.binary event for the same
// exec_id carries it.
func TestLateHashFollowUp(t *testing.T) {
	r := newRig(t, Config{EnrichWait: 50 * time.Millisecond, PendingTimeout: 20 * time.Millisecond}, nil)
	release := make(chan struct{})
	r.bins.block = map[string]chan struct{}{"/usr/bin/slow": release}
	seedBase(r)
	in := make(chan sensor.Event, 4)
	out := make(chan *event.Event, 64)
	in <- claudeRoot(1000 * ms)
	in <- execEv(key(60, 600), key(50, 500), 2001*ms, sess, "/usr/bin/slow", "slow")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.e.Run(ctx, in, out) }()
	next := func() *event.Event {
		select {
		case ev := <-out:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
			return nil
		}
	}
	var exec *event.Event
	for exec == nil {
		if ev := next(); ev.Kind == event.KindProcessExec && ev.Process.Exe == "/usr/bin/slow" {
			exec = ev
		}
	}
	if exec.Process.Binary.Verdict != event.VerdictError || !slices.Contains(exec.Partial, event.PartialBinary) {
		t.Fatalf("late exec %+v %v", exec.Process.Binary, exec.Partial)
	}
	close(release)
	ev := next()
	if r.e.Stats().BinaryFollowUps != 1 {
		t.Errorf("follow-ups %d", r.e.Stats().BinaryFollowUps)
	}
	if ev.Kind != event.KindProcessBinary || ev.Process.ExecID != exec.Process.ExecID || ev.Process.Binary == nil ||
		ev.Process.Binary.SHA256 != "sha-of-/usr/bin/slow" || ev.Agent == nil || ev.Agent.RootExecID != exec.Agent.RootExecID {
		t.Fatalf("follow-up %+v %+v", ev, ev.Process)
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// ctxBins blocks every inspection until its context ends.
type ctxBins struct{ fakeBins }

func (b *ctxBins) Inspect(ctx context.Context, req BinaryRequest) *event.Binary {
	<-ctx.Done()
	return errorBinary(req, ctx.Err().Error())
}

// Distinct files that never finish hashing neither start a goroutine each
// without bound nor keep one forever.
func TestInspectionsBounded(t *testing.T) {
	b := newBinaries(&ctxBins{})
	b.wait = 200 * time.Millisecond
	g0 := runtime.NumGoroutine()
	const n = 5000
	var futures []*binFuture
	for i := range n {
		futures = append(futures, b.inspect(BinaryRequest{PID: 1, Path: fmt.Sprintf("/tmp/f%d", i), Stat: sensor.FileStat{Inode: uint64(i)}, HasStat: true}))
	}
	g := runtime.NumGoroutine() - g0
	t.Logf("%d distinct stuck inspections: %d goroutines", n, g)
	if g > maxInflight+8 {
		t.Errorf("%d goroutines for %d inspections", g, n)
	}
	if b.refused.Load() != n-maxInflight {
		t.Errorf("refused %d", b.refused.Load())
	}
	for _, f := range futures {
		select {
		case <-f.done:
		case <-time.After(5 * time.Second):
			t.Fatal("an inspection waits past its bound")
		}
	}
	time.Sleep(50 * time.Millisecond)
	if g := runtime.NumGoroutine() - g0; g > 8 {
		t.Errorf("%d goroutines left", g)
	}
}
