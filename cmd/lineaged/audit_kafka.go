package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink"
	"github.com/lineaged/lineaged/sink/native"
)

// checkpointTopic is the Kafka second destination of the checkpoints
// (audit.checkpoint_topic): a Kafka sink of its own, on the same brokers
// with the same TLS and SASL settings, its own spool beside the events'
// one, whose encoder writes each checkpoint line as the chain made it.
type checkpointTopic struct {
	sink sink.Sink
	enc  *lineEncoder
}

// lineEncoder writes the line handed to it (the checkpoint's exact bytes);
// the copy sink's own loss reports, should its spool overflow, are plain
// native events.
type lineEncoder struct {
	mu   sync.Mutex
	line []byte
	nat  native.Encoder
}

func (e *lineEncoder) Append(dst []byte, ev *event.Event) ([]byte, error) {
	if ev.Kind == event.KindSensorCheckpoint && e.line != nil {
		return append(dst, e.line...), nil
	}
	return e.nat.Append(dst, ev)
}
func (e *lineEncoder) ContentType() string { return e.nat.ContentType() }
func (e *lineEncoder) Schema() string      { return e.nat.Schema() }

// openCheckpointTopic builds the copy sink; instance names its own loss
// reports' sequence (instance + "-checkpoints"), apart from the stream's.
func openCheckpointTopic(cfg *Config, instance string, log *slog.Logger) (*checkpointTopic, error) {
	cc := *cfg
	cc.Kafka.Topic = cfg.Audit.CheckpointTopic
	cc.Kafka.Spool.Dir = cfg.Kafka.Spool.Dir + ".checkpoints"
	var seq uint64
	var mu sync.Mutex
	stamp := func(ev *event.Event) {
		mu.Lock()
		seq++
		ev.Seq = seq
		ev.EventID = event.NewEventID(ev.Time, instance+"-checkpoints", seq)
		mu.Unlock()
	}
	enc := &lineEncoder{nat: native.Encoder{}}
	sc := sinkConfig(&cc, nil, stamp, nil)
	sc.Wrap = func(sink.Encoder) sink.Encoder { return enc }
	s, err := sink.New(sc, nil, log.With("component", "audit.checkpoint_topic"))
	if err != nil {
		return nil, err
	}
	return &checkpointTopic{sink: s, enc: enc}, nil
}

// write queues one checkpoint line (without its newline) for the topic.
func (c *checkpointTopic) write(line []byte, ev *event.Event) error {
	c.enc.mu.Lock()
	defer c.enc.mu.Unlock()
	c.enc.line = line
	defer func() { c.enc.line = nil }()
	return c.sink.Write(context.Background(), ev)
}
