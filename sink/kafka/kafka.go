// Package kafka is the Kafka sink: every event is appended to a durable disk
// spool and a single sender goroutine produces from the spool with
// segmentio/kafka-go, releasing records once the brokers acknowledge them
// (acks=all). A broker outage therefore never blocks Write; the spool
// absorbs it, and delivery is at-least-once with event_id for dedup.
package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kgo "github.com/segmentio/kafka-go"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/spool"
)

// Encoder is the subset of sink.Encoder the Kafka sink needs.
type Encoder interface {
	Append(dst []byte, ev *event.Event) ([]byte, error)
	ContentType() string
	Schema() string
}

// Header names set on every message.
const (
	HeaderContentType   = "content-type"
	HeaderSchema        = "schema"
	HeaderSensorVersion = "sensor-version"
	HeaderHostID        = "host-id"
)

// Key returns the message key of ev: the host's machine id and the agent
// session's root exec id. The root exec id, not the agent's session UUID,
// because the UUID may only be learnt part-way through a session and a key
// change would move the session to another partition and lose its order.
// Events outside any session are keyed by host alone.
func Key(dst []byte, ev *event.Event) []byte {
	if ev.Host != nil {
		dst = append(dst, ev.Host.MachineID...)
	}
	dst = append(dst, '/')
	if ev.Agent != nil {
		dst = append(dst, ev.Agent.RootExecID...)
	}
	return dst
}

// Sink writes events to Kafka through the spool.
type Sink struct {
	cfg Config
	enc Encoder
	log *slog.Logger
	w   *kgo.Writer
	sp  *spool.Spool
	m   *metrics

	mu       sync.Mutex
	buf      []byte
	lastHost event.Host
	// spooled holds the seq and event time of every record this sink put
	// in the spool and the brokers have not acknowledged yet, spooled[i]
	// being the record at offset spooledBase+i: a drop reports which seqs
	// and times it lost from it. 16 bytes a spooled record.
	spooled     []spooledRec
	spooledBase uint64
	// ackedTo is the sender's acknowledgement point; droppedSeen counts
	// the dropped records dropped has noted. Records below ackedTo are
	// forgotten only when every drop the spool counted has been noted:
	// the spool moves its acknowledgement point past a drop before it
	// calls OnDrop.
	ackedTo     uint64
	droppedSeen uint64
	// notWritten holds the spool offset, seq and time of the records
	// appended and not yet in the spool file, for Config.OnDurable.
	notWritten []durableRec
	// unreported is the loss not yet in a report; pending is the report
	// built and not yet delivered, sent as is (same seq, same event_id)
	// until the brokers take it.
	unreported lossRange
	// refused is the records the brokers refused for good (dead-lettered)
	// not yet in a report.
	refused lossRange
	pending *lossReport
	closed  bool

	cancel context.CancelFunc
	done   chan struct{}
	// closing is closed when Close begins: the sender stops lingering and
	// sends what it holds.
	closing chan struct{}
}

