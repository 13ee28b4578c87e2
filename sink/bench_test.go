package sink

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

type discardCloser struct{}

func (discardCloser) Write(p []byte) (int, error) { return len(p), nil }
func (discardCloser) Close() error                { return nil }

// BenchmarkFileSink compares, in one run, the file sink writing each event
// with its own write call (as it did before batching) with the buffered
// sink, on a real file, for a ~3 KiB process.exec. The modes take turns in
// blocks of events, so a noisy neighbour slows them alike. It reports
// ns/event for each (encode-only: an in-memory destination, the encoding
// both pay) and the ratios: x-per-event-cost (whole sink) and x-write-cost
// (the cost beyond encoding).
func BenchmarkFileSink(b *testing.B) {
	ev := testevents.New(event.KindProcessExec, 1, "s")
	enc, _ := NewEncoder(FormatNative, Config{}.Native, "")
	open := func(name string, opts writerOptions) *writerSink {
		// Rotated at 16 MiB with one file kept: the run measures writes
		// into the page cache, not the disk's writeback of gigabytes.
		f, err := OpenRotating(filepath.Join(b.TempDir(), name), FileConfig{MaxBytes: 16 << 20, Retain: 1})
		if err != nil {
			b.Fatal(err)
		}
		return newWriterSink(enc, f, newWriterMetrics(nil), "file", opts)
	}
	modes := []struct {
		name string
		s    *writerSink
		took time.Duration
	}{
		{name: "encode-only", s: newWriterSink(enc, discardCloser{}, newWriterMetrics(nil), "file", writerOptions{})},
		{name: "per-event", s: open("per-event.jsonl", writerOptions{flushBytes: -1})},
		{name: "buffered", s: open("buffered.jsonl", writerOptions{})},
	}
	const block = 256
	b.ReportAllocs()
	for b.Loop() {
		for i := range modes {
			m := &modes[i]
			t0 := time.Now()
			for range block {
				if err := m.s.Write(context.Background(), ev); err != nil {
					b.Fatal(err)
				}
			}
			m.took += time.Since(t0)
		}
	}
	ns := map[string]float64{}
	for _, m := range modes {
		if err := m.s.Close(); err != nil {
			b.Fatal(err)
		}
		ns[m.name] = float64(m.took.Nanoseconds()) / float64(b.N*block)
		b.ReportMetric(ns[m.name], "ns/event-"+m.name)
	}
	b.ReportMetric(ns["per-event"]/ns["buffered"], "x-per-event-cost")
	if w := ns["buffered"] - ns["encode-only"]; w > 0 {
		b.ReportMetric((ns["per-event"]-ns["encode-only"])/w, "x-write-cost")
	}
}
