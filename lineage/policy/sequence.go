package policy

import (
	"sync"

	"github.com/lineaged/lineaged/lineage/event"
)

// Sequencer is the one place where events are numbered: it gives every event
// of a sensor run, whoever made it (lineage, posture, policy, a sink's loss
// report), its seq and event_id, after the policy stage and the output
// transforms and before the sinks. It is safe for concurrent use; seqs
// follow the order of the calls.
type Sequencer struct {
	instance string

	mu    sync.Mutex
	seq   uint64
	state *SeqState // nil: the seqs are not kept
}

// NewSequencer numbers the events of the sensor run named instance (the
// sensor.instance_id). event_id derives from instance, seq and the event
// time (event.NewEventID), so the same input replayed under the same
// instance yields the same ids.
func NewSequencer(instance string) *Sequencer {
	return &Sequencer{instance: instance}
}

// NewSequencerAfter numbers from after last (the last seq of the previous
// run, so a restart never reuses one), recording every seq it gives out in
// state (nil: not recorded).
func NewSequencerAfter(instance string, last uint64, state *SeqState) *Sequencer {
	return &Sequencer{instance: instance, seq: last, state: state}
}

// Stamp numbers one event.
func (s *Sequencer) Stamp(ev *event.Event) {
	s.mu.Lock()
	s.stampLocked(ev)
	resolve(ev)
	s.mu.Unlock()
}

// StampAll numbers evs in order, consecutively, then fills each alert's
// trigger_event_id, so an alert may name an event later in the same batch.
func (s *Sequencer) StampAll(evs []*event.Event) {
	s.mu.Lock()
	for _, ev := range evs {
		s.stampLocked(ev)
	}
	for _, ev := range evs {
		resolve(ev)
	}
	s.mu.Unlock()
}

func (s *Sequencer) stampLocked(ev *event.Event) {
	s.seq++
	ev.Seq = s.seq
	ev.EventID = event.NewEventID(ev.Time, s.instance, s.seq)
	if s.state != nil {
		s.state.Stamped(s.seq, ev.Time)
	}
}

// resolve fills an alert's trigger_event_id from its trigger, numbered by
// now (a trigger that was never numbered leaves it empty).
func resolve(ev *event.Event) {
	if a := ev.Alert; a != nil && a.Trigger != nil {
		a.TriggerEventID = a.Trigger.EventID
		a.Trigger = nil
	}
}

// Last is the last seq given out (0 before the first).
func (s *Sequencer) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}