// New validates cfg, opens the spool, checks that the brokers answer (and
// that TLS and SASL work) and starts the sender. Records left in the spool
// by a previous run are delivered before new ones.
func New(cfg Config, enc Encoder, reg prometheus.Registerer, log *slog.Logger) (*Sink, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tlsCfg, _ := cfg.tlsConfig()
	mech, _ := cfg.saslMechanism()
	comp, _ := compression(cfg.Compression)
	transport := &kgo.Transport{
		DialTimeout: cfg.DialTimeout,
		TLS:         tlsCfg,
		SASL:        mech,
		MetadataTTL: 10 * time.Second,
		ClientID:    "lineaged",
	}
	if err := checkBrokers(cfg, transport); err != nil {
		if !cfg.AllowStartOffline {
			return nil, err
		}
		log.Warn("kafka: no broker reachable at start, spooling until one is", "err", err)
	}
	w := &kgo.Writer{
		Addr:         kgo.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     &kgo.Hash{},
		RequiredAcks: kgo.RequireAll,
		Compression:  comp,
		BatchSize:    cfg.BatchSize,
		// Set, not left to kafka-go's default: the sender sizes its
		// produce calls to it so a partition's messages go in one batch.
		BatchBytes:   int64(cfg.MaxMessageBytes),
		BatchTimeout: cfg.BatchTimeout,
		WriteTimeout: cfg.WriteTimeout,
		ReadTimeout:  cfg.WriteTimeout,
		// Retries are the sender's: it keeps the batch in the spool and
		// tries again with its own backoff, forever.
		MaxAttempts: 1,
		Transport:   transport,
	}
	s := &Sink{cfg: cfg, enc: enc, log: log, w: w, done: make(chan struct{}), closing: make(chan struct{})}
	sp, err := spool.Open(spool.Options{
		Dir:          cfg.Spool.Dir,
		MaxBytes:     cfg.Spool.MaxBytes,
		SegmentBytes: cfg.Spool.SegmentBytes,
		Log:          log,
		OnDrop:       s.dropped,
		OnWritten:    s.written,
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	s.sp = sp
	s.m = newMetrics(reg, w, sp)
	if cfg.OnDurable != nil {
		s.reportSpooledSeq()
	}
	if st := sp.Stats(); st.Pending > 0 {
		log.Info("kafka: delivering events left in the spool by the previous run", "events", st.Pending, "dir", cfg.Spool.Dir)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.send(ctx)
	return s, nil
}

// reportSpooledSeq tells Config.OnDurable the highest seq in the spool
// file left by the previous run: what a kill of that run could not lose.
func (s *Sink) reportSpooledSeq() {
	var last uint64
	var at time.Time
	err := s.sp.ScanNewest(func(data []byte) {
		rec, err := parseRecord(data)
		if err != nil {
			return
		}
		if q := seqOf(rec.value); q > last {
			last, at = q, rec.written
		}
	})
	if err != nil {
		s.log.Warn("kafka: reading the newest spool segment", "err", err)
	}
	if last > 0 {
		s.log.Info("kafka: the previous run's newest spooled event", "seq", last)
		s.cfg.OnDurable(last, at)
	}
}

// seqOf finds the seq of an encoded event: the native top-level "seq" or
// OCSF's unmapped.lineaged "seq" (the only "seq" key in either); 0 when
// there is none.
func seqOf(v []byte) uint64 {
	i := bytes.Index(v, []byte(`"seq":`))
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range v[i+len(`"seq":`):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// checkBrokers asks the brokers for the topic's metadata once, through the
// same transport (TLS, SASL) the writer uses.
func checkBrokers(cfg Config, tr *kgo.Transport) error {
	var errs []error
	for _, b := range cfg.Brokers {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.DialTimeout)
		c := &kgo.Client{Addr: kgo.TCP(b), Transport: tr, Timeout: cfg.DialTimeout}
		md, err := c.Metadata(ctx, &kgo.MetadataRequest{Topics: []string{cfg.Topic}})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("broker %s: %w", b, err))
			continue
		}
		for _, t := range md.Topics {
			if t.Name != cfg.Topic {
				continue
			}
			if t.Error != nil {
				return fmt.Errorf("kafka: topic %q on %s: %w", cfg.Topic, b, t.Error)
			}
			if len(t.Partitions) == 0 {
				return fmt.Errorf("kafka: topic %q on %s has no partitions", cfg.Topic, b)
			}
			return nil
		}
		return fmt.Errorf("kafka: topic %q does not exist on %s", cfg.Topic, b)
	}
	err := fmt.Errorf("kafka: no broker of %v answered: %w", cfg.Brokers, errors.Join(errs...))
	if cfg.SASL.Mechanism != "" && errors.Is(err, io.ErrUnexpectedEOF) {
		// Brokers drop the connection on failed authentication.
		err = fmt.Errorf("%w (the broker closed the connection during SASL %s as user %q: check the credentials and mechanism)", err, cfg.SASL.Mechanism, cfg.SASL.Username)
	}
	return err
}

// Record layout in the spool: [version 1][write time, unix ns, 8 bytes]
// [uvarint len][schema][uvarint len][host id][uvarint len][key][value].
// The schema and host travel with the record so a restart that changes the
// format still labels spooled messages correctly.
const recordVersion = 1

func appendBytes(dst []byte, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

type record struct {
	written time.Time
	schema  []byte
	host    []byte
	key     []byte
	value   []byte
}

func parseRecord(b []byte) (record, error) {
	var r record
	if len(b) < 9 || b[0] != recordVersion {
		return r, errors.New("unknown record version")
	}
	r.written = time.Unix(0, int64(binary.LittleEndian.Uint64(b[1:9])))
	b = b[9:]
	next := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, false
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, true
	}
	var ok bool
	if r.schema, ok = next(); !ok {
		return r, errors.New("truncated schema")
	}
	if r.host, ok = next(); !ok {
		return r, errors.New("truncated host")
	}
	if r.key, ok = next(); !ok {
		return r, errors.New("truncated key")
	}
	r.value = b
	return r, nil
}

// Write encodes ev and appends it to the spool. It returns once the record
// is queued for the disk; it never waits for Kafka.
func (s *Sink) Write(_ context.Context, ev *event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("kafka: sink closed")
	}
	return s.writeLocked(ev)
}

func (s *Sink) writeLocked(ev *event.Event) error {
	b := s.buf[:0]
	b = append(b, recordVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.cfg.Now().UnixNano()))
	b = appendStr(b, s.enc.Schema())
	host := ""
	if ev.Host != nil {
		host = ev.Host.MachineID
		s.lastHost = *ev.Host
	}
	b = appendStr(b, host)
	// The key is written in place after its length prefix.
	var kb [128]byte
	b = appendBytes(b, Key(kb[:0], ev))
	var err error
	b, err = s.enc.Append(b, ev)
	s.buf = b
	if err != nil {
		s.m.encodeErrors.Inc()
		return err
	}
	off, err := s.sp.Append(b)
	if err != nil {
		s.m.spoolErrors.Inc()
		return err
	}
	if n := uint64(len(s.spooled)); n == 0 || off != s.spooledBase+n {
		// First record, or offsets jumped (they do not, but a wrong
		// range would be worse than none).
		s.spooled, s.spooledBase = s.spooled[:0], off
	}
	s.spooled = append(s.spooled, spooledRec{seq: ev.Seq, time: ev.Time.UnixNano()})
	if s.cfg.OnDurable != nil {
		s.notWritten = append(s.notWritten, durableRec{off: off, rec: spooledRec{seq: ev.Seq, time: ev.Time.UnixNano()}})
	}
	s.m.written.Inc()
	return nil
}

