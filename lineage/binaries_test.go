package lineage

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

func TestHashingNeverStalls(t *testing.T) {
	r := newRig(t, Config{EnrichWait: 50 * time.Millisecond}, nil)
	r.bins.block = map[string]chan struct{}{"/usr/bin/stuck": make(chan struct{})}
	seedBase(r)
	got := r.run(
		claudeRoot(1000*ms),
		execEv(key(60, 600), key(50, 500), 2001*ms, sess, "/usr/bin/stuck", "stuck"),
	)
	b := got[1].Process.Binary
	if b == nil || b.Verdict != event.VerdictError || !strings.Contains(b.Reason, "did not finish") || b.Inode != uint64(len("/usr/bin/stuck")) {
		t.Errorf("stuck binary = %+v", b)
	}
	if !slices.Contains(got[1].Partial, event.PartialBinary) {
		t.Errorf("partial = %v", got[1].Partial)
	}
	if s := r.e.Stats(); s.HashWaitTimeouts != 1 {
		t.Errorf("hash wait timeouts = %d", s.HashWaitTimeouts)
	}
	close(r.bins.block["/usr/bin/stuck"])
}

// blockingBins blocks background requests until released.
type blockingBins struct {
	fakeBins
	bg chan struct{}
}

func (b *blockingBins) Inspect(ctx context.Context, req BinaryRequest) *event.Binary {
	if req.Background {
		<-b.bg
	}
	return b.result(req)
}

func TestLiveHashNotBehindSeed(t *testing.T) {
	bins := &blockingBins{bg: make(chan struct{})}
	defer close(bins.bg)
	e, err := New(Config{EnrichWait: 200 * time.Millisecond}, Deps{
		Host: fakeHost{}, Boot: fakeBoot{}, Proc: &fakeProcs{}, Binaries: bins, Users: fakeUsers{},
	}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, e: e}
	seedBase(r) // every seed hash is stuck
	// claude's exec of bash shares bash's binary identity with the seed.
	ev := execEv(key(50, 500), key(20, 200), 1000*ms, sess, "/usr/bin/bash", "bash")
	ev.Exec.Recognised = sensor.AgentClaudeCode
	got := r.run(ev)
	if b := got[0].Process.Binary; b == nil || b.SHA256 != "sha-of-/usr/bin/bash" {
		t.Errorf("live binary = %+v", b)
	}
	// The stuck seed hashes are bounded: the ancestors say so.
	if a := got[0].Ancestry[0].Binary; a == nil || a.Verdict != event.VerdictError || !strings.Contains(a.Reason, "did not finish") {
		t.Errorf("stuck ancestor binary = %+v", a)
	}
}
