// Package lineage turns raw sensor events into enriched lineaged events:
// a process table keyed by exec identity, ancestry up to pid 1, agent
// attribution, binary identity and user identity.
//
// One goroutine owns the process table and builds events in arrival order;
// hashing runs in a worker pool, and an emitter goroutine waits (bounded by
// Config.EnrichWait) for each event's hashes before sending it on, so every
// event carries its hashes and events leave in order.
package lineage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// Stats are the engine's counters.
type Stats struct {
	Live     int // live images in the table
	Exited   int // exited images kept for their grace period
	Pending  int // events waiting for a parent
	Emitted  uint64
	Seeded   uint64
	FromProc uint64 // images read from /proc after start (ancestors outside a session)
	// Evictions are images dropped to stay within MaxProcesses; Expired
	// those dropped after their exit grace period.
	Evictions uint64
	Expired   uint64
	// Misses are events emitted with a part missing (event.Partial).
	Misses uint64
	// PendingOverflow counts events forced out of a full pending queue;
	// PendingTimeouts those whose parent never arrived in time.
	PendingOverflow uint64
	PendingTimeouts uint64
	// HashWaitTimeouts counts binaries still unhashed at EnrichWait.
	HashWaitTimeouts uint64
	// ResolveTimeouts counts agent resolutions that ran past EnrichWait.
	ResolveTimeouts uint64
	// BinaryFollowUps counts process.binary events queued for execs whose
	// hash came late; BinaryFollowUpsDropped those not sent because too
	// many were waiting. InspectionsRefused counts binaries given verdict
	// error at once because too many inspections were in flight.
	BinaryFollowUps        uint64
	BinaryFollowUpsDropped uint64
	InspectionsRefused     uint64
	// AgentLookalikes counts execs the agent table recognised inside a
	// session that stayed members of it, their binary not verified.
	AgentLookalikes uint64
}

// Engine is the lineage stage of the pipeline. handle runs each raw event
// through its jobs in order, one file each: pending.go holds an event back
// until the process it needs is in the table (proc.go reads that process
// from /proc when the kernel never will report it); exec.go and build.go
// apply the event to the table (table.go) and build the enriched event,
// with binaries.go hashing binaries, sessions.go attributing agents,
// identity.go naming people and mapping.go filling the payload; emit.go
// waits for the parts that come late and sends events on in order.
type Engine struct {
	cfg Config
	// humans is cfg.Humans, swapped by SetHumans.
	humans atomic.Pointer[map[string]event.Human]
	deps   Deps
	log    *slog.Logger
	host   event.Host
	boot   time.Time
	now    func() time.Time

	t       *table
	sess    *sessions
	pending pendingQueue
	lastKt  uint64

	bins *binaries
	// demoted are the look-alike agents that stay in their enclosing
	// session; verify labels session roots (verify.go).
	demoted demoted
	verify  verifier
	// late are the process.binary follow-ups waiting to go out.
	late lateBinaries

	statsMu sync.Mutex
	stats   Stats

	// ext carries events that did not come from the kernel (sensor.start,
	// posture samples) into Run, which orders them in line with the rest;
	// final is emitted after everything else when the input ends.
	ext     chan *event.Event
	extFor  chan forProc
	forWait []forProc // EmitFor events waiting for their process
	finalMu sync.Mutex
	final   []*event.Event

	// steps, when set, is told each input Run takes, in order (a capture
	// records them: steps.go).
	steps func(Step)
	// waitRec is told each enrichment wait's outcome; waitReplay, when
	// set, decides them instead (steps.go).
	waitRec    func(key string)
	waitReplay func(key string, done <-chan struct{}) bool
	// leaveAtEnd: RunSteps does not force out what is left at the end of
	// its input (LeaveAtEnd).
	leaveAtEnd bool
}

// New builds an engine. Host, Boot, Proc, Binaries and Users are required.
func New(cfg Config, deps Deps, log *slog.Logger) (*Engine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		return nil, errors.New("lineage: nil logger")
	}
	if missing := deps.missing(); len(missing) > 0 {
		return nil, fmt.Errorf("lineage: missing dependencies: %v", missing)
	}
	host, err := deps.Host.Host()
	if err != nil {
		return nil, fmt.Errorf("lineage: host info: %w", err)
	}
	if host.BootID == "" {
		return nil, errors.New("lineage: host info has no boot id (needed for exec ids)")
	}
	boot, err := deps.Boot.BootTime()
	if err != nil {
		return nil, fmt.Errorf("lineage: boot time: %w", err)
	}
	now := deps.Clock
	if now == nil {
		now = time.Now
	}
	t := newTable(c.MaxProcesses)
	e := &Engine{
		cfg: c, deps: deps, log: log.With("component", "lineage"),
		host: host, boot: boot, now: now,
		t: t,
		sess: &sessions{
			roots: make(map[sensor.ProcKey]string), maxRoots: c.MaxProcesses, t: t,
			bootID: host.BootID, obs: deps.Observer, proc: deps.Proc, wait: c.EnrichWait,
		},
		pending: newPendingQueue(),
		demoted: demoted{max: c.MaxProcesses},
		verify:  verifier{rel: c.AgentReleases},
		bins:    newBinaries(deps.Binaries),
		ext:     make(chan *event.Event, 64),
		extFor:  make(chan forProc, 64),
	}
	e.SetHumans(c.Humans)
	return e, nil
}

// SetHumans puts a new login-user-to-person map in force from the next
// event on (a SIGHUP reload). Safe for concurrent use with the engine.
func (e *Engine) SetHumans(h map[string]event.Human) {
	e.humans.Store(&h)
}

