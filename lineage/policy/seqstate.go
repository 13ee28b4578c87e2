package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// SeqStateName is the sequencer's state file in the state directory.
const SeqStateName = "seq"

// seqMagic starts the state file; the layout after it is, little endian:
// [stamped u64][stamped time, unix ns][durable u64][durable time, unix ns].
const (
	seqMagic    = "lnseq001"
	seqFileSize = 8 + 4*8
)

// SeqState keeps, in a small file mapped into memory, the last seq the
// sequencer gave out and the last seq the sink has made durable (written
// to the spool file or the output), with their event times. Stores into
// the mapping are in the kernel's page cache at once, so they outlive a
// SIGKILL of the sensor without a system call per event; the next start
// numbers from after the last seq given out and reports the gap between
// the two marks as lost.
type SeqState struct {
	f    *os.File
	mu   sync.Mutex
	m    []byte
	prev PreviousRun
}

// PreviousRun is what the state file says of the previous run.
type PreviousRun struct {
	Found                bool
	Stamped, Durable     uint64
	StampedAt, DurableAt time.Time
}

// Lost returns the sensor.loss event for the events the previous run
// numbered and never made durable (a crash or SIGKILL between the two),
// or nil when there are none. Its time is now.
func (p PreviousRun) Lost(now time.Time) *event.Event {
	if !p.Found || p.Stamped <= p.Durable {
		return nil
	}
	l := &event.Loss{
		Where:    "sensor",
		Of:       "events numbered but not written before the previous run ended (crash or kill)",
		Count:    p.Stamped - p.Durable,
		FirstSeq: p.Durable + 1,
		LastSeq:  p.Stamped,
		From:     p.DurableAt,
		To:       p.StampedAt,
	}
	if l.From.IsZero() || l.From.After(l.To) {
		l.From = l.To
	}
	return &event.Event{Schema: event.Schema, Time: now.UTC(), Kind: event.KindSensorLoss, Loss: l}
}

// OpenSeqState opens (creating, 0600) the state file at path, maps it,
// and returns what it says of the previous run. A file that is not a
// state file is an error naming it, never silently reset.
func OpenSeqState(path string) (*SeqState, PreviousRun, error) {
	var prev PreviousRun
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, prev, fmt.Errorf("sequence state: %w", err)
	}
	fail := func(err error) (*SeqState, PreviousRun, error) {
		f.Close()
		return nil, prev, fmt.Errorf("sequence state %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fail(fmt.Errorf("in use by another lineaged: %w", err))
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if !st.Mode().IsRegular() {
		return fail(errors.New("not a regular file"))
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	switch st.Size() {
	case 0:
		if err := f.Truncate(seqFileSize); err != nil {
			return fail(err)
		}
	case seqFileSize:
	default:
		return fail(fmt.Errorf("%d bytes, want %d: not a sequence state file (remove it to start over)", st.Size(), seqFileSize))
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, seqFileSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fail(err)
	}
	s := &SeqState{f: f, m: m}
	defer func() { s.prev = prev }()
	switch string(m[:8]) {
	case seqMagic:
		prev = PreviousRun{
			Found:     true,
			Stamped:   s.u64(8),
			StampedAt: s.time(16),
			Durable:   s.u64(24),
			DurableAt: s.time(32),
		}
	case "\x00\x00\x00\x00\x00\x00\x00\x00":
		copy(m, seqMagic)
	default:
		syscall.Munmap(m)
		return fail(errors.New("bad magic: not a sequence state file (remove it to start over)"))
	}
	return s, prev, nil
}

func (s *SeqState) u64(at int) uint64 { return binary.LittleEndian.Uint64(s.m[at:]) }

func (s *SeqState) time(at int) time.Time {
	ns := int64(s.u64(at))
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func (s *SeqState) put(at int, seq uint64, t time.Time) {
	s.mu.Lock()
	if s.m != nil && seq >= s.u64(at) {
		binary.LittleEndian.PutUint64(s.m[at:], seq)
		binary.LittleEndian.PutUint64(s.m[at+8:], uint64(t.UnixNano()))
	}
	s.mu.Unlock()
}

// Stamped records that seq, of an event at t, was given out.
func (s *SeqState) Stamped(seq uint64, t time.Time) { s.put(8, seq, t) }

// Durable records that the events up to seq (the last at t) are written
// where a kill of the sensor cannot lose them.
func (s *SeqState) Durable(seq uint64, t time.Time) { s.put(24, seq, t) }

// Previous is the previous run as the state file said at open, with its
// durable mark raised by what was reported durable since (a sink that
// finds the previous run's last records on disk reports them at start,
// before anything of this run is numbered).
func (s *SeqState) Previous() PreviousRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.prev
	if s.m != nil && s.u64(24) > p.Durable && s.u64(24) <= p.Stamped {
		p.Durable, p.DurableAt = s.u64(24), s.time(32)
	}
	return p
}

// Close syncs and unmaps the file.
func (s *SeqState) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		return nil
	}
	err := syscall.Munmap(s.m)
	s.m = nil
	return errors.Join(err, s.f.Sync(), s.f.Close())
}
