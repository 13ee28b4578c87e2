package claude

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Sixty crafted 3 MB tool_use records (each under the line bound) must not
// be kept: a call keeps digests and a prefix of its command, so the
// transcript's heap stays small while a process can still bind to the
// whole command.
func TestTranscriptCraftedLinesKeepHeapBounded(t *testing.T) {
	before := heapInUse()
	tr := NewTranscript("unused", 0)
	var last string
	for i := range 60 {
		cmd := fmt.Sprintf("echo %d ", i) + strings.Repeat("A", 3<<20)
		last = cmd
		tr.Feed([]byte(fmt.Sprintf(`{"type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","id":"toolu_%d","name":"Bash","input":{"command":"`, i) + cmd + `"}}]}}` + "\n"))
	}
	after := heapInUse()
	grew := int64(after) - int64(before)
	t.Logf("heap grew by %d KiB for 60 lines of 3 MiB", grew>>10)
	if grew > 8<<20 {
		t.Errorf("60 crafted 3 MB lines kept %d MiB of heap", grew>>20)
	}
	calls := tr.Calls()
	if len(calls) != 60 {
		t.Fatalf("%d calls kept, want 60", len(calls))
	}
	sum, trim := payloadSums(last)
	if c := calls[59]; !c.matches(sum, trim) || c.CommandLen != len(last) || len(c.Command) != MaxCommandPrefix {
		t.Errorf("the last call does not match its whole command: len %d prefix %d", c.CommandLen, len(c.Command))
	}
	runtime.KeepAlive(tr)
}

// The shared budget bounds what many transcripts keep together.
func TestTranscriptRetainBudgetShared(t *testing.T) {
	b := NewRetainBudget(64 << 10)
	var trs []*Transcript
	for s := range 8 {
		tr := NewTranscript("unused", 0)
		tr.SetBudget(b)
		for i := range 200 {
			tr.Feed([]byte(fmt.Sprintf(`{"type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","id":"t%d_%d","name":"Read","input":{"file_path":"/%s"}}]}}`+"\n", s, i, strings.Repeat("p", 400))))
		}
		trs = append(trs, tr)
	}
	if b.Used() > b.Limit() {
		t.Errorf("used %d of %d", b.Used(), b.Limit())
	}
	var dropped uint64
	for _, tr := range trs {
		dropped += tr.Stats().Dropped
	}
	if dropped == 0 {
		t.Error("nothing dropped or counted")
	}
	for _, tr := range trs {
		tr.Close()
	}
	if b.Used() != 0 {
		t.Errorf("closed transcripts still hold %d bytes", b.Used())
	}
	// A transcript polled after its session was forgotten keeps nothing.
	trs[0].Feed([]byte(toolLine + "\n"))
	if b.Used() != 0 || len(trs[0].Calls()) != 0 {
		t.Errorf("a closed transcript kept %d bytes", b.Used())
	}
}

// pollWithin runs Poll and fails the test if it takes longer than d.
func pollWithin(t *testing.T, tr *Transcript, ctx context.Context, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tr.Poll(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("Poll still running after %v", d)
		return nil
	}
}

// A 1 TiB sparse transcript costs its writer nothing; reading it would
// block attribution for hours. It is refused at once, and stays refused.
func TestTranscriptSparseRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.jsonl")
	if err := os.WriteFile(p, []byte(toolLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 1<<40); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	tr := NewTranscript(p, 0)
	defer tr.Close()
	err := pollWithin(t, tr, context.Background(), 2*time.Second)
	if !errors.Is(err, errRefused) {
		t.Fatalf("1 TiB sparse transcript: %v", err)
	}
	if err := pollWithin(t, tr, context.Background(), time.Second); !errors.Is(err, errRefused) {
		t.Errorf("second poll: %v", err)
	}
	if st := tr.Stats(); st.Refused != 1 {
		t.Errorf("stats %+v", st)
	}
	// A hole made after the file was accepted is refused too.
	q := filepath.Join(t.TempDir(), "q.jsonl")
	os.WriteFile(q, []byte(toolLine+"\n"), 0o600)
	tq := NewTranscript(q, 0)
	defer tq.Close()
	if err := tq.Poll(context.Background()); err != nil || len(tq.Calls()) != 1 {
		t.Fatalf("%v %d", err, len(tq.Calls()))
	}
	os.Truncate(q, 64<<20)
	if err := pollWithin(t, tq, context.Background(), 2*time.Second); !errors.Is(err, errRefused) {
		t.Errorf("grown sparse: %v", err)
	}
}

