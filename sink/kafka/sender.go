package kafka

import (
	"context"
	"errors"
	"time"

	kgo "github.com/segmentio/kafka-go"

	"github.com/lineaged/lineaged/sink/spool"
)

// Backoff between produce attempts: doubled on each failure up to
// maxBackoff, back to minBackoff after a success.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// send is the only producer: it reads batches from the spool in order,
// produces them, retries failures with backoff, and acknowledges to the
// spool what the brokers acknowledged or refused for good (dead-lettered).
// The next batch is read only once this one is settled, so a retried
// message is never overtaken by a later one of its key.
func (s *Sink) send(ctx context.Context) {
	defer close(s.done)
	backoff := minBackoff
	var b batch
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		recs, err := s.sp.Next(ctx, s.cfg.BatchSize, s.cfg.MaxMessageBytes)
		if err != nil {
			return
		}
		if recs, err = s.linger(ctx, linger, recs); err != nil {
			return
		}
		last := s.fill(&b, recs)
		if !s.deliver(ctx, &b, &backoff) {
			return
		}
		s.acked(last + 1)
	}
}

// linger tops up a batch of fewer than BatchSize records with what the
// spool holds after Linger, or as soon as it holds enough to fill the
// batch (BatchSize records or MaxMessageBytes), or the sink closes.
func (s *Sink) linger(ctx context.Context, t *time.Timer, recs []spool.Record) ([]spool.Record, error) {
	if s.cfg.Linger <= 0 || len(recs) >= s.cfg.BatchSize {
		return recs, nil
	}
	size := 0
	for _, r := range recs {
		size += len(r.Data)
	}
	if size >= s.cfg.MaxMessageBytes {
		return recs, nil
	}
	need, room := s.cfg.BatchSize-len(recs), s.cfg.MaxMessageBytes-size
	t.Reset(s.cfg.Linger)
wait:
	for {
		full, grown := s.sp.Readable(need, room)
		if full {
			t.Stop()
			break
		}
		select {
		case <-grown:
		case <-t.C:
			break wait
		case <-s.closing:
			t.Stop()
			break wait
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	more, err := s.sp.TryNext(need, room)
	if err != nil {
		// The spool closed meanwhile: send what was read; the next
		// read says so.
		return recs, nil
	}
	return append(recs, more...), nil
}

// batch is the part of a spool batch the brokers have yet to take: each
// message with its spool write time (for the acknowledgement latency) and
// its spool offset (to recognise records the spool dropped meanwhile),
// index for index. Its slices are reused from batch to batch. Messages at
// offsets up to solo are produced one per call: they were in a produce
// request the brokers refused for good, and only the culprit is to be
// dead-lettered.
type batch struct {
	msgs    []kgo.Message
	written []time.Time
	offs    []uint64
	solo    uint64 // offsets <= solo go alone; 0 none
	hasSolo bool
}

// retain keeps, in order, the messages keep(i) is true for, i being the
// index before retain.
func (b *batch) retain(keep func(i int) bool) {
	n := 0
	for i := range b.msgs {
		if keep(i) {
			b.msgs[n], b.written[n], b.offs[n] = b.msgs[i], b.written[i], b.offs[i]
			n++
		}
	}
	b.msgs, b.written, b.offs = b.msgs[:n], b.written[:n], b.offs[:n]
}

// fill makes b the messages of recs and returns the offset of the last
// record. A record that does not parse is logged, counted as dropped,
// reported by the next loss report and skipped: it is acknowledged with
// the batch, never retried.
func (s *Sink) fill(b *batch, recs []spool.Record) (last uint64) {
	b.msgs, b.written, b.offs = b.msgs[:0], b.written[:0], b.offs[:0]
	b.hasSolo = false
	for _, r := range recs {
		last = r.Offset
		rec, err := parseRecord(r.Data)
		if err != nil {
			s.log.Error("kafka: unreadable spool record, skipped", "offset", r.Offset, "err", err)
			s.m.dropped.Inc()
			s.mu.Lock()
			s.unreported.count++
			s.unreported.reason = mergeReason(s.unreported.reason, "unreadable spool record")
			s.mu.Unlock()
			continue
		}
		b.msgs = append(b.msgs, kgo.Message{
			Key:   rec.key,
			Value: rec.value,
			Headers: []kgo.Header{
				{Key: HeaderContentType, Value: []byte(s.enc.ContentType())},
				{Key: HeaderSchema, Value: rec.schema},
				{Key: HeaderSensorVersion, Value: []byte(s.cfg.SensorVersion)},
				{Key: HeaderHostID, Value: rec.host},
			},
		})
		b.written = append(b.written, rec.written)
		b.offs = append(b.offs, r.Offset)
	}
	return last
}

// messageSize is what kafka-go counts of a message against BatchBytes,
// with some room for the record framing.
func messageSize(m *kgo.Message) int {
	n := len(m.Key) + len(m.Value) + 32
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// chunk returns how many of b's first messages go in one produce call: at
// most BatchSize and MaxMessageBytes in all (at least one), so kafka-go
// never splits one partition's messages of a call into two produce
// requests. Split, the second could succeed while the first failed, and
// the retry would land after it: a key's events out of order.
func (s *Sink) chunk(b *batch) int {
	if b.hasSolo && b.offs[0] <= b.solo {
		return 1
	}
	size := 0
	for i := range b.msgs {
		if b.hasSolo && b.offs[i] <= b.solo {
			return max(i, 1)
		}
		size += messageSize(&b.msgs[i])
		if i > 0 && (i == s.cfg.BatchSize || size > s.cfg.MaxMessageBytes) {
			return i
		}
	}
	return len(b.msgs)
}

// deliver produces b until the brokers have taken or refused all of it, or
// the spool has dropped what is left, waiting *backoff after a failure
// that may pass. It returns false when ctx ends first.
func (s *Sink) deliver(ctx context.Context, b *batch, backoff *time.Duration) bool {
	for len(b.msgs) > 0 {
		n := s.chunk(b)
		err := s.produce(ctx, b.msgs[:n])
		if err == nil {
			s.observe(b.written[:n])
			s.deliveredTo(b.offs[n-1] + 1)
			*backoff = minBackoff
			b.retain(func(i int) bool { return i >= n })
			continue
		}
		if ctx.Err() != nil {
			return false
		}
		s.m.sendErrors.Inc()
		if !s.settle(b, n, err) {
			// Only refusals for good: nothing to wait for.
			continue
		}
		s.log.Warn("kafka: produce failed, events stay in the spool", "pending", len(b.msgs), "retry_in", *backoff, "err", err)
		select {
		case <-time.After(*backoff):
		case <-ctx.Done():
			return false
		}
		*backoff = min(*backoff*2, maxBackoff)
		s.forgetDropped(b)
	}
	return true
}

// produce sends the pending loss report, if any, and then msgs: the report
// goes in front of the records that follow the gap it reports. A report
// that fails is resent unchanged (same seq, same event_id) with the next
// attempt; one the brokers refuse for good is dead-lettered.
func (s *Sink) produce(ctx context.Context, msgs []kgo.Message) error {
	if err := s.sendLoss(ctx); err != nil {
		cause, perm := permanent(err)
		if !perm {
			return err
		}
		s.refuseLoss(cause)
	}
	return s.w.WriteMessages(ctx, msgs...)
}

// settle sorts out a failed produce of b's first n messages: the delivered
// ones are recorded and removed, the ones refused for good go to the dead
// letter file and are removed, the others stay in order for a retry. It
// reports whether any stay because of a failure that may pass.
//
// kafka-go reports a message too large for BatchBytes before sending
// anything, naming it; the brokers report a refusal (too large, invalid,
// not authorised) for a whole partition request. Such a request's
// messages are then sent one by one, so only the culprits are refused.
func (s *Sink) settle(b *batch, n int, err error) (retry bool) {
	var tooLarge kgo.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		for i := 0; i < n; i++ {
			if sameMessage(&b.msgs[i], &tooLarge.Message) {
				s.deadLetter(&b.msgs[i], b.offs[i], "message larger than kafka.max_message_bytes")
				b.retain(func(j int) bool { return j != i })
				return false
			}
		}
		return true
	}
	var werrs kgo.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != n {
		if cause, perm := permanent(err); perm && n == 1 {
			s.deadLetter(&b.msgs[0], b.offs[0], cause)
			b.retain(func(j int) bool { return j != 0 })
			return false
		}
		return true
	}
	var okTimes []time.Time
	gone := make([]bool, n)
	for i, werr := range werrs {
		if werr == nil {
			okTimes = append(okTimes, b.written[i])
			gone[i] = true
			continue
		}
		cause, perm := permanent(werr)
		switch {
		case !perm:
			retry = true
		case n == 1 || b.hasSolo && b.offs[i] <= b.solo:
			s.deadLetter(&b.msgs[i], b.offs[i], cause)
			gone[i] = true
		default:
			// One partition request refused: find the culprits alone.
			if !b.hasSolo || b.offs[i] > b.solo {
				b.solo = b.offs[i]
			}
			b.hasSolo = true
		}
	}
	s.observe(okTimes)
	b.retain(func(i int) bool { return i >= n || !gone[i] })
	return retry
}

// sameMessage tells whether a and b are the same message (kafka-go hands
// back a copy of the message struct).
func sameMessage(a, b *kgo.Message) bool {
	return len(a.Value) == len(b.Value) && len(a.Value) > 0 && &a.Value[0] == &b.Value[0]
}

// permanent reports whether err is a refusal that no retry changes, and
// names its cause.
func permanent(err error) (string, bool) {
	var tooLarge kgo.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		return "message larger than kafka.max_message_bytes", true
	}
	var ke kgo.Error
	if !errors.As(err, &ke) {
		return "", false
	}
	switch ke {
	case kgo.MessageSizeTooLarge, kgo.RecordListTooLarge, kgo.InvalidRecord,
		kgo.InvalidMessageSize, kgo.TopicAuthorizationFailed, kgo.ClusterAuthorizationFailed:
		return "refused by the broker: " + ke.Title(), true
	}
	return "", false
}

// forgetDropped removes from b the records the spool has dropped: while
// the sender waited to retry, the spool may have filled and dropped the
// oldest records, these among them. They are counted and reported as lost,
// so they must not be sent after all.
func (s *Sink) forgetDropped(b *batch) {
	released := s.sp.Stats().Acked
	b.retain(func(i int) bool { return b.offs[i] >= released })
}

func (s *Sink) observe(written []time.Time) {
	if len(written) == 0 {
		return
	}
	now := s.cfg.Now()
	s.m.delivered.Add(float64(len(written)))
	for _, t := range written {
		d := now.Sub(t)
		s.m.ackLatency.Observe(d.Seconds())
		if s.cfg.ObserveAck != nil {
			s.cfg.ObserveAck(d)
		}
	}
}
