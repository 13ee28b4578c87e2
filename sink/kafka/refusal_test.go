package kafka

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/kafkatest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/native"
	"github.com/lineaged/lineaged/sink/spool"
)

// lossEvents returns the sensor.loss events among msgs, decoded.
func lossEvents(t *testing.T, msgs []kafkatest.Message) []event.Loss {
	t.Helper()
	var out []event.Loss
	for _, m := range msgs {
		var ev struct {
			Kind string     `json:"kind"`
			Loss event.Loss `json:"loss"`
		}
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind == event.KindSensorLoss {
			out = append(out, ev.Loss)
		}
	}
	return out
}

// deadLetters reads the dead-letter file in dir, checking it is 0600.
func deadLetters(t *testing.T, dir string) []deadLetterLine {
	t.Helper()
	path := filepath.Join(dir, DeadLetterName)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no dead-letter file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("dead-letter file mode %v, want 0600", st.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []deadLetterLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var l deadLetterLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// An event over the message limit (50 nested `sh -c` with 4 KiB argv of
// control bytes, whole ancestry, no size budget in the encoder) used to
// be retried forever: kafka-go refuses it before sending, and nothing
// after it was delivered. It goes to the dead-letter file, a sensor.loss
// names the cause, and every later event is delivered.
func TestOversizedEventDoesNotHaltDelivery(t *testing.T) {
	c := kafkatest.Cluster(t)
	cfg := baseConfig(t, c.ListenAddrs())
	s, err := New(cfg, native.Encoder{Ancestry: event.AncestryFull}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := kafkatest.Events(1, 40, 4)
	big := testevents.NestedShells(41, 50)
	big.Agent = evs[0].Agent
	after := kafkatest.Events(42, 40, 4)
	writeAll(t, s, evs)
	writeAll(t, s, []*event.Event{big})
	writeAll(t, s, after)
	msgs := kafkatest.Consume(t, c.ListenAddrs(), len(evs)+len(after)+1, 30*time.Second)
	kafkatest.CheckDelivery(t, msgs, append(evs, after...))
	losses := lossEvents(t, msgs)
	if len(losses) != 1 || losses[0].Where != "kafka" || losses[0].Count != 1 ||
		losses[0].FirstSeq != 41 || losses[0].LastSeq != 41 || !strings.Contains(losses[0].Of, "max_message_bytes") {
		t.Errorf("loss reports %+v, want one for seq 41 naming the message limit", losses)
	}
	dl := deadLetters(t, cfg.Spool.Dir)
	if len(dl) != 1 || dl[0].Seq != 41 || !bytes.Contains(dl[0].Message, []byte(big.EventID)) {
		t.Errorf("dead letters %+v, want the oversized event", dl)
	}
	if n := testutil.ToFloat64(s.m.refused); n != 1 {
		t.Errorf("refused metric %v, want 1", n)
	}
}

// With the size budget (the pipeline's default) the same event is trimmed
// to fit and delivered, marked truncated.
func TestBudgetedNestedEventIsDelivered(t *testing.T) {
	c := kafkatest.Cluster(t)
	cfg := baseConfig(t, c.ListenAddrs())
	enc := native.Encoder{Ancestry: event.AncestryFull, MaxBytes: EncodedBudget(0)}
	s, err := New(cfg, enc, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := testevents.NestedShells(1, 50)
	writeAll(t, s, []*event.Event{big})
	msgs := kafkatest.Consume(t, c.ListenAddrs(), 1, 30*time.Second)
	if len(msgs) == 0 || len(msgs[0].Value) > EncodedBudget(0) || !bytes.Contains(msgs[0].Value, []byte(`"truncated":[`)) {
		t.Fatalf("want the event delivered trimmed within %d bytes", EncodedBudget(0))
	}
}

// A broker that refuses a record for good (INVALID_RECORD here) refuses
// its whole partition request: the sender sends that request's messages
// one by one, dead-letters only the culprit and delivers the others in
// order.
func TestBrokerRefusalDeadLettersOnlyTheCulprit(t *testing.T) {
	c := kafkatest.Cluster(t)
	cfg := baseConfig(t, c.ListenAddrs())
	cfg.Compression = "none" // the broker below looks into the records
	evs := kafkatest.Events(1, 30, 1)
	poison := evs[12]
	poison.Process.Cwd = "/tmp/POISON-RECORD"
	w, sp := spoolWriter(t, cfg)
	writeAll(t, w, evs)
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	refuse := func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		bad := false
		for _, rt := range pr.Topics {
			for _, rp := range rt.Partitions {
				bad = bad || bytes.Contains(rp.Records, []byte("POISON-RECORD"))
			}
		}
		if !bad {
			return nil, nil, false
		}
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			topic := kmsg.NewProduceResponseTopic()
			topic.Topic, topic.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewProduceResponseTopicPartition()
				p.Partition = rp.Partition
				p.ErrorCode = kerr.InvalidRecord.Code
				topic.Partitions = append(topic.Partitions, p)
			}
			resp.Topics = append(resp.Topics, topic)
		}
		return resp, nil, true
	}
	c.ControlKey(int16(kmsg.Produce), refuse)
	s, err := New(cfg, native.Encoder{}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	s.Close()
	var want []*event.Event
	for _, ev := range evs {
		if ev != poison {
			want = append(want, ev)
		}
	}
	msgs := kafkatest.Consume(t, c.ListenAddrs(), len(want)+1, 30*time.Second)
	kafkatest.CheckDelivery(t, msgs, want)
	for _, m := range msgs {
		if m.EventID == poison.EventID {
			t.Error("the refused record was delivered")
		}
	}
	losses := lossEvents(t, msgs)
	if len(losses) != 1 || losses[0].Count != 1 || losses[0].Where != "kafka" || !strings.Contains(losses[0].Of, "INVALID_RECORD") && !strings.Contains(strings.ToLower(losses[0].Of), "invalid record") {
		t.Errorf("loss reports %+v, want one naming the refusal", losses)
	}
	dl := deadLetters(t, cfg.Spool.Dir)
	if len(dl) != 1 || !bytes.Contains(dl[0].Message, []byte(poison.EventID)) {
		t.Errorf("dead letters %+v, want only the poison record", dl)
	}
}

// kafka-go splits one call's messages for a partition into several
// produce requests when they pass BatchBytes; when the first fails and a
// later one succeeds, the retry lands after it and a key's events are out
// of order. The sender sizes its calls so that never happens: here every
// event has one key and is about 300 KB, and the first produce request
// fails.
func TestPartialBatchFailureKeepsKeyOrder(t *testing.T) {
	c := kafkatest.Cluster(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"}))
	cfg := baseConfig(t, c.ListenAddrs())
	cfg.Compression = "none"
	evs := kafkatest.Events(1, 10, 1)
	for i, ev := range evs {
		ev.Process = &event.Process{ExecID: "x", Argv: []string{strings.Repeat(string(rune('a'+i)), 300<<10)}}
	}
	enc := native.Encoder{MaxArgBytes: 1 << 20, MaxArgvBytes: 1 << 20}
	w, sp := spoolWriterEnc(t, cfg, enc)
	writeAll(t, w, evs)
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			topic := kmsg.NewProduceResponseTopic()
			topic.Topic, topic.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewProduceResponseTopicPartition()
				p.Partition = rp.Partition
				p.ErrorCode = kerr.NotLeaderForPartition.Code
				topic.Partitions = append(topic.Partitions, p)
			}
			resp.Topics = append(resp.Topics, topic)
		}
		return resp, nil, true
	})
	s, err := New(cfg, enc, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	s.Close()
	msgs := kafkatest.Consume(t, c.ListenAddrs(), len(evs), 30*time.Second)
	kafkatest.CheckDelivery(t, msgs, evs)
}

// spoolWriterEnc is spoolWriter with the encoder enc.
func spoolWriterEnc(t testing.TB, cfg Config, enc Encoder) (*Sink, *spool.Spool) {
	t.Helper()
	s, sp := spoolWriter(t, cfg)
	s.enc = enc
	return s, sp
}