// One poll reads at most its byte budget, and none once ctx ended.
func TestTranscriptPollBudgetAndContext(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.jsonl")
	var b strings.Builder
	for i := 0; b.Len() < 4<<20; i++ {
		b.WriteString(strings.ReplaceAll(toolLine, "toolu_1", fmt.Sprintf("toolu_%d", i)) + "\n")
	}
	os.WriteFile(p, []byte(b.String()), 0o600)
	tr := NewTranscript(p, 0)
	tr.SetGuard(TranscriptGuard{PollBytes: 1 << 20})
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Poll(ctx); !errors.Is(err, context.Canceled) || tr.off != 0 {
		t.Fatalf("cancelled poll: %v, read %d", err, tr.off)
	}
	if err := tr.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tr.off != 1<<20 || tr.Stats().Budgeted != 1 {
		t.Fatalf("one poll read %d bytes (budget 1 MiB), %+v", tr.off, tr.Stats())
	}
	for i := 0; i < 10 && tr.off < int64(b.Len()); i++ {
		tr.Poll(context.Background())
	}
	if tr.off != int64(b.Len()) {
		t.Errorf("read %d of %d", tr.off, b.Len())
	}
}

// The guard: the file must be the session user's, under its configuration
// directory's projects/, reached with no symlink in any component, and
// read through the agent's root.
func TestTranscriptGuard(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "home", ".claude")
	proj := filepath.Join(cfg, "projects", "-w")
	os.MkdirAll(proj, 0o700)
	good := filepath.Join(proj, sessUUID+".jsonl")
	os.WriteFile(good, []byte(toolLine+"\n"), 0o600)
	elsewhere := filepath.Join(dir, "elsewhere")
	os.MkdirAll(elsewhere, 0o700)
	os.WriteFile(filepath.Join(elsewhere, sessUUID+".jsonl"), []byte(toolLine+"\n"), 0o600)
	os.Symlink(elsewhere, filepath.Join(cfg, "projects", "-link"))
	other := filepath.Join(dir, "other", ".claude", "projects", "-w")
	os.MkdirAll(other, 0o700)
	os.WriteFile(filepath.Join(other, sessUUID+".jsonl"), []byte(toolLine+"\n"), 0o600)
	owned := filepath.Join(proj, "a"+sessUUID[1:]+".jsonl")
	os.WriteFile(owned, []byte(toolLine+"\n"), 0o600)
	if err := os.Chown(owned, 4242, 4242); err != nil {
		t.Skipf("chown: %v", err)
	}
	uid := uint32(os.Geteuid())
	g := TranscriptGuard{Root: "/", ConfigDir: cfg, UID: uid, HasUID: true}
	for _, c := range []struct {
		name, path string
		g          TranscriptGuard
		ok         bool
	}{
		{"own transcript", good, g, true},
		{"through the agent's root", strings.TrimPrefix(good, dir), TranscriptGuard{Root: dir, ConfigDir: strings.TrimPrefix(cfg, dir), UID: uid, HasUID: true}, true},
		{"symlinked project directory", filepath.Join(cfg, "projects", "-link", sessUUID+".jsonl"), g, false},
		{"another configuration directory", filepath.Join(other, sessUUID+".jsonl"), g, false},
		{"dot-dot out of it", filepath.Join(cfg, "projects", "-w", "..", "..", "..", "other", ".claude", "projects", "-w", sessUUID+".jsonl"), g, false},
		{"another user's file", owned, g, false},
		{"outside the root given", "/" + filepath.Base(dir) + "/x.jsonl", TranscriptGuard{Root: elsewhere}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := NewTranscript(c.path, 0)
			tr.SetGuard(c.g)
			defer tr.Close()
			err := tr.Poll(context.Background())
			if c.ok != (err == nil) || (c.ok && len(tr.Calls()) != 1) {
				t.Fatalf("poll %s: %v, %d calls", c.path, err, len(tr.Calls()))
			}
			if !c.ok && len(tr.Calls()) != 0 {
				t.Error("read a refused file")
			}
		})
	}
}
