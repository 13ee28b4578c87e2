package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sink"
)

// Every event the sink fails to write is counted and reported by one
// sensor.loss (where sink) naming its seqs; the pipeline used to log only
// the first and every 1000th failure and report nothing.
func TestEveryWriteFailureIsCountedAndReported(t *testing.T) {
	var out bytes.Buffer
	cfg := &Config{Output: "-", Format: "native"}
	p := &pipeline{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	p.seq = policy.NewSequencer("test")
	var err error
	if p.policy, err = policy.New(policy.Config{}); err != nil {
		t.Fatal(err)
	}
	s, err := sink.New(sinkConfig(cfg, &out, p.seq.Stamp, nil), nil, p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.sink = s
	base := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	var bad []uint64
	for i := range 12 {
		ev := &event.Event{Schema: event.Schema, Time: base.Add(time.Duration(i) * time.Millisecond), Kind: event.KindSensorStart,
			Sensor: &event.Sensor{Version: "t", InstanceID: "test"}}
		if i >= 4 && i < 7 {
			ev.Kind = "" // the encoder refuses it
		}
		p.write(ev)
		if ev.Kind == "" {
			bad = append(bad, ev.Seq)
		}
	}
	p.reportWriteLoss(true) // as at the end of the run
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := p.wloss.failures.Load(); n != 3 {
		t.Errorf("%d failures counted, want 3", n)
	}
	var losses []event.Loss
	seqs := map[uint64]bool{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var ev event.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		seqs[ev.Seq] = true
		if ev.Kind == event.KindSensorLoss {
			losses = append(losses, *ev.Loss)
		}
	}
	if len(losses) != 1 {
		t.Fatalf("loss reports %+v, want one", losses)
	}
	l := losses[0]
	if l.Where != "sink" || l.Count != 3 || l.FirstSeq != bad[0] || l.LastSeq != bad[2] {
		t.Errorf("loss %+v, want where sink, count 3, seqs %v", l, bad)
	}
	for _, q := range bad {
		if seqs[q] {
			t.Errorf("seq %d written although its write failed", q)
		}
	}
}

// kafka.max_message_bytes is the line budget of every output, so a value
// too small for the most trimmed event is refused whatever the output.
func TestMaxMessageBytesCheckedForEveryOutput(t *testing.T) {
	_, err := parse(t, []string{"--output", "-"}, map[string]string{"LINEAGED_KAFKA_MAX_MESSAGE_BYTES": "1000"})
	if err == nil || !strings.Contains(err.Error(), "kafka.max_message_bytes") {
		t.Fatalf("got %v, want an error naming kafka.max_message_bytes", err)
	}
}
