package kafka

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	kgo "github.com/segmentio/kafka-go"

	"github.com/lineaged/lineaged/sink/internal/kafkatest"
	"github.com/lineaged/lineaged/sink/native"
)

// BenchmarkProduceSpooled: events/s through the sink (encode, spool with
// group fsync, produce with acks=all) to an in-process kfake broker.
func BenchmarkProduceSpooled(b *testing.B) {
	c := kafkatest.Cluster(b)
	cfg := baseConfig(b, c.ListenAddrs())
	cfg.BatchSize = 1000
	s, err := New(cfg, native.Encoder{}, nil, testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	evs := kafkatest.Events(1, 1000, 8)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := *evs[i%len(evs)]
		ev.Seq = uint64(i + 1)
		if err := s.Write(context.Background(), &ev); err != nil {
			b.Fatal(err)
		}
		// The rate measured is the broker's, not the spool's: writes
		// run ahead of production by at most this many events (else a
		// large b.N fills the spool, which then sheds events).
		if (i+1)%20000 == 0 {
			flush(b, s)
		}
	}
	flush(b, s)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkProduceDirect is the baseline: the same messages written with a
// bare kafka-go Writer (no spool), same batch settings.
func BenchmarkProduceDirect(b *testing.B) {
	c := kafkatest.Cluster(b)
	w := &kgo.Writer{
		Addr: kgo.TCP(c.ListenAddrs()...), Topic: kafkatest.Topic, Balancer: &kgo.Hash{},
		RequiredAcks: kgo.RequireAll, Compression: kgo.Zstd, BatchSize: 1000, BatchTimeout: 100 * time.Microsecond,
	}
	defer w.Close()
	evs := kafkatest.Events(1, 1000, 8)
	var enc native.Encoder
	msgs := make([]kgo.Message, 0, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := *evs[i%len(evs)]
		ev.Seq = uint64(i + 1)
		v, _ := enc.Append(nil, &ev)
		msgs = append(msgs, kgo.Message{Key: Key(nil, &ev), Value: v})
		if len(msgs) == cap(msgs) || i == b.N-1 {
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAckLatency: Write-to-acknowledgement latency at 1,600 events/s
// (the design's in-session exec rate), reported as p50/p99 in ms. Target:
// p99 < 25 ms. Run with -benchtime=4000x for a stable p99.
func BenchmarkAckLatency(b *testing.B) {
	c := kafkatest.Cluster(b)
	cfg := baseConfig(b, c.ListenAddrs())
	if d, err := time.ParseDuration(os.Getenv("LINEAGED_BENCH_BATCH_TIMEOUT")); err == nil {
		cfg.BatchTimeout = d
	}
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	cfg.ObserveAck = func(d time.Duration) {
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	}
	s, err := New(cfg, native.Encoder{}, nil, testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	evs := kafkatest.Events(1, 1000, 8)
	tick := time.NewTicker(time.Second / 1600)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		ev := *evs[i%len(evs)]
		ev.Seq = uint64(i + 1)
		if err := s.Write(context.Background(), &ev); err != nil {
			b.Fatal(err)
		}
	}
	flush(b, s)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) < b.N {
		b.Fatalf("%d acknowledgements for %d events", len(lat), b.N)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(float64(s.Stats().Fsyncs)/float64(b.N), "fsyncs/event")
}

// BenchmarkAckLatencyDirect is the baseline for BenchmarkAckLatency in the
// same run: the same events at the same rate through a bare asynchronous
// kafka-go Writer (no spool, no sender loop), latency measured from the
// WriteMessages call to its completion callback. The difference between the
// two is what the spool and the sender add; what both share is the broker
// and the machine.
func BenchmarkAckLatencyDirect(b *testing.B) {
	c := kafkatest.Cluster(b)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	w := &kgo.Writer{
		Addr: kgo.TCP(c.ListenAddrs()...), Topic: kafkatest.Topic, Balancer: &kgo.Hash{},
		RequiredAcks: kgo.RequireAll, Compression: kgo.Zstd, BatchSize: 100, BatchTimeout: 100 * time.Microsecond,
		Async: true,
		Completion: func(msgs []kgo.Message, err error) {
			if err != nil {
				b.Error(err)
			}
			now := time.Now()
			mu.Lock()
			for _, m := range msgs {
				lat = append(lat, now.Sub(m.WriterData.(time.Time)))
			}
			mu.Unlock()
		},
	}
	evs := kafkatest.Events(1, 1000, 8)
	var enc native.Encoder
	tick := time.NewTicker(time.Second / 1600)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		ev := *evs[i%len(evs)]
		ev.Seq = uint64(i + 1)
		v, _ := enc.Append(nil, &ev)
		if err := w.WriteMessages(context.Background(), kgo.Message{Key: Key(nil, &ev), Value: v, WriterData: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	w.Close() // flushes and waits for the completions
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) < b.N {
		b.Fatalf("%d completions for %d events", len(lat), b.N)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
}
