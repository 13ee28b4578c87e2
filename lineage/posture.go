package lineage

import (
	"sync/atomic"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/posture"
)

// PostureOf maps a posture sample into the event's posture object. The
// failed list is shared with the sample, which neither side modifies.
func PostureOf(s *posture.Sample) *event.Posture {
	p := &event.Posture{
		SampledAt: s.SampledAt,
		Compliant: s.Compliant,
		Failed:    s.Failed,
	}
	if len(s.Checks) > 0 {
		p.Checks = make(map[string]event.Check, len(s.Checks))
		for name, r := range s.Checks {
			p.Checks[name] = event.Check{OK: r.OK, Detail: r.Detail}
		}
	}
	return p
}

// PostureEvent is the event that reports a sample: posture.sample, or
// posture.change when r is posture.Changed. The engine's Emit numbers it.
func PostureEvent(r posture.Report, s *posture.Sample) *event.Event {
	kind := event.KindPostureSample
	if r == posture.Changed {
		kind = event.KindPostureChange
	}
	return &event.Event{Kind: kind, Time: s.SampledAt, Posture: PostureOf(s)}
}

// PostureSampler is the part of a posture.Sampler that LatestPosture reads.
type PostureSampler interface {
	// Latest is the most recent sample, nil before the first; it must be
	// cheap (one atomic load).
	Latest() *posture.Sample
}

// LatestPosture is the PostureSource over a posture sampler: it maps each
// new sample once and hands every later event the same mapped value, so the
// per-event cost stays two atomic loads. Safe for concurrent use.
type LatestPosture struct {
	Sampler PostureSampler
	last    atomic.Pointer[mappedPosture]
}

type mappedPosture struct {
	from *posture.Sample
	to   *event.Posture
}

// Latest implements PostureSource.
func (l *LatestPosture) Latest() *event.Posture {
	s := l.Sampler.Latest()
	if s == nil {
		return nil
	}
	if m := l.last.Load(); m != nil && m.from == s {
		return m.to
	}
	m := &mappedPosture{from: s, to: PostureOf(s)}
	l.last.Store(m)
	return m.to
}
