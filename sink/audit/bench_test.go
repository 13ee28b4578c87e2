package audit

import (
	"context"
	"crypto"
	"crypto/sha256"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/native"
)

// BenchmarkChainCost measures what chaining adds to a compact in-session
// process.exec, in one run, at two depths: the encoder alone (plain vs
// chained) and the whole sink stage, encoding and buffered writes to a
// rotated file (sink.New, unchained vs chained). The four take turns in
// blocks of events, so a noisy neighbour slows them alike. It reports
// ns/event for each, the ns chaining adds and the ratios x-encode-cost and
// x-sink-cost; docs/audit.md relates the added ns to the whole pipeline's
// CPU per event.
func BenchmarkChainCost(b *testing.B) {
	ev := testevents.New(event.KindProcessExec, 1, "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77")
	plain := native.Encoder{}
	s, _, err := Open(b.TempDir(), AlgEd25519)
	if err != nil {
		b.Fatal(err)
	}
	chain := func() *Chain { return NewChain("0123456789abcdef0123456789abcdef", Zero, s) }
	buf := make([]byte, 0, 16<<10)
	var n int
	encode := func(enc Encoder) func() {
		return func() {
			out, err := enc.Append(buf[:0], ev)
			if err != nil {
				b.Fatal(err)
			}
			n = len(out)
		}
	}
	fileSink := func(name string, wrap func(sink.Encoder) sink.Encoder) (func(), sink.Sink) {
		sk, err := sink.New(sink.Config{Output: filepath.Join(b.TempDir(), name), File: sink.FileConfig{MaxBytes: 16 << 20, Retain: 1}, Wrap: wrap},
			nil, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		return func() {
			if err := sk.Write(context.Background(), ev); err != nil {
				b.Fatal(err)
			}
		}, sk
	}
	sinkPlain, s1 := fileSink("plain.jsonl", nil)
	sinkChained, s2 := fileSink("chained.jsonl", func(e sink.Encoder) sink.Encoder { return chain().Wrap(e) })
	modes := []struct {
		name string
		run  func()
		took time.Duration
	}{
		{name: "encode", run: encode(plain)},
		{name: "encode-chained", run: encode(chain().Wrap(plain))},
		{name: "sink", run: sinkPlain},
		{name: "sink-chained", run: sinkChained},
	}
	const block = 256
	b.ReportAllocs()
	for b.Loop() {
		for i := range modes {
			m := &modes[i]
			t0 := time.Now()
			for range block {
				ev.Seq++
				m.run()
			}
			m.took += time.Since(t0)
		}
	}
	for _, sk := range []sink.Sink{s1, s2} {
		if err := sk.Close(); err != nil {
			b.Fatal(err)
		}
	}
	ns := map[string]float64{}
	for _, m := range modes {
		ns[m.name] = float64(m.took.Nanoseconds()) / float64(b.N*block)
		b.ReportMetric(ns[m.name], "ns/event-"+m.name)
	}
	b.ReportMetric(ns["sink-chained"]-ns["sink"], "ns/event-added")
	b.ReportMetric(ns["encode-chained"]/ns["encode"], "x-encode-cost")
	b.ReportMetric(ns["sink-chained"]/ns["sink"], "x-sink-cost")
	b.ReportMetric(float64(n), "bytes/line")
}

// BenchmarkVerify walks a chained stream of compact process.exec lines with
// a checkpoint every 1,000 events; MB/s is the verify throughput.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	s, _, err := Open(dir, AlgEd25519)
	if err != nil {
		b.Fatal(err)
	}
	root, _ := s.Public(false)
	c := NewChain("0123456789abcdef0123456789abcdef", Zero, s)
	enc := c.Wrap(native.Encoder{})
	var lines [][]byte
	var total int64
	for i := 1; i <= 20000; i++ {
		ev := testevents.New(event.KindProcessExec, uint64(i), "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77")
		if i%1000 == 0 || i == 20000 {
			ev = &event.Event{Schema: event.Schema, Seq: uint64(i), Time: ev.Time, Kind: event.KindSensorCheckpoint,
				EventID: event.NewEventID(ev.Time, "i", uint64(i)), Host: ev.Host, Checkpoint: &event.Checkpoint{Reason: event.CheckpointInterval}}
		}
		l, err := enc.Append(nil, ev)
		if err != nil {
			b.Fatal(err)
		}
		lines = append(lines, l)
		total += int64(len(l) + 1)
	}
	b.SetBytes(total)
	b.ResetTimer()
	var verifyTook, hashTook time.Duration
	for b.Loop() {
		t0 := time.Now()
		vv, err := NewVerifier([]crypto.PublicKey{root})
		if err != nil {
			b.Fatal(err)
		}
		for i, l := range lines {
			vv.Add("bench", i+1, l)
		}
		if rep := vv.Finish(); rep.Status() != Verified {
			b.Fatalf("status %v: %v", rep.Status(), rep.Findings)
		}
		t1 := time.Now()
		// The floor: SHA-256 over the same lines, nothing else.
		for _, l := range lines {
			sha256.Sum256(l)
		}
		verifyTook += t1.Sub(t0)
		hashTook += time.Since(t1)
	}
	mb := func(d time.Duration) float64 { return float64(total) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mb(verifyTook), "MB/s-verify")
	b.ReportMetric(mb(hashTook), "MB/s-sha256")
	b.ReportMetric(mb(verifyTook)/mb(hashTook), "x-of-sha256")
}
