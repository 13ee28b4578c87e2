package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/capture"
	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/lineage/policy/redact"
)

type recSink struct{ recs []capture.Record }

func (r *recSink) Add(t capture.Type, b []byte) error {
	r.recs = append(r.recs, capture.Record{Type: t, Payload: append([]byte(nil), b...)})
	return nil
}
func (r *recSink) Close() error { return nil }

// A tee's snapshot is written as heads and bounded continuations, argv
// redacted, and read back whole; one continuation missing is an error,
// not a replay from a partial table.
func TestSnapshotRecordsSplitAndMerge(t *testing.T) {
	red, err := redact.New(redact.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recSink{}
	c := &captureRec{w: sink, red: red, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	snap := &lineage.Snapshot{LastKt: 42}
	for i := range 3*snapImagesPerRecord + 5 {
		snap.Images = append(snap.Images, lineage.SnapImage{Parent: i - 1, Bin: -1, Loaded: -1, Job: -1,
			Proc: event.Process{PID: uint32(i + 1), Argv: []string{"tool", "--password=hunter2-not-real"}}})
	}
	pol := &policy.Snapshot{Sessions: []string{"root"}}
	for range snapOpenPerRecord + 1 {
		pol.Open = append(pol.Open, policy.SnapSummary{Root: "root", Start: &event.Event{Session: &event.Session{}}})
	}
	// The last stage's part may come first: the two are written on two
	// goroutines.
	c.snapshotOut([]lineage.SnapVerdict{{Root: "root", Method: "unverified"}}, pol)
	c.snapshot(snap)
	if len(sink.recs) != 2+2+4 {
		t.Fatalf("%d records", len(sink.recs))
	}
	for _, r := range sink.recs {
		if len(r.Payload) > capture.MaxRecordBytes {
			t.Fatalf("a %d-byte record", len(r.Payload))
		}
		if strings.Contains(string(r.Payload), "hunter2-not-real") {
			t.Fatal("the snapshot holds the secret argument")
		}
	}
	load := func(recs []capture.Record) *loaded {
		l := &loaded{}
		d := newRecordDecoder()
		for _, r := range recs {
			var it item
			d.decode(r, &it)
			if it.err != nil || it.snap == nil {
				t.Fatalf("decode: %v", it.err)
			}
			l.addSnapshot(it.snap)
		}
		return l
	}
	l := load(sink.recs)
	if err := l.snapshotWhole(); err != nil {
		t.Fatal(err)
	}
	if l.snap.LastKt != 42 || len(l.snap.Images) != len(snap.Images) || l.snap.Images[7].Proc.PID != 8 ||
		len(l.snap.Verdicts) != 1 || len(l.policy.Open) != len(pol.Open) || len(l.policy.Sessions) != 1 {
		t.Fatalf("merged: kt %d, %d images, %d verdicts, %+v", l.snap.LastKt, len(l.snap.Images), len(l.snap.Verdicts), l.policy)
	}
	cut := append(append([]capture.Record{}, sink.recs[:4]...), sink.recs[5:]...)
	if err := load(cut).snapshotWhole(); err == nil || !strings.Contains(err.Error(), "snapshot is incomplete") {
		t.Fatalf("a continuation missing: %v", err)
	}
}
