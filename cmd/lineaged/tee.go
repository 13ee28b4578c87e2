package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lineaged/lineaged/capture"
	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy/redact"
)

// kindTeeMark is the event that starts a tee at one point of the engine's
// input: the step that carries it is the last the tee leaves out, and when
// it reaches the sink stage every event before it has its seq, the seq a
// replay of the tee numbers after. It is never written.
const kindTeeMark = "lineaged.internal.tee"

// Header meta keys of a tee (docs/capture.md).
const (
	metaTee        = "tee"
	metaTeeSession = "tee_session"
)

// defaultTeeQueue bounds the records a tee holds for a client that is
// behind (control.tee_queue): past it the tee is dropped, never the
// pipeline held.
const defaultTeeQueue = 1 << 15

// teeHub holds the tees of a running pipeline and routes the engine's
// steps and facts to them. With no tee the engine builds no facts
// (lineage.RecordDepsWhile); steps still cost an atomic load each.
type teeHub struct {
	mu      sync.RWMutex
	any     atomic.Bool
	pending map[*event.Event]*tee // mark sent, not yet taken by the engine
	marked  map[*event.Event]*tee // mark taken, not yet at the sink stage
	armed   []*tee                // start at the next step
	active  []*tee
	// draining tees take no more steps, only the facts of lookups still
	// running when they ended (stop).
	draining []*tee
	// Calls of the observer and posture source, so a tee renumbers the
	// indexed facts (agent.*, posture) from its own start.
	obsCalls, postCalls atomic.Uint64
	dropped             atomic.Uint64 // tees dropped for a slow client
	started             atomic.Uint64
}

// tee is one client's capture stream.
type tee struct {
	rec               *captureRec
	sink              *teeSink
	obsBase, postBase uint64
	dropped           chan struct{} // closed when the client fell behind
	ended             chan struct{} // closed when the sensor stops
	dropOnce, endOnce sync.Once
	tries             int           // marks resent while events were parked
	settle            time.Time     // resent until then
	ending            bool          // stop asked: leave at the next step (h.mu)
	left              chan struct{} // closed when it left at a step boundary
	failed            error         // the tee failed (then dropped is closed)
}

// snapshotTee records the engine's state at the tee's first step, on the
// engine's goroutine, before it acts on that step: replay restores it in
// place of a /proc seed, so every process the engine knew (from its exec,
// the /proc seed or its ancestry) is rebuilt as the engine had it, those
// gone from /proc since included. What was still being computed (a hash,
// an agent resolution) is recorded when it completes.
func (t *tee) snapshotTee(e *lineage.Engine) {
	t.rec.snapshot(e.Snapshot(t.rec.fact))
}

// A stopped tee waits up to teeEndWait for the engine's next step, then
// takes the answers of lookups still running for teeDrain.
const (
	teeEndWait = 2 * time.Second
	teeDrain   = time.Second
)

// A tee waits for the engine to hold no parked event, resending its mark
// teeSettleDelay apart for up to teeSettle.
const (
	teeSettle      = time.Second
	teeSettleDelay = 10 * time.Millisecond
)

