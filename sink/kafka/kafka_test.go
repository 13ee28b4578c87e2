package kafka

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/kafkatest"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/native"
	"github.com/lineaged/lineaged/sink/spool"
	lineagedtest "github.com/lineaged/lineaged/tests/testutil"
)

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// sequencer stands in for the pipeline's one sequencer (lineage/policy,
// which sinks do not import): it numbers what it is given, in call order,
// from any goroutine.
type sequencer struct {
	mu  sync.Mutex
	seq uint64
}

func (s *sequencer) Stamp(ev *event.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	ev.Seq = s.seq
	ev.EventID = event.NewEventID(ev.Time, "kafka-test", s.seq)
}

func baseConfig(t testing.TB, brokers []string) Config {
	var reports atomic.Uint64
	return Config{
		Brokers:       brokers,
		Topic:         kafkatest.Topic,
		SensorVersion: "0.1.0-test",
		Spool:         SpoolConfig{Dir: filepath.Join(t.TempDir(), "spool"), MaxBytes: 64 << 20},
		DrainTimeout:  200 * time.Millisecond,
		DialTimeout:   3 * time.Second,
		// The events of kafkatest.Events carry their own seqs; loss
		// reports are numbered far above them.
		Stamp: func(ev *event.Event) {
			ev.Seq = 1<<40 + reports.Add(1)
			ev.EventID = event.NewEventID(ev.Time, "kafka-test", ev.Seq)
		},
	}
}

func writeAll(t testing.TB, s *Sink, evs []*event.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := s.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

func flush(t testing.TB, s *Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("flush: %v (stats %+v)", err, s.Stats())
	}
}

func TestProduceConsumeEachCompression(t *testing.T) {
	schema, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"none", "zstd", "lz4", "snappy", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			c := kafkatest.Cluster(t)
			cfg := baseConfig(t, c.ListenAddrs())
			cfg.Compression = comp
			reg := prometheus.NewRegistry()
			s, err := New(cfg, native.Encoder{}, reg, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			evs := kafkatest.Events(1, 300, 5)
			evs = append(evs, kafkatest.Events(301, 20, 0)...) // host-level events
			writeAll(t, s, evs)
			flush(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			msgs := kafkatest.Consume(t, c.ListenAddrs(), len(evs), 30*time.Second)
			kafkatest.CheckDelivery(t, msgs, evs)
			partitions := map[int32]bool{}
			keys := map[string]int32{}
			for _, m := range msgs {
				if err := schematest.Validate(schema, m.Value); err != nil {
					t.Fatalf("offset %d: %v", m.Offset, err)
				}
				want := map[string]string{"content-type": "application/json", "schema": event.Schema, "sensor-version": "0.1.0-test", "host-id": evs[0].Host.MachineID}
				for k, v := range want {
					if m.Headers[k] != v {
						t.Fatalf("header %s = %q, want %q", k, m.Headers[k], v)
					}
				}
				if p, ok := keys[m.Key]; ok && p != m.Partition {
					t.Fatalf("key %s on partitions %d and %d", m.Key, p, m.Partition)
				}
				keys[m.Key] = m.Partition
				partitions[m.Partition] = true
				if !strings.HasPrefix(m.Key, evs[0].Host.MachineID+"/") {
					t.Fatalf("key %q does not start with the host id", m.Key)
				}
			}
			if len(keys) != 6 {
				t.Errorf("%d distinct keys, want 5 sessions + host", len(keys))
			}
			if len(partitions) < 2 {
				t.Errorf("all keys on one partition: keying does not spread sessions")
			}
			if got := testutil.ToFloat64(s.m.delivered); got != float64(len(evs)) {
				t.Errorf("delivered metric %v, want %d", got, len(evs))
			}
			if n, err := testutil.GatherAndCount(reg, "lineaged_kafka_writer_total"); err != nil || n == 0 {
				t.Errorf("kafka-go writer stats not exported: %d series, %v", n, err)
			}
		})
	}
}

