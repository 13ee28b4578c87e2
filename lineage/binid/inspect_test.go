package binid

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
)

// Inspect answers a repeat from its verdict cache, and when a cache is
// full it starts over rather than grow: the next answers are recomputed
// and still right.
func TestInspectCachesStayBounded(t *testing.T) {
	cp := filepath.Join(t.TempDir(), "sleep")
	copyFile(t, "/usr/bin/sleep", cp, []byte("x"))
	_, p1 := running(t, "/bin/sleep", "30")
	_, p2 := running(t, cp, "30")
	ctx := context.Background()

	in := newInspector(t, Config{MaxCached: 1}, nil, nil)
	b1 := in.Inspect(ctx, request(p1))
	if b1.Verdict != event.VerdictUnsigned || b1.SHA256 != sha256File(t, "/usr/bin/sleep") {
		t.Fatalf("first inspect = %+v", b1)
	}
	if again := in.Inspect(ctx, request(p1)); again != b1 {
		t.Fatalf("repeat not answered from the verdict cache: %+v", again)
	}
	b2 := in.Inspect(ctx, request(p2))
	if b2.SHA256 != sha256File(t, cp) {
		t.Fatalf("second binary = %+v", b2)
	}
	if _, ok := in.Cached(request(p1)); ok {
		t.Fatal("caches of one entry still hold the first binary")
	}
	if again := in.Inspect(ctx, request(p1)); again == b1 || *again != *b1 {
		t.Fatalf("after the reset: %+v, want a fresh copy of %+v", again, b1)
	}

	lim := newInspector(t, Config{MaxCached: 1, MaxBytes: 1024}, nil, nil)
	lim.Inspect(ctx, request(p1))
	lim.Inspect(ctx, request(p2))
	if _, ok := lim.Cached(request(p2)); !ok {
		t.Fatal("the newest file over the limit is not remembered")
	}
	if _, ok := lim.Cached(request(p1)); ok {
		t.Fatal("the cache of files over the limit grew past its bound")
	}
}

// Background requests (the /proc seed) take the single background slot
// first, and give up with an error when the caller does before it frees.
func TestInspectBackground(t *testing.T) {
	_, p := running(t, "/bin/sleep", "30")
	in := newInspector(t, Config{}, nil, nil)
	req := request(p)
	req.Background = true
	if b := in.Inspect(context.Background(), req); b.Verdict != event.VerdictUnsigned || b.SHA256 == "" {
		t.Fatalf("background inspect = %+v", b)
	}
	if len(in.bgSem) != 0 || in.sched.free != in.cfg.Workers {
		t.Fatal("background inspect did not release its slots")
	}

	busy := newInspector(t, Config{}, nil, nil)
	busy.bgSem <- struct{}{} // another background hash holds the slot
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := busy.Inspect(ctx, req)
	if b.Verdict != event.VerdictError || !strings.Contains(b.Reason, "hashing not started") {
		t.Fatalf("background inspect with the slot taken and the caller gone = %+v", b)
	}
	if busy.sched.free != busy.cfg.Workers {
		t.Fatal("a worker slot was taken by a request that never started")
	}
}