// start opens a tee onto f: the header waits for the seq it follows, the
// records begin with what replay needs to stand alone (host, boot, the
// engine's snapshot, the posture in force), then the engine's steps and
// facts from the mark on.
func (h *teeHub) start(ctx context.Context, p *pipeline, req controlRequest, f *os.File) (*tee, error) {
	if p.engine == nil || p.baseDeps.Host == nil {
		return nil, errors.New("the sensor is not running")
	}
	rec := &captureRec{log: p.log.With("component", "tee")}
	if !req.Raw {
		r, err := redact.New(p.cfg.Redact)
		if err != nil {
			return nil, fmt.Errorf("tee redaction: %w", err)
		}
		rec.red = r
	}
	host, kern := unameRelease()
	meta := captureMeta(p)
	meta[metaHooks], meta[metaReason] = p.sensor.Hooks()
	meta[metaTee] = "1"
	if req.Session != "" {
		meta[metaTeeSession] = req.Session
	}
	t := &tee{rec: rec, dropped: make(chan struct{}), ended: make(chan struct{}), left: make(chan struct{})}
	t.sink = newTeeSink(f, p.cfg.Control.TeeQueue, capture.Header{
		SensorVersion: version, Host: host, Kernel: kern,
		ConfigDigest: configDigest(p.cfg), Raw: req.Raw, Meta: meta,
	}, func() {
		t.dropOnce.Do(func() {
			h.dropped.Add(1)
			close(t.dropped)
		})
	})
	rec.w = t.sink
	// What a replay's engine looks up when it is built (host, boot time),
	// asked the same way of the same providers, into this tee only.
	if _, err := lineage.New(p.lineageCfg, lineage.RecordDeps(p.baseDeps, rec.fact), p.log.With("component", "tee")); err != nil {
		t.sink.abort()
		_ = rec.close("")
		return nil, fmt.Errorf("tee snapshot: %w", err)
	}
	mark := &event.Event{Kind: kindTeeMark, Time: time.Now().UTC()}
	h.mu.Lock()
	if h.pending == nil {
		h.pending, h.marked = map[*event.Event]*tee{}, map[*event.Event]*tee{}
	}
	h.pending[mark] = t
	h.any.Store(true)
	h.mu.Unlock()
	h.started.Add(1)
	go func() {
		select {
		case <-ctx.Done():
		default:
			p.engine.Emit(mark)
		}
	}()
	return t, nil
}

// step routes one engine input (on the engine's goroutine, before it acts).
func (h *teeHub) step(p *pipeline, s lineage.Step) {
	if !h.any.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// A tee being stopped ends here, between two steps: the lookups the
	// engine made for the step before were all answered, on this
	// goroutine, and recorded.
	kept := h.active[:0]
	for _, t := range h.active {
		if t.ending {
			h.draining = append(h.draining, t)
			close(t.left)
			continue
		}
		kept = append(kept, t)
	}
	clear(h.active[len(kept):])
	h.active = kept
	if s.Kind == lineage.StepExternal && s.Ev != nil && s.Ev.Kind == kindTeeMark {
		// Another tee's mark is an input like any (its event makes the
		// same lookups in replay, which leaves it out at the sink stage).
		for _, t := range h.active {
			t.rec.step(s)
		}
		t := h.pending[s.Ev]
		if t == nil {
			return
		}
		delete(h.pending, s.Ev)
		// Events parked for a parent come out inside the tee with their
		// input before it: start where none is parked, if that comes
		// within teeSettle (those still parked are in the snapshot).
		if t.settle.IsZero() {
			t.settle = time.Now().Add(teeSettle)
		}
		settling := time.Now().Before(t.settle)
		if p.engine.Stats().Pending > 0 && settling {
			t.tries++
			mark := &event.Event{Kind: kindTeeMark, Time: time.Now().UTC()}
			h.pending[mark] = t
			go func() {
				time.Sleep(teeSettleDelay)
				p.engine.Emit(mark)
			}()
			return
		}
		if !settling {
			p.log.Info("tee starts with events parked for a parent (its snapshot holds them)", "pending", p.engine.Stats().Pending)
		}
		h.marked[s.Ev] = t
		h.armed = append(h.armed, t)
		return
	}
	for _, t := range h.armed {
		t.snapshotTee(p.engine)
		t.obsBase, t.postBase = h.obsCalls.Load(), h.postCalls.Load()
		if p.postureNow != nil {
			t.rec.fact(lineage.Fact{Kind: lineage.FactPosture, Posture: p.postureNow.Latest()})
		}
		h.active = append(h.active, t)
	}
	h.armed = nil
	for _, t := range h.active {
		t.rec.step(s)
	}
}

