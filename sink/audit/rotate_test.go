package audit

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink"
)

// Through the real file sink rotated at 64 KiB, a checkpoint asked for
// before each rotation (as the pipeline does after every write) ends every
// rotated file, and the files together verify (ECDSA P-256 keys here).
func TestCheckpointBeforeRotation(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "events.jsonl")
	s, _, err := Open(filepath.Join(dir, "audit"), AlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain("run1", Zero, s)
	const max = 64 << 10
	c.MirrorRotation(0, max)
	sk, err := sink.New(sink.Config{Output: out, File: sink.FileConfig{MaxBytes: max, Retain: 9},
		Wrap: func(e sink.Encoder) sink.Encoder { return c.Wrap(e) }}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	write := func(ev *event.Event) {
		seq++
		ev.Schema, ev.Seq, ev.Time = event.Schema, seq, time.Date(2026, 12, 3, 6, 0, 0, int(seq), time.UTC)
		ev.EventID = event.NewEventID(ev.Time, "run1", seq)
		if ev.Host == nil && ev.Kind != event.KindSensorCheckpoint {
			ev.Host = testHost
		}
		if err := sk.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 150; i++ {
		write(&event.Event{Kind: event.KindProcessExec, Process: &event.Process{ExecID: "e", Exe: "/usr/bin/true",
			Argv: []string{"true", string(bytes.Repeat([]byte("x"), 1500))}}})
		if c.NeedCheckpoint() {
			write(&event.Event{Kind: event.KindSensorCheckpoint, Checkpoint: &event.Checkpoint{Reason: event.CheckpointRotation}})
		}
	}
	write(&event.Event{Kind: event.KindSensorCheckpoint, Checkpoint: &event.Checkpoint{Reason: event.CheckpointStop}})
	if err := sk.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(out + ".*")
	if len(files) < 2 {
		t.Fatalf("%d rotated files, want several", len(files))
	}
	var all [][]byte
	for _, f := range append(files, out) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f != out && int64(len(data)) > max {
			t.Errorf("%s is %d bytes, over %d", filepath.Base(f), len(data), max)
		}
		lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
		if last := lines[len(lines)-1]; !bytes.Contains(last, []byte(`"kind":"sensor.checkpoint"`)) {
			t.Errorf("%s does not end with a checkpoint", filepath.Base(f))
		}
		all = append(all, lines...)
	}
	rep := verify(t, rootKey(t, filepath.Join(dir, "audit")), all)
	if rep.Status() != Verified || rep.Covered != len(all) {
		t.Fatalf("status %v, covered %d of %d", rep.Status(), rep.Covered, len(all))
	}
}