// durableRec is a record appended to the spool and not yet written.
type durableRec struct {
	off uint64
	rec spooledRec
}

// written is the spool's OnWritten: it tells Config.OnDurable the highest
// seq now in the spool file.
func (s *Sink) written(end uint64) {
	if s.cfg.OnDurable == nil {
		return
	}
	s.mu.Lock()
	var last spooledRec
	n := 0
	for n < len(s.notWritten) && s.notWritten[n].off < end {
		if r := s.notWritten[n].rec; r.seq > last.seq {
			last = r
		}
		n++
	}
	s.notWritten = append(s.notWritten[:0], s.notWritten[n:]...)
	s.mu.Unlock()
	if last.seq > 0 {
		s.cfg.OnDurable(last.seq, time.Unix(0, last.time))
	}
}

// spooledRec is what a loss report needs of a spooled record.
type spooledRec struct {
	seq  uint64
	time int64 // event time, unix ns
}

// releaseLocked forgets the records below offset end: acknowledged by the
// brokers or dropped.
func (s *Sink) releaseLocked(end uint64) {
	if end <= s.spooledBase {
		return
	}
	n := min(end-s.spooledBase, uint64(len(s.spooled)))
	s.spooled = s.spooled[n:]
	s.spooledBase += n
	if len(s.spooled) == 0 {
		s.spooledBase = end
	}
}

// acked acknowledges the records below end to the spool and forgets them.
// Delivered records count as durable for Config.OnDurable: the sender may
// take a record from the spool's memory before it is in the file, and
// records are delivered and written in the same order.
func (s *Sink) acked(end uint64) {
	s.deliveredTo(end)
	s.sp.Ack(end)
	s.mu.Lock()
	s.ackedTo = max(s.ackedTo, end)
	s.releaseSettledLocked()
	s.mu.Unlock()
}

// deliveredTo tells Config.OnDurable that the records below end are in
// Kafka (or refused and dead-lettered).
func (s *Sink) deliveredTo(end uint64) {
	if s.cfg.OnDurable == nil {
		return
	}
	s.mu.Lock()
	var last spooledRec
	if end > s.spooledBase && end-s.spooledBase <= uint64(len(s.spooled)) {
		last = s.spooled[end-1-s.spooledBase]
	}
	s.mu.Unlock()
	if last.seq > 0 {
		s.cfg.OnDurable(last.seq, time.Unix(0, last.time))
	}
}

// releaseSettledLocked forgets the acknowledged records, unless a drop is
// yet to be noted: the records below ackedTo may include it.
func (s *Sink) releaseSettledLocked() {
	if s.sp.Stats().Dropped == s.droppedSeen {
		s.releaseLocked(s.ackedTo)
	}
}

// lossRange accumulates dropped records for one report.
type lossRange struct {
	count    uint64
	firstSeq uint64
	lastSeq  uint64
	from, to int64 // event times, unix ns; 0: none known
	reason   string
	where    string // "" means kafka-spool
}

func (r *lossRange) add(rec spooledRec) {
	if r.firstSeq == 0 || rec.seq < r.firstSeq {
		r.firstSeq = rec.seq
	}
	r.lastSeq = max(r.lastSeq, rec.seq)
	if r.from == 0 || rec.time < r.from {
		r.from = rec.time
	}
	r.to = max(r.to, rec.time)
}

// lossReport is a built loss report: the event (kept to spool it at Close)
// and its message.
type lossReport struct {
	ev  *event.Event
	msg kgo.Message
}