// fact routes one provider answer (any goroutine).
func (h *teeHub) fact(f lineage.Fact) {
	if !h.any.Load() {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, t := range h.active {
		t.fact(f)
	}
	for _, t := range h.draining {
		t.fact(f)
	}
}

// fact records one provider answer in t, renumbered from its start.
func (t *tee) fact(f lineage.Fact) {
	switch f.Kind {
	case lineage.FactObsExec, lineage.FactObsFile, lineage.FactResolved:
		if f.N <= t.obsBase {
			return // a call from before the tee
		}
		f.N -= t.obsBase
	case lineage.FactPosture:
		if f.N < t.postBase {
			return
		}
		f.N -= t.postBase
	}
	t.rec.fact(f)
}

// atSink is the sink stage's side: true when ev is a tee's mark (not to be
// written); the tee's header then takes the last seq given out, and the
// tee the last stage's part of the snapshot (the session roots' verdicts,
// the policy stage's state), which stands here after exactly the events
// before the tee: this runs on the emitter's goroutine, where they are
// kept.
func (h *teeHub) atSink(p *pipeline, ev *event.Event, last uint64) bool {
	if ev.Kind != kindTeeMark {
		return false
	}
	h.mu.Lock()
	t := h.marked[ev]
	delete(h.marked, ev)
	h.mu.Unlock()
	if t != nil {
		t.rec.snapshotOut(p.engine.SnapshotVerdicts(), p.policy.Snapshot())
		t.sink.begin(last)
	}
	return true
}

// stop ends t: it leaves the hub, its stop mark is written and its stream
// flushed. It returns the records written and why the tee failed, if it
// did.
func (h *teeHub) stop(t *tee, reason string) (uint64, error) {
	// A tee whose mark has not reached the sink stage yet gets a moment
	// (its header needs the seq there).
	select {
	case <-t.sink.begun:
	case <-t.dropped:
	case <-time.After(10 * time.Second):
		t.sink.abort()
	}
	// An active tee ends at the engine's next step (a tick comes every
	// pending timeout), so its last step has all its facts; then it takes
	// the answers of lookups still running (a hash) for a moment more.
	h.mu.Lock()
	active := slices.Contains(h.active, t)
	t.ending = active
	h.mu.Unlock()
	if active {
		select {
		case <-t.left:
			select {
			case <-time.After(teeDrain):
			case <-t.dropped:
			}
		case <-t.dropped:
		case <-time.After(teeEndWait):
		}
	}
	h.mu.Lock()
	for m, x := range h.pending {
		if x == t {
			delete(h.pending, m)
		}
	}
	for m, x := range h.marked {
		if x == t {
			delete(h.marked, m)
		}
	}
	h.armed = without(h.armed, t)
	h.active = without(h.active, t)
	h.draining = without(h.draining, t)
	h.any.Store(len(h.pending)+len(h.marked)+len(h.armed)+len(h.active)+len(h.draining) > 0)
	h.mu.Unlock()
	var dropErr error
	select {
	case <-t.dropped:
		if t.failed != nil {
			dropErr = t.failed
			t.sink.abort()
			reason = t.failed.Error()
			break
		}
		dropErr = fmt.Errorf("tee dropped: the client fell behind the sensor (%d records queued, control.tee_queue); the capture ends early", cap(t.sink.q))
		t.sink.abort()
		reason = "tee dropped: the client fell behind"
	default:
	}
	select {
	case <-t.ended:
		reason = "the sensor stopped"
	default:
	}
	err := t.rec.close(reason)
	if dropErr != nil {
		err = dropErr
	}
	return t.sink.count.Load(), err
}

// endAll tells every tee's client the sensor is stopping.
func (h *teeHub) endAll() {
	h.mu.RLock()
	var all []*tee
	for _, t := range h.pending {
		all = append(all, t)
	}
	for _, t := range h.marked {
		all = append(all, t)
	}
	all = append(append(append(all, h.armed...), h.active...), h.draining...)
	h.mu.RUnlock()
	for _, t := range all {
		t.endOnce.Do(func() { close(t.ended) })
	}
}

func without(ts []*tee, t *tee) []*tee {
	out := ts[:0]
	for _, x := range ts {
		if x != t {
			out = append(out, x)
		}
	}
	return out
}

// teeSink is a tee's bounded queue in front of its capture writer: Add
// never blocks (a full queue drops the tee), and the writer, on its own
// goroutine, starts once the header's seq is known.
type teeSink struct {
	mu     sync.RWMutex
	closed bool
	q      chan teeRecord
	f      *os.File
	hdr    capture.Header
	after  chan uint64
	begun  chan struct{}
	quit   chan struct{}
	full   func()
	count  atomic.Uint64
	done   chan struct{}
	err    error
	once   sync.Once
}

type teeRecord struct {
	t capture.Type
	b []byte
}

var errTeeFull = errors.New("tee queue full")

func newTeeSink(f *os.File, size int, h capture.Header, full func()) *teeSink {
	s := &teeSink{q: make(chan teeRecord, max(size, 16)), f: f, hdr: h, after: make(chan uint64, 1), begun: make(chan struct{}),
		quit: make(chan struct{}), full: full, done: make(chan struct{})}
	go s.run()
	return s
}

func (s *teeSink) begin(last uint64) {
	select {
	case s.after <- last:
		close(s.begun)
	default:
	}
}

// abort closes the file under a writer that may be stuck on it.
func (s *teeSink) abort() {
	s.once.Do(func() { close(s.quit) })
	s.f.Close()
}

func (s *teeSink) run() {
	defer close(s.done)
	defer s.f.Close()
	var after uint64
	select {
	case after = <-s.after:
	case <-s.quit:
		for range s.q {
		}
		s.err = errors.New("tee ended before it started")
		return
	}
	s.hdr.Meta[metaSeqAfter] = strconv.FormatUint(after, 10)
	w, err := capture.NewWriter(s.f, s.hdr, capture.WriterConfig{})
	if err != nil {
		for range s.q {
		}
		s.err = err
		return
	}
	for r := range s.q {
		if err := w.Add(r.t, r.b); err != nil && s.err == nil {
			s.err = err
		}
		s.count.Add(1)
	}
	if err := w.Close(); err != nil && s.err == nil {
		s.err = err
	}
}

func (s *teeSink) Add(t capture.Type, b []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	select {
	case s.q <- teeRecord{t, b}:
		return nil
	default:
		s.full()
		return errTeeFull
	}
}

// Close ends the queue and waits for the writer to flush it.
func (s *teeSink) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.q)
	}
	s.mu.Unlock()
	<-s.done
	return s.err
}

