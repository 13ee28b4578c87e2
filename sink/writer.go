package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lineaged/lineaged/lineage/event"
)

// Buffering of the stdout and file sinks: events wait in memory at most
// FlushAfter, or until FlushBytes are pending, then go out in one write.
// A crash (SIGKILL, power loss) loses at most what is pending: the events
// of the last FlushAfter, never more than FlushBytes plus one event. Close
// (SIGTERM, SIGINT) writes everything first.
const (
	FlushAfter = 50 * time.Millisecond
	FlushBytes = 64 << 10
)

type writerMetrics struct {
	events *prometheus.CounterVec
	bytes  *prometheus.CounterVec
	errors *prometheus.CounterVec
}

func newWriterMetrics(reg prometheus.Registerer) *writerMetrics {
	m := &writerMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lineaged_sink_events_total", Help: "Events written by the sink.",
		}, []string{"sink"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lineaged_sink_bytes_total", Help: "Encoded bytes written by the sink.",
		}, []string{"sink"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lineaged_sink_errors_total", Help: "Events the sink failed to encode or write.",
		}, []string{"sink", "stage"}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.bytes, m.errors)
	}
	return m
}

// writerOptions sets the buffering of a writerSink; the zero value is the
// default (FlushAfter, FlushBytes). flushBytes < 0 writes each event with
// its own write call, as unbuffered sinks did (the benchmark's baseline).
type writerOptions struct {
	flushAfter time.Duration
	flushBytes int
}

// writerSink writes one encoded event per line to an io.WriteCloser. Lines
// are batched: every write call carries whole lines only (one or several),
// so a reader of the file never sees two events' bytes interleaved or a
// line cut by a flush. The batch goes out when it reaches flushBytes, when
// the oldest line in it has waited flushAfter, and at Close.
type writerSink struct {
	mu      sync.Mutex
	enc     Encoder
	w       io.WriteCloser
	name    string
	m       *writerMetrics
	opts    writerOptions
	buf     []byte // pending whole lines
	pending int    // events in buf
	timer   *time.Timer
	armed   bool  // timer set for the lines in buf
	lateErr error // a timed flush's failure, returned by the next call
	closed  bool
}

func newWriterSink(enc Encoder, w io.WriteCloser, m *writerMetrics, name string, opts writerOptions) *writerSink {
	if opts.flushAfter <= 0 {
		opts.flushAfter = FlushAfter
	}
	if opts.flushBytes == 0 {
		opts.flushBytes = FlushBytes
	}
	s := &writerSink{enc: enc, w: w, buf: make([]byte, 0, 16<<10), name: name, m: m, opts: opts}
	s.timer = time.AfterFunc(time.Hour, s.timedFlush)
	s.timer.Stop()
	return s
}

// Write encodes ev and queues it as one line. It returns an error for this
// event's encoding, for a flush it caused, or for an earlier timed flush
// that failed (each naming the sink).
func (s *writerSink) Write(_ context.Context, ev *event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sink %s: %w", s.name, os.ErrClosed)
	}
	start := len(s.buf)
	b, err := s.enc.Append(s.buf, ev)
	if err != nil {
		s.buf = s.buf[:start] // nothing of this event stays
		s.m.errors.WithLabelValues(s.name, "encode").Inc()
		return err
	}
	s.buf = append(b, '\n')
	s.pending++
	late := s.lateErr
	s.lateErr = nil
	if s.opts.flushBytes < 0 || len(s.buf) >= s.opts.flushBytes {
		return errors.Join(late, s.flush())
	}
	if !s.armed {
		s.armed = true
		s.timer.Reset(s.opts.flushAfter)
	}
	return late
}

// timedFlush runs on the timer: the oldest pending line has waited long
// enough. A failure is kept for the next Write or Close to return.
func (s *writerSink) timedFlush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	if s.closed {
		return
	}
	if err := s.flush(); err != nil {
		s.lateErr = errors.Join(s.lateErr, err)
	}
}

// flush writes the pending lines in one call; with s.mu held. On failure
// the batch is dropped (it is counted in the errors metric and the error
// names the sink): retrying it without bound would hold memory and block
// the pipeline on a destination that may never recover.
func (s *writerSink) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	n, events := len(s.buf), s.pending
	wrote, err := s.w.Write(s.buf)
	s.buf, s.pending = s.buf[:0], 0
	// One huge event must not pin its buffer for the rest of the run.
	if cap(s.buf) > 4*max(s.opts.flushBytes, 16<<10) {
		s.buf = make([]byte, 0, 16<<10)
	}
	if err != nil && wrote == n && errors.Is(err, ErrRotate) {
		// Every line is in the live file; only the rotation failed.
		s.m.errors.WithLabelValues(s.name, "rotate").Inc()
		s.m.events.WithLabelValues(s.name).Add(float64(events))
		s.m.bytes.WithLabelValues(s.name).Add(float64(n))
		return fmt.Errorf("sink %s: %w", s.name, err)
	}
	if err != nil {
		s.m.errors.WithLabelValues(s.name, "write").Add(float64(events))
		return fmt.Errorf("sink %s: %d events not written: %w", s.name, events, err)
	}
	s.m.events.WithLabelValues(s.name).Add(float64(events))
	s.m.bytes.WithLabelValues(s.name).Add(float64(n))
	return nil
}

// Close writes what is pending, then closes the destination (stdout is
// left open).
func (s *writerSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.timer.Stop()
	err := errors.Join(s.lateErr, s.flush())
	s.lateErr = nil
	if cerr := s.w.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("sink %s: %w", s.name, cerr))
	}
	return err
}