// dropped counts the records the spool dropped, offsets [from, to), and
// notes the seqs and times of those this sink spooled. They are reported by
// a sensor.loss event that the sender puts in front of the next records it
// delivers, which is where the gap is in the stream; keeping the report out
// of the spool means a full spool cannot drop the report too.
func (s *Sink) dropped(from, to uint64, reason string) {
	s.m.dropped.Add(float64(to - from))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unreported.count += to - from
	s.unreported.reason = mergeReason(s.unreported.reason, reason)
	s.droppedSeen += to - from
	lo, hi := max(from, s.spooledBase), min(to, s.spooledBase+uint64(len(s.spooled)))
	for off := lo; off < hi; off++ {
		s.unreported.add(s.spooled[off-s.spooledBase])
	}
	s.releaseLocked(to)
	s.releaseSettledLocked()
}

// lossEventLocked builds the sensor.loss event for r and has it numbered in
// the pipeline's sequence (Config.Stamp): the report has a seq of its own.
func (s *Sink) lossEventLocked(r lossRange) *event.Event {
	host := s.lastHost
	l := &event.Loss{Where: "kafka-spool", Of: "events dropped: " + r.reason, Count: r.count, FirstSeq: r.firstSeq, LastSeq: r.lastSeq}
	if r.where == "kafka" {
		l.Where, l.Of = "kafka", "events refused by the brokers, kept in "+s.deadLetterPath()+": "+r.reason
	}
	if r.from != 0 {
		l.From, l.To = time.Unix(0, r.from).UTC(), time.Unix(0, r.to).UTC()
	}
	ev := &event.Event{Schema: event.Schema, Time: s.cfg.Now().UTC(), Kind: event.KindSensorLoss, Loss: l}
	if host.MachineID != "" {
		ev.Host = &host
	}
	s.cfg.Stamp(ev)
	return ev
}

// takeLoss returns the loss report to deliver, building it from what was
// dropped so far when none is pending, or nil when nothing was dropped.
func (s *Sink) takeLoss() *lossReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending != nil {
		return s.pending
	}
	from := &s.unreported
	if from.count == 0 {
		from = &s.refused
	}
	if from.count == 0 {
		return nil
	}
	ev := s.lossEventLocked(*from)
	val, err := s.enc.Append(nil, ev)
	if err != nil {
		s.log.Error("kafka: encoding loss report", "err", err)
		return nil
	}
	*from = lossRange{}
	host := []byte{}
	if ev.Host != nil {
		host = []byte(ev.Host.MachineID)
	}
	s.pending = &lossReport{ev: ev, msg: kgo.Message{
		Key:   Key(nil, ev),
		Value: val,
		Headers: []kgo.Header{
			{Key: HeaderContentType, Value: []byte(s.enc.ContentType())},
			{Key: HeaderSchema, Value: []byte(s.enc.Schema())},
			{Key: HeaderSensorVersion, Value: []byte(s.cfg.SensorVersion)},
			{Key: HeaderHostID, Value: host},
		},
	}}
	return s.pending
}

// sendLoss delivers the pending loss report, if any.
func (s *Sink) sendLoss(ctx context.Context) error {
	r := s.takeLoss()
	if r == nil {
		return nil
	}
	if err := s.w.WriteMessages(ctx, r.msg); err != nil {
		return err
	}
	s.mu.Lock()
	s.pending = nil
	s.mu.Unlock()
	s.m.delivered.Inc()
	return nil
}

// Flush waits until everything written so far is acknowledged by Kafka, or
// ctx ends.
func (s *Sink) Flush(ctx context.Context) error {
	target := s.sp.Stats().NextOffset
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.sp.Stats().Acked < target {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Stats returns the spool's statistics.
func (s *Sink) Stats() spool.Stats { return s.sp.Stats() }

// Close stops accepting events, gives the sender Config.DrainTimeout to deliver
// what is spooled, and closes the writer and the spool. Undelivered events
// stay on disk and are sent first on the next start.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.closing)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	if err := s.Flush(ctx); err != nil {
		s.log.Warn("kafka: closing with undelivered events kept in the spool", "pending", s.sp.Stats().Pending)
	}
	cancel()
	s.cancel()
	<-s.done
	// A loss not yet reported goes into the spool, delivered on next start.
	s.mu.Lock()
	if r := s.pending; r != nil {
		if err := s.writeLocked(r.ev); err != nil {
			s.log.Error("kafka: loss report not saved", "dropped", r.ev.Loss.Count, "err", err)
		}
		s.pending = nil
	}
	for _, r := range []*lossRange{&s.unreported, &s.refused} {
		if r.count > 0 {
			if err := s.writeLocked(s.lossEventLocked(*r)); err != nil {
				s.log.Error("kafka: loss report not saved", "lost", r.count, "err", err)
			}
			*r = lossRange{}
		}
	}
	s.mu.Unlock()
	werr := s.w.Close()
	serr := s.sp.Close()
	return errors.Join(werr, serr)
}
