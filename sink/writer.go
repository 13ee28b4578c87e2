package sink

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lineaged/lineaged/lineage/event"
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

// writerSink writes one encoded event per line to an io.WriteCloser, one
// write call per event so concurrent readers of the file never see a torn
// line.
type writerSink struct {
	mu   sync.Mutex
	enc  Encoder
	w    io.WriteCloser
	buf  []byte
	name string
	m    *writerMetrics
}

func newWriterSink(enc Encoder, w io.WriteCloser, m *writerMetrics, name string) *writerSink {
	return &writerSink{enc: enc, w: w, buf: make([]byte, 0, 16<<10), name: name, m: m}
}

// Write encodes ev and writes it as one line.
func (s *writerSink) Write(_ context.Context, ev *event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.enc.Append(s.buf[:0], ev)
	if err != nil {
		s.m.errors.WithLabelValues(s.name, "encode").Inc()
		return err
	}
	b = append(b, '\n')
	s.buf = b
	if _, err := s.w.Write(b); err != nil {
		s.m.errors.WithLabelValues(s.name, "write").Inc()
		return fmt.Errorf("sink %s: %w", s.name, err)
	}
	s.m.events.WithLabelValues(s.name).Inc()
	s.m.bytes.WithLabelValues(s.name).Add(float64(len(b)))
	return nil
}

// Close closes the destination (stdout is left open).
func (s *writerSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Close()
}
