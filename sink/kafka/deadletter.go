package kafka

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	kgo "github.com/segmentio/kafka-go"
)

// DeadLetterName is the file, in Config.DeadLetterDir, that keeps the
// records the brokers refused for good, one JSON object a line.
const DeadLetterName = "dead-letter.jsonl"

// maxDeadLetterBytes bounds the dead-letter file; past it a refused
// record is only counted and reported.
const maxDeadLetterBytes = 64 << 20

// deadLetterLine is one line of the dead-letter file: the refused message
// whole (message when it is JSON, message_base64 otherwise) and why.
type deadLetterLine struct {
	Time          time.Time       `json:"time"`
	Cause         string          `json:"cause"`
	Topic         string          `json:"topic"`
	Key           string          `json:"key"`
	SpoolOffset   uint64          `json:"spool_offset"`
	Seq           uint64          `json:"seq,omitempty"`
	Message       json.RawMessage `json:"message,omitempty"`
	MessageBase64 []byte          `json:"message_base64,omitempty"`
}

func (s *Sink) deadLetterPath() string {
	dir := s.cfg.DeadLetterDir
	if dir == "" {
		dir = s.cfg.Spool.Dir
	}
	return filepath.Join(dir, DeadLetterName)
}

// deadLetter takes a record the brokers refused for good (spool offset
// off) out of delivery: it is appended to the dead-letter file, counted,
// and reported by a sensor.loss event naming the cause and the file.
func (s *Sink) deadLetter(m *kgo.Message, off uint64, cause string) {
	s.m.refused.Inc()
	s.mu.Lock()
	line := deadLetterLine{Time: s.cfg.Now().UTC(), Cause: cause, Topic: s.cfg.Topic, Key: string(m.Key), SpoolOffset: off}
	s.refused.count++
	s.refused.where = "kafka"
	s.refused.reason = mergeReason(s.refused.reason, cause)
	if off >= s.spooledBase && off < s.spooledBase+uint64(len(s.spooled)) {
		rec := s.spooled[off-s.spooledBase]
		s.refused.add(rec)
		line.Seq = rec.seq
	}
	s.mu.Unlock()
	s.writeDeadLetter(line, m.Value)
}

// refuseLoss dead-letters the pending loss report, refused for good.
func (s *Sink) refuseLoss(cause string) {
	s.m.refused.Inc()
	s.mu.Lock()
	r := s.pending
	s.pending = nil
	s.mu.Unlock()
	if r == nil {
		return
	}
	s.log.Error("kafka: loss report refused by the brokers, kept in the dead-letter file", "cause", cause, "seq", r.ev.Seq)
	s.writeDeadLetter(deadLetterLine{Time: s.cfg.Now().UTC(), Cause: cause, Topic: s.cfg.Topic, Key: string(r.msg.Key), Seq: r.ev.Seq}, r.msg.Value)
}

func (s *Sink) writeDeadLetter(line deadLetterLine, value []byte) {
	if json.Valid(value) {
		line.Message = value
	} else {
		line.MessageBase64 = value
	}
	b, err := json.Marshal(line)
	if err == nil {
		err = appendDeadLetter(s.deadLetterPath(), append(b, '\n'))
	}
	if err != nil {
		s.m.deadLetterErrors.Inc()
		s.log.Error("kafka: refused record not kept", "file", s.deadLetterPath(), "cause", line.Cause, "seq", line.Seq, "err", err)
		return
	}
	s.log.Error("kafka: record refused by the brokers, kept in the dead-letter file", "file", s.deadLetterPath(), "cause", line.Cause, "seq", line.Seq)
}

// appendDeadLetter appends b to the file at path (0600, never through a
// symbolic link), unless that would take it past maxDeadLetterBytes.
func appendDeadLetter(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size()+int64(len(b)) > maxDeadLetterBytes {
		return fmt.Errorf("dead-letter file full (%d bytes)", maxDeadLetterBytes)
	}
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Sync()
}

// mergeReason adds reason to the reasons of one report.
func mergeReason(have, reason string) string {
	switch {
	case have == "" || have == reason:
		return reason
	case len(have) > 512:
		return have
	}
	return have + "; " + reason
}
