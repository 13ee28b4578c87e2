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
	cfg  Config
	deps Deps
	log  *slog.Logger
	host event.Host
	boot time.Time
	now  func() time.Time

	t       *table
	sess    *sessions
	pending pendingQueue
	lastKt  uint64

	bins *binaries

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
	return &Engine{
		cfg: c, deps: deps, log: log.With("component", "lineage"),
		host: host, boot: boot, now: now,
		t: t,
		sess: &sessions{
			roots: make(map[sensor.ProcKey]string), maxRoots: c.MaxProcesses, t: t,
			bootID: host.BootID, obs: deps.Observer, proc: deps.Proc, wait: c.EnrichWait,
		},
		pending: newPendingQueue(),
		bins:    newBinaries(deps.Binaries),
		ext:     make(chan *event.Event, 64),
		extFor:  make(chan forProc, 64),
	}, nil
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
	return e.stats
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
	items := make(chan *outItem, 256)
	emitErr := make(chan error, 1)
	go func() { emitErr <- e.emitLoop(ctx, items, out) }()
	tick := time.NewTicker(e.cfg.PendingTimeout)
	defer tick.Stop()
	push := func(its ...*outItem) {
		for _, it := range its {
			select {
			case items <- it:
			case <-ctx.Done():
				return
			}
		}
	}
	// What was emitted before Run (sensor.start, the first posture sample)
	// opens the stream, ahead of kernel events already waiting: select
	// below would pick between the two at random.
	for queued := true; queued; {
		select {
		case ev := <-e.ext:
			push(e.external(ev))
		default:
			queued = false
		}
	}
	for {
		select {
		case <-ctx.Done():
			close(items)
			<-emitErr
			return ctx.Err()
		case <-tick.C:
			push(e.flushPending(false, true)...)
			push(e.retryFor(false)...)
		case ev := <-e.ext:
			push(e.external(ev))
		case f := <-e.extFor:
			if it := e.externalFor(f, false); it != nil {
				push(it)
			}
		case ev, ok := <-in:
			if !ok {
				push(e.atEnd()...)
				close(items)
				return <-emitErr
			}
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