func TestTLSWithClientCertificate(t *testing.T) {
	pki := kafkatest.NewPKI(t, t.TempDir())
	c := kafkatest.Cluster(t, kfake.TLS(pki.Server))
	cfg := baseConfig(t, c.ListenAddrs())
	cfg.TLS = TLSConfig{Enabled: true, CAFile: pki.CAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile}
	s, err := New(cfg, native.Encoder{}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	evs := kafkatest.Events(1, 50, 2)
	writeAll(t, s, evs)
	flush(t, s)
	s.Close()
	tc, err := cfg.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.CheckDelivery(t, kafkatest.Consume(t, c.ListenAddrs(), len(evs), 30*time.Second, kgo.DialTLSConfig(tc)), evs)

	t.Run("untrusted broker certificate fails at start", func(t *testing.T) {
		bad := baseConfig(t, c.ListenAddrs())
		bad.TLS = TLSConfig{Enabled: true, CAFile: pki.OtherCAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile}
		_, err := New(bad, native.Encoder{}, nil, testLog(t))
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("want a certificate error, got %v", err)
		}
		t.Logf("untrusted broker: %v", err)
	})
	t.Run("no client certificate fails at start", func(t *testing.T) {
		bad := baseConfig(t, c.ListenAddrs())
		bad.TLS = TLSConfig{Enabled: true, CAFile: pki.CAFile}
		if _, err := New(bad, native.Encoder{}, nil, testLog(t)); err == nil {
			t.Fatal("broker requiring a client certificate accepted a client without one")
		}
	})
}

func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := kafkatest.Cluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "sensor", "s3cret"))
			cfg := baseConfig(t, c.ListenAddrs())
			pw := filepath.Join(t.TempDir(), "pw")
			os.WriteFile(pw, []byte("s3cret\n"), 0o600)
			cfg.SASL = SASLConfig{Mechanism: mech, Username: "sensor", PasswordFile: pw}
			s, err := New(cfg, native.Encoder{}, nil, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			evs := kafkatest.Events(1, 50, 2)
			writeAll(t, s, evs)
			flush(t, s)
			s.Close()
			auth := scram.Auth{User: "sensor", Pass: "s3cret"}
			var m sasl.Mechanism = auth.AsSha256Mechanism()
			switch mech {
			case "SCRAM-SHA-512":
				m = auth.AsSha512Mechanism()
			case "PLAIN":
				m = plain.Auth{User: "sensor", Pass: "s3cret"}.AsMechanism()
			}
			kafkatest.CheckDelivery(t, kafkatest.Consume(t, c.ListenAddrs(), len(evs), 30*time.Second, kgo.SASL(m)), evs)

			bad := baseConfig(t, c.ListenAddrs())
			bad.SASL = SASLConfig{Mechanism: mech, Username: "sensor", Password: "wrong"}
			if _, err := New(bad, native.Encoder{}, nil, testLog(t)); err == nil || !strings.Contains(err.Error(), "check the credentials") {
				t.Fatalf("wrong password: want an error about the credentials, got %v", err)
			}
		})
	}
}