// countObserver and countPosture count the engine's calls (teeHub).
type countObserver struct {
	in agent.Integration
	n  *atomic.Uint64
}

func (c countObserver) Exec(x agent.Exec) agent.Result {
	c.n.Add(1)
	return c.in.Exec(x)
}

func (c countObserver) File(x agent.File) agent.Result {
	c.n.Add(1)
	return c.in.File(x)
}

func (c countObserver) Exit(p *event.Process) { c.in.Exit(p) }

var _ agent.Seeder = countObserver{}

func (c countObserver) Seeded(procs []agent.Seeded) {
	if sd, ok := c.in.(agent.Seeder); ok {
		sd.Seeded(procs)
	}
}

type countPosture struct {
	in lineage.PostureSource
	n  *atomic.Uint64
}

func (c countPosture) Latest() *event.Posture {
	c.n.Add(1)
	return c.in.Latest()
}

// recordFact hands one provider answer to run --capture and the tees.
func (p *pipeline) recordFact(f lineage.Fact) {
	if p.capture != nil {
		p.capture.fact(f)
	}
	p.tees.fact(f)
}

// recordStep hands one engine input to run --capture and the tees (a
// tee's mark too: replay takes it out at the sink stage, as live does).
func (p *pipeline) recordStep(s lineage.Step) {
	if p.capture != nil {
		p.capture.step(s)
	}
	p.tees.step(p, s)
}

// closeControl closes the control socket and ends the tees: each client
// gets its stream flushed and its answer.
func (p *pipeline) closeControl() {
	if p.control == nil {
		return
	}
	p.control.close()
	p.tees.endAll()
	done := make(chan struct{})
	go func() {
		p.control.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.log.Warn("tees still ending at shutdown")
	}
}