// missing names the required dependencies that are nil.
func (d Deps) missing() []string {
	var m []string
	for _, r := range []struct {
		name string
		set  bool
	}{
		{"Host", d.Host != nil},
		{"Boot", d.Boot != nil},
		{"Proc", d.Proc != nil},
		{"Binaries", d.Binaries != nil},
		{"Users", d.Users != nil},
	} {
		if !r.set {
			m = append(m, r.name)
		}
	}
	return m
}

// Stats returns a snapshot of the counters. Safe to call concurrently.
func (e *Engine) Stats() Stats {
	e.statsMu.Lock()
	defer e.statsMu.Unlock()
	s := e.stats
	s.InspectionsRefused = e.bins.refused.Load()
	return s
}

// add updates counters only; safe from any goroutine.
func (e *Engine) add(f func(s *Stats)) {
	e.statsMu.Lock()
	f(&e.stats)
	e.statsMu.Unlock()
}

// bump updates counters and the table gauges; table goroutine only.
func (e *Engine) bump(f func(s *Stats)) {
	e.statsMu.Lock()
	f(&e.stats)
	e.stats.Live = e.t.live.n
	e.stats.Exited = e.t.exited.n
	e.stats.Pending = e.pending.len()
	e.stats.Evictions = e.t.evicted
	e.stats.Expired = e.t.expired
	e.statsMu.Unlock()
}

func (e *Engine) execID(pid uint32, startNs, imageNs uint64) string {
	return event.ExecID(e.host.BootID, pid, startNs, imageNs)
}

func (e *Engine) wall(kt uint64) time.Time { return e.boot.Add(time.Duration(kt)).UTC() }

// Run enriches events from in and sends them to out, in order, until ctx is
// cancelled or in is closed (then pending events are flushed with what is
// known and Run returns nil). It never closes out.
func (e *Engine) Run(ctx context.Context, in <-chan sensor.Event, out chan<- *event.Event) error {
	return e.run(ctx, in, chanEmit(ctx, out))
}

// RunFunc is Run handing each event to emit instead of a channel, on one
// goroutine of Run's, in order: the pipeline's last stage runs there,
// without a hand-off per event. emit may block (a slow sink): the engine
// then waits, as it does for a full channel.
func (e *Engine) RunFunc(ctx context.Context, in <-chan sensor.Event, emit func(*event.Event)) error {
	return e.run(ctx, in, func(ev *event.Event) bool { emit(ev); return true })
}

func (e *Engine) run(ctx context.Context, in <-chan sensor.Event, emit func(*event.Event) bool) error {
	b := newItemBatcher(ctx)
	emitErr := make(chan error, 1)
	go func() { emitErr <- e.emitLoop(ctx, b.ch, emit) }()
	tick := time.NewTicker(e.cfg.PendingTimeout)
	defer tick.Stop()
	push := func(its ...*outItem) { b.add(its...) }
	// What was emitted before Run (sensor.start, the first posture sample)
	// opens the stream, ahead of kernel events already waiting: select
	// below would pick between the two at random.
	for queued := true; queued; {
		select {
		case ev := <-e.ext:
			e.step(Step{Kind: StepExternal, Ev: ev})
			push(e.external(ev))
		default:
			queued = false
		}
	}
	for {
		// Nothing else waiting: what was built goes to the emitter now.
		if len(in) == 0 && len(e.ext) == 0 && len(e.extFor) == 0 {
			b.flush()
		}
		select {
		case <-ctx.Done():
			close(b.ch)
			<-emitErr
			return ctx.Err()
		case <-tick.C:
			e.step(Step{Kind: StepTick})
			push(e.flushPending(false, true)...)
			push(e.retryFor(false)...)
			push(e.lateItems()...)
		case ev := <-e.ext:
			e.step(Step{Kind: StepExternal, Ev: ev})
			push(e.external(ev))
		case f := <-e.extFor:
			e.step(Step{Kind: StepFor, Ev: f.ev, PID: f.pid, Kt: f.kt})
			if it := e.externalFor(f, false); it != nil {
				push(it)
			}
		case ev, ok := <-in:
			if !ok {
				push(e.atEnd()...)
				b.flush()
				close(b.ch)
				return <-emitErr
			}
			e.step(Step{Kind: StepRaw, Raw: &ev})
			push(e.handle(ev)...)
		}
	}
}

// handle runs one raw event down the pipeline: advance the kernel clock,
// release pending events that waited too long, then build this event, or
// park it until the process it needs is in the table, and release what it
// unblocked.
func (e *Engine) handle(ev sensor.Event) []*outItem {
	e.advance(ev.KtimeNs)
	if ev.Kind == sensor.KindLoss {
		return e.emitNow(ev, false)
	}
	var out []*outItem
	if e.pending.len() > 0 {
		// Events that waited past their timeout go before this later one.
		out = e.flushPending(false, false)
	}
	if need, ok := e.ready(ev); !ok {
		out = append(out, e.enqueue(ev, need)...)
		e.bump(func(*Stats) {})
		return out
	}
	out = append(out, e.emitNow(ev, false)...)
	out = append(out, e.flushPending(false, false)...)
	if len(e.forWait) > 0 {
		out = append(out, e.retryFor(false)...)
	}
	e.bump(func(*Stats) {}) // table gauges
	return out
}

// advance moves the engine's kernel clock to kt and expires the exited
// images whose grace period ended.
func (e *Engine) advance(kt uint64) {
	if kt > e.lastKt {
		e.lastKt = kt
		e.t.expire(e.lastKt, uint64(e.cfg.ExitGrace))
	}
}