func closedPort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestBadConfigurationFailsAtStart(t *testing.T) {
	c := kafkatest.Cluster(t)
	good := func() Config { return baseConfig(t, c.ListenAddrs()) }
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"unreachable broker", func(c *Config) { c.Brokers = []string{closedPort(t)} }, "no broker of"},
		{"malformed broker", func(c *Config) { c.Brokers = []string{"kafka.example"} }, "kafka.brokers"},
		{"missing topic", func(c *Config) { c.Topic = "nope" }, `topic "nope"`},
		{"missing CA file", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"} }, "kafka.tls.ca_file"},
		{"CA file without PEM", func(c *Config) {
			p := filepath.Join(t.TempDir(), "ca.pem")
			os.WriteFile(p, []byte("not a certificate"), 0o600)
			c.TLS = TLSConfig{Enabled: true, CAFile: p}
		}, "holds no PEM certificate"},
		{"cert without key", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: "/x.pem"} }, "set both or neither"},
		{"unknown SASL mechanism", func(c *Config) { c.SASL = SASLConfig{Mechanism: "GSSAPI", Username: "u"} }, `"GSSAPI" is not one of`},
		{"SASL without user", func(c *Config) { c.SASL = SASLConfig{Mechanism: "PLAIN"} }, "kafka.sasl.username"},
		{"unknown compression", func(c *Config) { c.Compression = "brotli" }, "kafka.compression"},
		{"no spool dir", func(c *Config) { c.Spool.Dir = "" }, "kafka.spool.dir"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.mod(&cfg)
			_, err := New(cfg, native.Encoder{}, nil, testLog(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestSpoolFullDropsOldestAndReportsLoss(t *testing.T) {
	addr := closedPort(t)
	cfg := baseConfig(t, []string{addr})
	cfg.AllowStartOffline = true
	cfg.Spool.MaxBytes = 1 << 20
	cfg.Spool.SegmentBytes = 64 << 10
	// Numbered as the pipeline does: the sink's loss report by the same
	// sequencer as the events.
	seq := &sequencer{}
	cfg.Stamp = seq.Stamp
	s, err := New(cfg, native.Encoder{}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	evs := kafkatest.Events(1, 3000, 3) // ~3000 * 3 KiB, three times the bound
	for _, ev := range evs {
		seq.Stamp(ev)
	}
	for i, ev := range evs {
		if err := s.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			waitSynced(t, s) // let the writer keep up so drops happen as the spool fills
		}
	}
	waitSynced(t, s)
	st := s.Stats()
	if st.Dropped == 0 {
		t.Fatalf("spool over its bound dropped nothing: %+v", st)
	}
	if st.Bytes > cfg.Spool.MaxBytes {
		t.Fatalf("spool holds %d bytes, bound %d", st.Bytes, cfg.Spool.MaxBytes)
	}
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	c := kafkatest.Cluster(t, kfake.Ports(p))
	flush(t, s)
	st = s.Stats()
	s.Close()
	// Plus the loss reports: one per stretch of drops before the sender
	// got to build a report (each is built once, then sent as is).
	reports := int(testutil.ToFloat64(s.m.delivered)) - int(st.Appended-st.Dropped)
	if reports < 1 {
		t.Fatalf("no loss report delivered: %+v, delivered metric %v", st, testutil.ToFloat64(s.m.delivered))
	}
	delivered := int(st.Appended-st.Dropped) + reports
	t.Logf("after flush: %+v delivered metric %v", st, testutil.ToFloat64(s.m.delivered))
	msgs := kafkatest.Consume(t, c.ListenAddrs(), delivered, 30*time.Second)
	var originals []uint64
	var lossCount uint64
	var losses []*event.Loss
	ids := map[string]bool{}
	for _, m := range msgs {
		if ids[m.EventID] {
			continue
		}
		ids[m.EventID] = true
		var ev event.Event
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind == event.KindSensorLoss {
			if ev.Loss == nil || ev.Loss.Where != "kafka-spool" || ev.Loss.Count == 0 {
				t.Fatalf("bad loss event %s", m.Value)
			}
			// Its own seq, after every event written: not a reused one.
			if ev.Seq <= uint64(len(evs)) {
				t.Errorf("loss report has seq %d, which belongs to an event (want one of its own, above %d)", ev.Seq, len(evs))
			}
			lossCount += ev.Loss.Count
			losses = append(losses, ev.Loss)
			continue
		}
		originals = append(originals, ev.Seq)
	}
	if len(ids) != delivered {
		t.Fatalf("delivered %d distinct events, spool says %d appended - %d dropped + %d reports", len(ids), st.Appended, st.Dropped, reports)
	}
	if uint64(len(originals))+lossCount != uint64(len(evs)) || lossCount != st.Dropped {
		t.Fatalf("%d originals delivered + %d reported lost != %d written (spool dropped %d)", len(originals), lossCount, len(evs), st.Dropped)
	}
	// Together the reports name the seqs and times lost, the oldest
	// 1..Dropped, each its own stretch.
	next := uint64(1)
	for _, l := range losses {
		if l.FirstSeq != next || l.LastSeq != l.FirstSeq+l.Count-1 ||
			!l.From.Equal(evs[l.FirstSeq-1].Time) || !l.To.Equal(evs[l.LastSeq-1].Time) {
			t.Errorf("loss of %d covers seqs %d..%d, times %v..%v; want from seq %d, times of those events", l.Count, l.FirstSeq, l.LastSeq, l.From, l.To, next)
		}
		next = l.LastSeq + 1
	}
	if next != st.Dropped+1 {
		t.Errorf("loss reports cover seqs up to %d, the spool dropped %d", next-1, st.Dropped)
	}

	// Oldest first: what survived is the newest contiguous run.
	first := uint64(len(evs)) - uint64(len(originals)) + 1
	for i, seq := range sortedCopy(originals) {
		if seq != first+uint64(i) {
			t.Fatalf("surviving events are not the newest run: seq %d at %d, want %d", seq, i, first+uint64(i))
		}
	}
	t.Logf("written %d, dropped %d, delivered %d originals + %d loss reports (counting %d)", len(evs), st.Dropped, len(originals), len(losses), lossCount)
}

func sortedCopy(v []uint64) []uint64 {
	out := append([]uint64(nil), v...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func waitSynced(t testing.TB, s *Sink) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Stats()
		if st.SyncedUntil == st.NextOffset {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool did not sync: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRestartDeliversSpoolFirst(t *testing.T) {
	addr := closedPort(t)
	cfg := baseConfig(t, []string{addr})
	cfg.AllowStartOffline = true
	s, err := New(cfg, native.Encoder{}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	old := kafkatest.Events(1, 400, 4)
	writeAll(t, s, old)
	if err := s.Close(); err != nil { // broker down: the events stay spooled
		t.Fatal(err)
	}
	if ents, _ := filepath.Glob(filepath.Join(cfg.Spool.Dir, "*.seg")); len(ents) == 0 {
		t.Fatal("nothing left in the spool after closing with the broker down")
	}
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	c := kafkatest.Cluster(t, kfake.Ports(p))
	cfg.AllowStartOffline = false
	s2, err := New(cfg, native.Encoder{}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	fresh := kafkatest.Events(401, 100, 4)
	writeAll(t, s2, fresh)
	flush(t, s2)
	s2.Close()
	all := append(old, fresh...)
	// Per-key order across the restart proves the spool went out first.
	kafkatest.CheckDelivery(t, kafkatest.Consume(t, c.ListenAddrs(), len(all), 30*time.Second), all)
	if ents, _ := filepath.Glob(filepath.Join(cfg.Spool.Dir, "*.seg")); len(ents) > 1 {
		t.Errorf("acknowledged segments not released: %v", ents)
	}
}

// TestBrokerOutage30s: the broker goes away for 30 s under steady
// production and comes back; every event is delivered, in per-key order,
// and Write is never held up by the outage.
func TestBrokerOutage30s(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s outage: run without -short")
	}
	data := t.TempDir()
	c1 := kafkatest.Cluster(t, kfake.DataDir(data))
	addr := c1.ListenAddrs()[0]
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	cfg := baseConfig(t, []string{addr})
	s, err := New(cfg, native.Encoder{}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		written  []*event.Event
		maxWrite time.Duration
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		seq := uint64(1)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ev := kafkatest.Events(seq, 1, 8)[0]
			ev.Agent.RootExecID = event.ExecID(ev.Host.BootID, uint32(5000+seq%8), 1, 1)
			t0 := time.Now()
			if err := s.Write(context.Background(), ev); err != nil {
				t.Error(err)
				return
			}
			d := time.Since(t0)
			mu.Lock()
			written = append(written, ev)
			maxWrite = max(maxWrite, d)
			mu.Unlock()
			seq++
		}
	}()
	time.Sleep(2 * time.Second)
	c1.Close()
	t.Log("broker down")
	time.Sleep(30 * time.Second)
	c2 := kafkatest.Cluster(t, kfake.DataDir(data), kfake.Ports(p))
	t.Log("broker back")
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	flush(t, s)
	s.Close()
	mu.Lock()
	defer mu.Unlock()
	msgs := kafkatest.Consume(t, c2.ListenAddrs(), len(written), 60*time.Second)
	kafkatest.CheckDelivery(t, msgs, written)
	t.Logf("%d events written across the outage, %d records consumed (duplicates included), slowest Write %v", len(written), len(msgs), maxWrite)
	if maxWrite > time.Second {
		t.Errorf("a Write took %v during the outage: the broker blocked the caller", maxWrite)
	}
}

// The spool moves its acknowledgement point past a drop before it reports
// the drop (OnDrop). A sender acknowledging later records in between must
// not make the sink forget the dropped records' seqs and times.
func TestDropReportedAfterLaterAckKeepsItsRange(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	defer open()
	cfg := baseConfig(t, nil)
	cfg.setDefaults()
	s := &Sink{cfg: cfg, enc: native.Encoder{}, log: testLog(t), m: newMetrics(nil, nil, nil)}
	sp, err := spool.Open(spool.Options{
		Dir: t.TempDir(), MaxBytes: 1 << 20, SegmentBytes: 64 << 10, Log: testLog(t),
		OnDrop: func(from, to uint64, reason string) { <-gate; s.dropped(from, to, reason) },
	})
	if err != nil {
		t.Fatal(err)
	}
	s.sp = sp
	defer func() { open(); sp.Close() }()
	evs := kafkatest.Events(1, 3000, 3)
	n := 0
	for ; n < len(evs) && sp.Stats().Dropped == 0; n++ {
		if err := s.Write(context.Background(), evs[n]); err != nil {
			t.Fatal(err)
		}
		for n%50 == 49 { // let the writer keep up, until it drops
			if st := sp.Stats(); st.SyncedUntil == st.NextOffset || st.Dropped > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	st := sp.Stats()
	if st.Dropped == 0 {
		t.Fatalf("the spool dropped nothing after %d events: %+v", n, st)
	}
	// The sender delivers and acknowledges what follows the drop before
	// the drop is reported.
	s.acked(st.NextOffset)
	open()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		r := s.unreported
		s.mu.Unlock()
		if r.count == st.Dropped {
			if r.firstSeq != 1 || r.lastSeq != st.Dropped || r.from != evs[0].Time.UnixNano() || r.to != evs[st.Dropped-1].Time.UnixNano() {
				t.Fatalf("drop of %d reported as seqs %d..%d, times %d..%d; want 1..%d", r.count, r.firstSeq, r.lastSeq, r.from, r.to, st.Dropped)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drop of %d never reported: %+v", st.Dropped, r)
		}
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.spooled) != 0 {
		t.Errorf("%d records still indexed after everything was acknowledged or dropped", len(s.spooled))
	}
}

// spoolWriter is a Sink without a sender or a broker: what it writes stays
// in the spool at cfg.Spool.Dir for the next New to deliver, as after a run
// that never reached Kafka.
func spoolWriter(t testing.TB, cfg Config) (*Sink, *spool.Spool) {
	t.Helper()
	cfg.setDefaults()
	s := &Sink{cfg: cfg, enc: native.Encoder{}, log: testLog(t), m: newMetrics(nil, nil, nil)}
	sp, err := spool.Open(spool.Options{Dir: cfg.Spool.Dir, MaxBytes: cfg.Spool.MaxBytes, Log: testLog(t), OnDrop: s.dropped})
	if err != nil {
		t.Fatal(err)
	}
	s.sp = sp
	return s, sp
}

// A spool record that does not parse is skipped and counted as dropped; the
// records around it are delivered and the spool is acknowledged past it.
func TestUnreadableSpoolRecordSkipped(t *testing.T) {
	c := kafkatest.Cluster(t)
	cfg := baseConfig(t, c.ListenAddrs())
	evs := kafkatest.Events(1, 40, 3)
	w, sp := spoolWriter(t, cfg)
	writeAll(t, w, evs[:20])
	if _, err := sp.Append([]byte("not a record")); err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, evs[20:])
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, native.Encoder{}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	flush(t, s) // acknowledged up to the last record: past the bad one
	delivered, dropped := testutil.ToFloat64(s.m.delivered), testutil.ToFloat64(s.m.dropped)
	s.Close()
	// The events, and the loss report for the unreadable record.
	if delivered != float64(len(evs)+1) || dropped != 1 {
		t.Errorf("delivered %v, dropped %v; want %d and 1", delivered, dropped, len(evs)+1)
	}
	msgs := kafkatest.Consume(t, c.ListenAddrs(), len(evs)+1, 30*time.Second)
	kafkatest.CheckDelivery(t, msgs, evs)
	if l := lossEvents(t, msgs); len(l) != 1 || l[0].Count != 1 || !strings.Contains(l[0].Of, "unreadable") {
		t.Errorf("loss reports %+v, want one for the unreadable record", l)
	}
}

// When the brokers take part of a batch (a partition's produce request
// fails, the others succeed), only the failed messages are sent again, in
// order: the acknowledged ones are not duplicated.
func TestPartialProduceFailureResendsOnlyTheFailed(t *testing.T) {
	c := kafkatest.Cluster(t)
	cfg := baseConfig(t, c.ListenAddrs())
	// Every event spooled before the sender starts: its first batch spans
	// every key, so every partition in use.
	evs := kafkatest.Events(1, 80, 8)
	w, sp := spoolWriter(t, cfg)
	writeAll(t, w, evs)
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	// The first produce request (one partition's batch) fails; the
	// counter, behind it, sees the requests the broker handles.
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			topic := kmsg.NewProduceResponseTopic()
			topic.Topic, topic.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewProduceResponseTopicPartition()
				p.Partition = rp.Partition
				p.ErrorCode = kerr.RequestTimedOut.Code
				topic.Partitions = append(topic.Partitions, p)
			}
			resp.Topics = append(resp.Topics, topic)
		}
		return resp, nil, true
	})
	var produced atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		for _, rt := range req.(*kmsg.ProduceRequest).Topics {
			for _, rp := range rt.Partitions {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(rp.Records); err == nil {
					produced.Add(int64(b.NumRecords))
				}
			}
		}
		return nil, nil, false
	})
	s, err := New(cfg, native.Encoder{}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	delivered, sendErrors := testutil.ToFloat64(s.m.delivered), testutil.ToFloat64(s.m.sendErrors)
	s.Close()
	if sendErrors != 1 {
		t.Errorf("%v produce failures, want the one injected", sendErrors)
	}
	if n := produced.Load(); n != int64(len(evs)) || delivered != float64(len(evs)) {
		t.Errorf("the broker took %d records, delivered metric %v; want each of the %d events once", n, delivered, len(evs))
	}
	kafkatest.CheckDelivery(t, kafkatest.Consume(t, c.ListenAddrs(), len(evs), 30*time.Second), evs)
}

// A steady stream of events goes out in about a produce request per
// Linger, not one per event or two, and arrives whole and in order; with a
// negative Linger it goes out at once. The bounds follow the stream's own
// duration, which a loaded host stretches.
func TestLingerBatchesASteadyStream(t *testing.T) {
	run := func(t *testing.T, linger time.Duration) (int64, time.Duration) {
		c := kafkatest.Cluster(t)
		var requests atomic.Int64
		c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			requests.Add(1)
			return nil, nil, false
		})
		cfg := baseConfig(t, c.ListenAddrs())
		cfg.Linger = linger
		s, err := New(cfg, native.Encoder{}, nil, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		evs := kafkatest.Events(1, 200, 1) // one key: one partition
		start := time.Now()
		for _, ev := range evs {
			writeAll(t, s, []*event.Event{ev})
			time.Sleep(time.Millisecond)
		}
		el := time.Since(start)
		flush(t, s)
		s.Close()
		kafkatest.CheckDelivery(t, kafkatest.Consume(t, c.ListenAddrs(), len(evs), 30*time.Second), evs)
		return requests.Load(), el
	}
	const linger = 20 * time.Millisecond
	n, el := run(t, linger)
	n0, el0 := run(t, -1)
	lineagedtest.CheckLinger(t, "produce requests for 200 events", linger, n, el, n0, el0)
}

// The linger ends as soon as the spool holds a full batch, as Kafka's
// linger.ms does at batch.size: a long linger holds back a trickle, never
// a batch that is full.
func TestLingerEndsWhenTheBatchIsFull(t *testing.T) {
	c := kafkatest.Cluster(t)
	cfg := baseConfig(t, c.ListenAddrs())
	cfg.Linger = time.Minute
	cfg.BatchSize = 10
	s, err := New(cfg, native.Encoder{}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	evs := kafkatest.Events(1, 11, 1)
	writeAll(t, s, evs[:1])
	time.Sleep(50 * time.Millisecond) // the sender has it, and lingers
	writeAll(t, s, evs[1:])
	// The first ten fill a batch and go at once; the eleventh lingers.
	kafkatest.CheckDelivery(t, kafkatest.Consume(t, c.ListenAddrs(), 10, 10*time.Second), evs[:10])
	// Close ends the linger: the eleventh goes within the drain time.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Pending != 0 {
		t.Fatalf("closed with %d events left in the spool, want the lingering one sent", st.Pending)
	}
	kafkatest.CheckDelivery(t, kafkatest.Consume(t, c.ListenAddrs(), 11, 10*time.Second), evs)
}
