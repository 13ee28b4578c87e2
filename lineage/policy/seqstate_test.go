package policy

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// The state file carries the last seq given out and the last made durable
// to the next run, which numbers after the first and reports the gap.
func TestSeqStateAcrossRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), SeqStateName)
	st, prev, err := OpenSeqState(path)
	if err != nil {
		t.Fatal(err)
	}
	if prev.Found {
		t.Fatalf("a new file reports a previous run: %+v", prev)
	}
	if _, _, err := OpenSeqState(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second open while in use: %v", err)
	}
	seq := NewSequencerAfter("a", prev.Stamped, st)
	t0 := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	for i := range 10 {
		ev := &event.Event{Time: t0.Add(time.Duration(i) * time.Second)}
		seq.Stamp(ev)
		if ev.Seq <= 7 {
			st.Durable(ev.Seq, ev.Time)
		}
	}
	// Not closed: as after a SIGKILL, the mapping is all there is.
	st2, prev, err := reopen(t, st, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if prev.Stamped != 10 || prev.Durable != 7 {
		t.Fatalf("previous run %+v, want stamped 10, durable 7", prev)
	}
	l := prev.Lost(t0.Add(time.Hour))
	if l == nil || l.Loss.FirstSeq != 8 || l.Loss.LastSeq != 10 || l.Loss.Count != 3 ||
		!l.Loss.From.Equal(t0.Add(6*time.Second)) || !l.Loss.To.Equal(t0.Add(9*time.Second)) {
		t.Fatalf("crash loss %+v", l)
	}
	next := NewSequencerAfter("b", prev.Stamped, st2)
	ev := &event.Event{Time: t0}
	next.Stamp(ev)
	if ev.Seq != 11 {
		t.Errorf("next run starts at seq %d, want 11", ev.Seq)
	}
	// A sink that finds more of the previous run on disk raises its mark.
	st2.Durable(9, t0.Add(8*time.Second))
	if p := st2.Previous(); p.Durable != 9 {
		t.Errorf("previous durable %d after the sink reported 9", p.Durable)
	}
}

// reopen drops st's lock without syncing or unmapping it cleanly, as a
// killed process's would be, and opens path again.
func reopen(t *testing.T, st *SeqState, path string) (*SeqState, PreviousRun, error) {
	t.Helper()
	syscall.Munmap(st.m)
	st.f.Close()
	return OpenSeqState(path)
}

func TestSeqStateRejectsAForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), SeqStateName)
	os.WriteFile(path, []byte("not a state file at all, longer than forty bytes"), 0o600)
	if _, _, err := OpenSeqState(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("foreign file: %v", err)
	}
}
