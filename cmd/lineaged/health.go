package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink"
	"github.com/lineaged/lineaged/sink/spool"
)

// Health thresholds (docs/operations.md, Health).
const (
	// sinkFailingLimit: writes failing with no success in between for
	// this long make the sensor unhealthy.
	sinkFailingLimit = 5 * time.Second
	// spoolFillLimit: a Kafka spool this full (of spool.max_bytes) makes
	// the sensor unhealthy: it is close to dropping the oldest records.
	spoolFillLimit = 0.9
	// stallLimit is how long a liveness probe may take to reach the sink
	// stage when no watchdog interval says otherwise.
	stallLimit = 30 * time.Second
)

// kindProbe marks the liveness probe: an event that never leaves the
// process. It is queued into lineage like sensor.start, comes out in line
// with the kernel's events, and is taken off at the sink stage, where its
// arrival proves every stage in between still moves.
const kindProbe = "lineaged.internal.probe"

// liveness follows the pipeline for the watchdog and /healthz: the probes
// sent and the last that arrived, the sink's write in progress and its
// failures.
type liveness struct {
	now func() time.Time

	mu          sync.Mutex
	probe       *event.Event // in flight, nil when none
	probeSent   time.Time
	probeBeat   uint64
	arrived     time.Time // when a probe last reached the sink stage
	arrivedBeat uint64    // the heartbeat it carried
	beatErr     error     // the last heartbeat read's failure

	writing      atomic.Int64 // start of the sink write in progress (unix ns), 0 none
	failingSince time.Time    // first failure of the current run of failures
	lastFailAt   time.Time    // latest failure
	lastFailure  error
	written      atomic.Uint64 // events written, for STATUS
}

func newLiveness(now func() time.Time) *liveness {
	l := &liveness{now: now}
	l.arrived = now() // start counts as the first arrival
	return l
}

// sendProbe reads the kernel heartbeat and, when no probe is in flight,
// queues one carrying it through emit. emit may block while lineage's
// queue is full: it runs on its own goroutine, at most one at a time.
func (l *liveness) sendProbe(beat func() (uint64, error), emit func(*event.Event)) {
	b, err := beat()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.beatErr = err
	if err != nil || l.probe != nil {
		return
	}
	ev := &event.Event{Kind: kindProbe}
	l.probe, l.probeSent, l.probeBeat = ev, l.now(), b
	go emit(ev)
}

// takeProbe is the sink stage's side: true when ev is a probe (not to be
// written).
func (l *liveness) takeProbe(ev *event.Event) bool {
	if ev.Kind != kindProbe {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ev == l.probe {
		l.arrived, l.arrivedBeat, l.probe = l.now(), l.probeBeat, nil
	}
	return true
}

// stalled says why the pipeline is not alive, "" when it is: the last
// heartbeat read failed, no probe arrived within limit, or a sink write
// has been under way longer than limit.
func (l *liveness) stalled(limit time.Duration) string {
	now := l.now()
	if start := l.writing.Load(); start != 0 {
		if d := now.Sub(time.Unix(0, start)); d > limit {
			return fmt.Sprintf("the sink is wedged: one write has taken %s", d.Round(time.Second))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.beatErr != nil {
		return "the kernel heartbeat cannot be read: " + l.beatErr.Error()
	}
	if d := now.Sub(l.arrived); d > limit {
		return fmt.Sprintf("the pipeline has not advanced: no liveness probe reached the sink for %s", d.Round(time.Second))
	}
	return ""
}

// failed notes a failed write. A run of failures is failures no more than
// sinkFailingLimit apart: a file sink buffers, so a write that returns nil
// between two failures says only that the line was queued.
func (l *liveness) failed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.lastFailAt.IsZero() || now.Sub(l.lastFailAt) > sinkFailingLimit {
		l.failingSince = now
	}
	l.lastFailAt, l.lastFailure = now, err
}

// sinkFailing says since when the sink has been failing, "" unless a run
// of failures has lasted sinkFailingLimit and is not over (the latest
// failure is less than sinkFailingLimit old).
func (l *liveness) sinkFailing() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.lastFailAt.IsZero() || now.Sub(l.lastFailAt) > sinkFailingLimit {
		return ""
	}
	if d := now.Sub(l.failingSince); d >= sinkFailingLimit {
		return fmt.Sprintf("the sink has been failing for %s: %v", d.Round(time.Second), l.lastFailure)
	}
	return ""
}

// watchedSink times each write for liveness and counts what is written by
// kind.
type watchedSink struct {
	sink.Sink
	live   *liveness
	byKind func(kind string)
}

func (w *watchedSink) Write(ctx context.Context, ev *event.Event) error {
	l := w.live
	l.writing.Store(l.now().UnixNano())
	err := w.Sink.Write(ctx, ev)
	l.writing.Store(0)
	if err != nil {
		l.failed(err)
	} else {
		l.written.Add(1)
		w.byKind(ev.Kind)
	}
	return err
}

// spoolFill is the Kafka spool's fill level (of its max_bytes), false when
// the sink has no spool.
func (p *pipeline) spoolFill() (float64, bool) {
	s, ok := p.rawSink.(interface{ Stats() spool.Stats })
	if !ok {
		return 0, false
	}
	max := p.cfg.Kafka.Spool.MaxBytes
	if max <= 0 {
		max = 256 << 20 // sink/kafka's default
	}
	return float64(s.Stats().Bytes) / float64(max), true
}

// detached names the programs no longer attached, "" when all are; the
// walk of the host's links is done at most every few seconds.
func (p *pipeline) detached() string {
	p.detachMu.Lock()
	defer p.detachMu.Unlock()
	if time.Since(p.detachAt) < 3*time.Second {
		return p.detachWhy
	}
	p.detachAt = time.Now()
	want, have, err := p.sensor.AttachedPrograms()
	switch {
	case err != nil:
		p.detachWhy = "the attached programs cannot be read: " + err.Error()
	case len(want) == 0:
		p.detachWhy = "programs detached: the sensor has no attached programs"
	default:
		var gone []string
		for _, w := range want {
			if !contains(have, w) {
				gone = append(gone, w)
			}
		}
		p.detachWhy = ""
		if len(gone) > 0 {
			p.detachWhy = fmt.Sprintf("programs detached: %d of %d: %s", len(gone), len(want), strings.Join(gone, ", "))
		}
	}
	return p.detachWhy
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// unhealthy lists every reason the sensor is not healthy; none when it is.
func (p *pipeline) unhealthy() []string {
	var why []string
	if r := p.detached(); r != "" {
		why = append(why, r)
	}
	if r := p.live.sinkFailing(); r != "" {
		why = append(why, r)
	}
	if f, ok := p.spoolFill(); ok && f >= spoolFillLimit {
		why = append(why, fmt.Sprintf("the Kafka spool is %.0f%% full (limit %.0f%%)", f*100, spoolFillLimit*100))
	}
	if r := p.live.stalled(p.stallLimit); r != "" {
		why = append(why, r)
	}
	return why
}

// serveHealth answers GET /healthz: 200 "ok", or 503 with one reason a
// line.
func (p *pipeline) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	why := p.unhealthy()
	if len(why) == 0 {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintln(w, "unhealthy")
	for _, r := range why {
		fmt.Fprintln(w, r)
	}
}
