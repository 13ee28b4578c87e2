// Package lineage turns raw sensor events into enriched lineaged/v1 events:
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
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
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

// Engine is the lineage stage of the pipeline.
type Engine struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	host event.Host
	boot time.Time
	now  func() time.Time

	t        *table
	sessions map[sensor.ProcKey]string // session root -> root exec id
	pending  []*pendingEvent
	blocked  map[sensor.ProcKey]int // keys with events in pending
	lastKt   uint64

	binMu    sync.Mutex
	inflight map[binKey]*binFuture

	statsMu sync.Mutex
	stats   Stats

	// ext carries events that did not come from the kernel (sensor.start,
	// posture samples) into Run, which orders them in line with the rest;
	// final is emitted after everything else when the input ends.
	ext     chan *event.Event
	finalMu sync.Mutex
	final   []*event.Event
}

type binKey struct {
	stat sensor.FileStat
	path string
}

// binFuture is a binary identity being computed.
type binFuture struct {
	done chan struct{}
	res  *event.Binary
	req  BinaryRequest
}

type pendingEvent struct {
	ev     sensor.Event
	wall   time.Time
	needed sensor.ProcKey
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
	var missing []string
	if deps.Host == nil {
		missing = append(missing, "Host")
	}
	if deps.Boot == nil {
		missing = append(missing, "Boot")
	}
	if deps.Proc == nil {
		missing = append(missing, "Proc")
	}
	if deps.Binaries == nil {
		missing = append(missing, "Binaries")
	}
	if deps.Users == nil {
		missing = append(missing, "Users")
	}
	if len(missing) > 0 {
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
	return &Engine{
		cfg: c, deps: deps, log: log.With("component", "lineage"),
		host: host, boot: boot, now: now,
		t:        newTable(c.MaxProcesses),
		sessions: make(map[sensor.ProcKey]string),
		blocked:  make(map[sensor.ProcKey]int),
		inflight: make(map[binKey]*binFuture),
		ext:      make(chan *event.Event, 64),
	}, nil
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
	e.stats.Pending = len(e.pending)
	e.stats.Evictions = e.t.evicted
	e.stats.Expired = e.t.expired
	e.statsMu.Unlock()
}

func (e *Engine) execID(pid uint32, startNs, imageNs uint64) string {
	return event.ExecID(e.host.BootID, pid, startNs, imageNs)
}

func (e *Engine) wall(kt uint64) time.Time { return e.boot.Add(time.Duration(kt)).UTC() }

// Seed loads processes that started before the sensor (a /proc scan). Call
// it before Run. Their binaries are hashed now, in the background. Kernel
// threads are kept (they have no binary): programs the kernel starts
// (usermode helpers) descend from them.
func (e *Engine) Seed(procs []*procfs.Proc) {
	ps := make([]*procfs.Proc, 0, len(procs))
	for _, p := range procs {
		if p != nil {
			ps = append(ps, p)
		}
	}
	// Parents start before their children: insert in start order so each
	// parent is in the table when its children link to it.
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Key.StartNs != ps[j].Key.StartNs {
			return ps[i].Key.StartNs < ps[j].Key.StartNs
		}
		return ps[i].PID < ps[j].PID
	})
	for _, p := range ps {
		e.insertProc(p, true)
	}
	e.bump(func(s *Stats) { s.Seeded += uint64(len(ps)) })
}

// insertProc adds a process read from /proc as a seeded image (its exec
// time is unknown, so its image time is its start time).
func (e *Engine) insertProc(p *procfs.Proc, background bool) *entry {
	if cur := e.t.get(p.Key); cur != nil {
		return cur
	}
	var parent *entry
	if pp := e.t.byPID[p.PPID]; pp != nil && p.PPID != 0 && pp.key.StartNs <= p.Key.StartNs {
		parent = pp
	}
	ent := &entry{key: p.Key, birthParent: sensor.ProcKey{PID: p.PPID}, seeded: true}
	if parent != nil {
		ent.birthParent = parent.key
	}
	ent.proc = event.Process{
		ExecID:    e.execID(p.PID, p.Key.StartNs, p.Key.StartNs),
		PID:       p.PID,
		PPID:      p.PPID,
		StartTime: e.wall(p.Key.StartNs),
		Exe:       p.Exe,
		Argv:      p.Argv,
		Cwd:       p.Cwd,
		UID:       p.UID,
		EUID:      p.EUID,
		GID:       p.GID,
		TTY:       p.TTY,
		Cgroup:    p.Cgroup,
	}
	e.fillUsers(&ent.proc, p.LoginUID)
	e.link(ent, parent)
	switch {
	case p.Exe != "":
		ent.bin = e.inspect(BinaryRequest{PID: p.PID, Path: exePath(p), Stat: p.Binary, HasStat: p.HasBinary, Background: background})
	case p.ExeErr != nil:
		// e.g. pid 1 of a sandbox whose exe even root may not follow.
		ent.proc.Binary = &event.Binary{Verdict: event.VerdictError, Reason: "executable unknown: " + p.ExeErr.Error()}
	}
	e.t.put(ent)
	return ent
}

func exePath(p *procfs.Proc) string {
	if p.ExeDeleted {
		return p.Exe + " (deleted)"
	}
	return p.Exe
}

// link sets ent's birth parent, bounding chain depth so a process that execs
// endlessly cannot grow memory without bound.
func (e *Engine) link(ent, parent *entry) {
	if parent == nil {
		return
	}
	if parent.depth+1 > e.cfg.MaxAncestry {
		// Keep the parent but cut the chain above it.
		cut := *parent
		cut.parent, cut.depth, cut.prev, cut.next, cut.indexed = nil, 0, nil, nil, false
		parent = &cut
	}
	ent.parent = parent
	ent.depth = parent.depth + 1
	ent.proc.ParentExecID = parent.proc.ExecID
}

func (e *Engine) fillUsers(p *event.Process, loginUID uint32) {
	if n, ok := e.deps.Users.UserName(p.UID); ok {
		p.User = n
	}
	if loginUID != procfs.UnsetID {
		l := loginUID
		p.LoginUID = &l
		if n, ok := e.deps.Users.UserName(l); ok {
			p.LoginUser = n
		}
	}
}

// inspect returns the (possibly shared, possibly finished) future of a
// binary's identity, starting the work off this goroutine on a miss.
func (e *Engine) inspect(req BinaryRequest) *binFuture {
	k := binKey{stat: req.Stat, path: req.Path}
	e.binMu.Lock()
	if f := e.inflight[k]; f != nil && (!f.req.Background || req.Background) {
		e.binMu.Unlock()
		return f
	}
	// A live event does not wait behind the seed's background queue: it
	// gets its own foreground request (the file is read twice at most).
	f := &binFuture{done: make(chan struct{}), req: req}
	if b, ok := e.deps.Binaries.Cached(req); ok {
		f.res = b
		close(f.done)
		e.binMu.Unlock()
		return f
	}
	e.inflight[k] = f
	e.binMu.Unlock()
	go func() {
		b := e.deps.Binaries.Inspect(context.Background(), req)
		if b == nil {
			b = errorBinary(req, "inspector returned nothing")
		}
		f.res = b
		e.binMu.Lock()
		if e.inflight[k] == f {
			delete(e.inflight, k)
		}
		e.binMu.Unlock()
		close(f.done)
	}()
	return f
}

func errorBinary(req BinaryRequest, reason string) *event.Binary {
	return &event.Binary{
		Path: req.Path, Size: req.Stat.Size, Inode: req.Stat.Inode, Dev: req.Stat.Dev,
		Mtime: time.Unix(0, req.Stat.MtimeNs).UTC(), Verdict: event.VerdictError, Reason: reason,
	}
}

// outItem is an event built in order, waiting for its binaries and agent
// resolution.
type outItem struct {
	ev      *event.Event
	fixes   []binFix
	resolve *agentWait
	built   time.Time
}

type binFix struct {
	dst *event.Process
	f   *binFuture
}

// resolveJob is an observer's Resolve running on a private copy of an
// attribution; cp is valid once done is closed.
type resolveJob struct {
	done chan struct{}
	cp   *event.Agent
}

// agentWait makes an event wait for a resolution; role overrides the role
// of the resolved attribution (a child of the root inherits it as a
// descendant).
type agentWait struct {
	job  *resolveJob
	role string
}

func withRole(a *event.Agent, role string) *event.Agent {
	if role == "" || a.Role == role {
		return a
	}
	c := *a
	c.Role = role
	return &c
}

// Run enriches events from in and sends them to out, in order, until ctx is
// cancelled or in is closed (then pending events are flushed with what is
// known and Run returns nil). It never closes out.
func (e *Engine) Run(ctx context.Context, in <-chan sensor.Event, out chan<- *event.Event) error {
	items := make(chan *outItem, 256)
	emitErr := make(chan error, 1)
	go func() { emitErr <- e.emitLoop(ctx, items, out) }()
	tick := time.NewTicker(e.cfg.PendingTimeout)
	defer tick.Stop()
	push := func(it *outItem) bool {
		select {
		case items <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		select {
		case <-ctx.Done():
			close(items)
			<-emitErr
			return ctx.Err()
		case <-tick.C:
			for _, it := range e.flushPending(false, true) {
				if !push(it) {
					break
				}
			}
		case ev := <-e.ext:
			push(e.external(ev))
		case ev, ok := <-in:
			if !ok {
				tail := e.flushPending(true, false)
				for drained := false; !drained; {
					select {
					case ev := <-e.ext:
						tail = append(tail, e.external(ev))
					default:
						drained = true
					}
				}
				e.finalMu.Lock()
				for _, ev := range e.final {
					tail = append(tail, e.external(ev))
				}
				e.final = nil
				e.finalMu.Unlock()
				for _, it := range tail {
					if !push(it) {
						break
					}
				}
				close(items)
				return <-emitErr
			}
			for _, it := range e.handle(ev) {
				if !push(it) {
					break
				}
			}
		}
	}
}

// Emit queues an event that did not come from the kernel (sensor.start, a
// posture sample) to be emitted in line with the kernel's: it gets schema,
// host and, when unset, the current time. It
// blocks only while Run's small queue is full.
func (e *Engine) Emit(ev *event.Event) { e.ext <- ev }

// EmitAtEnd keeps ev to be emitted last, after the input ends and every
// pending event is flushed (sensor.stop).
func (e *Engine) EmitAtEnd(ev *event.Event) {
	e.finalMu.Lock()
	e.final = append(e.final, ev)
	e.finalMu.Unlock()
}

func (e *Engine) external(ev *event.Event) *outItem {
	ev.Schema = event.Schema
	ev.Host = &e.host
	if ev.Time.IsZero() {
		ev.Time = e.now().UTC()
	}
	return e.finish(ev, nil, nil, nil, nil)
}

// emitLoop waits for each item's enrichment, bounded, and sends it on.
func (e *Engine) emitLoop(ctx context.Context, items <-chan *outItem, out chan<- *event.Event) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var ctxErr error
	for it := range items {
		if ctxErr != nil {
			continue // drain so the producer never blocks
		}
		deadline := it.built.Add(e.cfg.EnrichWait)
		wait := func(done <-chan struct{}) bool {
			select {
			case <-done:
				return true
			default:
			}
			d := time.Until(deadline)
			if d <= 0 {
				return false
			}
			timer.Reset(d)
			defer func() {
				if !timer.Stop() {
					select {
					case <-timer.C:
					default:
					}
				}
			}()
			select {
			case <-done:
				return true
			case <-timer.C:
				return false
			case <-ctx.Done():
				return false
			}
		}
		binLate := false
		for _, fx := range it.fixes {
			if wait(fx.f.done) {
				fx.dst.Binary = fx.f.res
			} else {
				fx.dst.Binary = errorBinary(fx.f.req, fmt.Sprintf("hashing did not finish within %v", e.cfg.EnrichWait))
				binLate = true
				e.add(func(s *Stats) { s.HashWaitTimeouts++ })
			}
		}
		if binLate {
			it.ev.Partial = appendOnce(it.ev.Partial, event.PartialBinary)
		}
		if r := it.resolve; r != nil {
			if wait(r.job.done) {
				it.ev.Agent = withRole(r.job.cp, r.role)
			} else {
				e.add(func(s *Stats) { s.ResolveTimeouts++ })
			}
		}
		select {
		case out <- it.ev:
			e.add(func(s *Stats) { s.Emitted++ })
		case <-ctx.Done():
			ctxErr = ctx.Err()
		}
	}
	return ctxErr
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// handle processes one raw event (and any pending events it unblocks).
func (e *Engine) handle(ev sensor.Event) []*outItem {
	if ev.KtimeNs > e.lastKt {
		e.lastKt = ev.KtimeNs
		e.t.expire(e.lastKt, uint64(e.cfg.ExitGrace))
	}
	if ev.Kind == sensor.KindLoss {
		return e.emitNow(ev, false)
	}
	var out []*outItem
	if len(e.pending) > 0 {
		// Events that waited past their timeout go before this later one.
		out = e.flushPending(false, false)
	}
	if need, ok := e.needs(ev); !ok {
		if e.isSessionRoot(ev) && need != (sensor.ProcKey{}) {
			// The root's ancestors are outside the session: the kernel
			// never reports them, so read them now while they live.
			e.fromProc(need)
		}
		if need2, ok2 := e.needs(ev); !ok2 {
			out = append(out, e.enqueue(ev, need2)...)
			e.bump(func(*Stats) {})
			return out
		}
	}
	out = append(out, e.emitNow(ev, false)...)
	out = append(out, e.flushPending(false, false)...)
	e.bump(func(*Stats) {}) // table gauges
	return out
}

func (e *Engine) isSessionRoot(ev sensor.Event) bool {
	if ev.Kind != sensor.KindExec {
		return false
	}
	return ev.Exec.Recognised != sensor.AgentNone || (ev.Session.InSession() && ev.Session.Root == ev.Proc)
}

// needs reports whether ev can be built now; if not, which process it waits
// for.
func (e *Engine) needs(ev sensor.Event) (sensor.ProcKey, bool) {
	if e.blocked[ev.Proc] > 0 && !creates(ev) {
		return sensor.ProcKey{}, false
	}
	return e.missing(ev)
}

// creates reports whether ev brings its process into the table (fork, exec):
// such an event may pass earlier events of the same process that are
// waiting for exactly that.
func creates(ev sensor.Event) bool {
	return ev.Kind == sensor.KindFork || ev.Kind == sensor.KindExec
}

// missing reports which table entry ev lacks, ignoring the events queued
// ahead of it.
func (e *Engine) missing(ev sensor.Event) (sensor.ProcKey, bool) {
	switch ev.Kind {
	case sensor.KindExec:
		if e.t.get(ev.Proc) != nil || ev.Exec.Parent.PID == 0 || e.t.get(ev.Exec.Parent) != nil {
			return sensor.ProcKey{}, true
		}
		return ev.Exec.Parent, false
	case sensor.KindFork:
		if ev.Fork.Parent.PID == 0 || e.t.get(ev.Fork.Parent) != nil {
			return sensor.ProcKey{}, true
		}
		return ev.Fork.Parent, false
	default:
		if e.t.get(ev.Proc) != nil {
			return sensor.ProcKey{}, true
		}
		return ev.Proc, false
	}
}

func (e *Engine) enqueue(ev sensor.Event, need sensor.ProcKey) []*outItem {
	var out []*outItem
	if len(e.pending) >= e.cfg.MaxPending {
		// Full: the oldest goes out with what is known.
		out = append(out, e.forceOldest()...)
		e.bump(func(s *Stats) { s.PendingOverflow++ })
	}
	e.pending = append(e.pending, &pendingEvent{ev: ev, wall: e.now(), needed: need})
	e.blocked[ev.Proc]++
	return out
}

func (e *Engine) forceOldest() []*outItem {
	if len(e.pending) == 0 {
		return nil
	}
	p := e.pending[0]
	e.pending = e.pending[1:]
	e.unblock(p.ev.Proc)
	return e.force(p)
}

func (e *Engine) unblock(k sensor.ProcKey) {
	if e.blocked[k]--; e.blocked[k] <= 0 {
		delete(e.blocked, k)
	}
}

// force emits a pending event whose parent did not arrive: /proc is asked
// first, then the event goes out marked partial.
func (e *Engine) force(p *pendingEvent) []*outItem {
	if p.needed != (sensor.ProcKey{}) && e.t.get(p.needed) == nil {
		e.fromProc(p.needed)
	}
	return e.emitNow(p.ev, true)
}

// flushPending releases pending events that can now be built, in order; with
// all set it forces every one (end of input); with wall set it forces those
// that waited longer than PendingTimeout of wall time (a quiet stream).
func (e *Engine) flushPending(all, wall bool) []*outItem {
	if len(e.pending) == 0 {
		return nil
	}
	var out []*outItem
	now := e.now()
	for progress := true; progress && len(e.pending) > 0; {
		progress = false
		keep := e.pending[:0]
		seen := make(map[sensor.ProcKey]bool)
		for _, p := range e.pending {
			if seen[p.ev.Proc] && !creates(p.ev) {
				keep = append(keep, p)
				continue
			}
			e.unblock(p.ev.Proc)
			timedOut := p.ev.KtimeNs+uint64(e.cfg.PendingTimeout) < e.lastKt ||
				(wall && now.Sub(p.wall) > e.cfg.PendingTimeout)
			if need, ok := e.missing(p.ev); ok {
				out = append(out, e.emitNow(p.ev, false)...)
				progress = true
				continue
			} else if all || timedOut {
				p.needed = need
				e.bump(func(s *Stats) { s.PendingTimeouts++ })
				out = append(out, e.force(p)...)
				progress = true
				continue
			}
			e.blocked[p.ev.Proc]++
			seen[p.ev.Proc] = true
			keep = append(keep, p)
		}
		for i := len(keep); i < len(e.pending); i++ {
			e.pending[i] = nil
		}
		e.pending = keep
	}
	e.bump(func(*Stats) {})
	return out
}

// fromProc reads a live process and its ancestors missing from the table
// out of /proc. It gives up when the pid now names another process.
func (e *Engine) fromProc(k sensor.ProcKey) bool {
	var chain []*procfs.Proc
	want := k
	for range e.cfg.MaxAncestry {
		p, err := e.deps.Proc.Proc(want.PID)
		if err != nil {
			if !errors.Is(err, procfs.ErrGone) {
				e.log.Debug("reading ancestor from /proc", "pid", want.PID, "err", err)
			}
			break
		}
		if want.StartNs != 0 && p.Key.StartNs != want.StartNs {
			break // pid reused
		}
		chain = append(chain, p)
		if p.PPID == 0 {
			break
		}
		if pe := e.t.byPID[p.PPID]; pe != nil && pe.key.StartNs <= p.Key.StartNs {
			break
		}
		want = sensor.ProcKey{PID: p.PPID}
	}
	if len(chain) == 0 || chain[0].Key != k {
		return false
	}
	for i := len(chain) - 1; i >= 0; i-- {
		e.insertProc(chain[i], false)
	}
	e.bump(func(s *Stats) { s.FromProc += uint64(len(chain)) })
	return true
}

// placeholder stands in for a process whose start was never seen.
func (e *Engine) placeholder(k sensor.ProcKey) *entry {
	ent := &entry{key: k, partial: true}
	ent.proc = event.Process{
		ExecID:    e.execID(k.PID, k.StartNs, 0),
		PID:       k.PID,
		StartTime: e.wall(k.StartNs),
	}
	e.t.put(ent)
	return ent
}

// emitNow builds the event for ev against the table. partialOK allows
// missing pieces (after a pending timeout).
func (e *Engine) emitNow(ev sensor.Event, partialOK bool) []*outItem {
	out := &event.Event{
		Schema: event.Schema,
		Time:   e.wall(ev.KtimeNs),
		Host:   &e.host,
	}
	var partial []string
	var ent *entry
	var res *AgentResult
	switch ev.Kind {
	case sensor.KindLoss:
		out.Kind = event.KindSensorLoss
		l := event.Loss{Count: 1}
		if ev.Loss != nil {
			l = event.Loss{Where: ev.Loss.Where, Count: ev.Loss.Count}
			if ev.Loss.Of != 0 {
				l.Of = ev.Loss.Of.String()
			}
		}
		out.Loss = &l
		return []*outItem{e.finish(out, nil, nil, nil, nil)}
	case sensor.KindExec:
		if ev.Exec == nil {
			return nil
		}
		ent, partial = e.exec(ev)
		out.Kind = event.KindProcessExec
	case sensor.KindFork:
		if ev.Fork == nil {
			return nil
		}
		ent, partial = e.fork(ev)
		if !e.cfg.EmitFork {
			return nil
		}
		out.Kind = event.KindProcessFork
	default:
		ent = e.t.get(ev.Proc)
		if ent == nil {
			if !partialOK {
				return nil
			}
			ent = e.placeholder(ev.Proc)
		}
		e.t.touch(ent)
		switch ev.Kind {
		case sensor.KindExit:
			if ev.Exit == nil {
				return nil
			}
			out.Kind = event.KindProcessExit
			out.Exit = &event.Exit{Code: ev.Exit.Code, Signal: ev.Exit.Signal, CoreDumped: ev.Exit.CoreDumped}
			e.t.exit(ent, ev.KtimeNs)
			if e.deps.Observer != nil && ev.Session.InSession() {
				p := ent.proc
				e.deps.Observer.Exit(&p)
			}
		case sensor.KindOpen, sensor.KindUnlink, sensor.KindRename, sensor.KindChmod:
			if ev.File == nil {
				return nil
			}
			out.Kind, out.File = fileEvent(ev.File)
			if e.deps.Observer != nil && ev.Session.InSession() {
				p := ent.proc
				r := e.deps.Observer.File(AgentFile{Proc: &p, Agent: e.agentOf(ent, ev.Session), File: out.File})
				res = &r
			}
		case sensor.KindConnect:
			if ev.Connect == nil {
				return nil
			}
			out.Kind = event.KindNetConnect
			out.Net = netEvent(ev.Connect)
		case sensor.KindDeny:
			if ev.Deny == nil {
				return nil
			}
			// The policy stage turns it into policy events.
			out.Kind = event.KindPolicyAction
			d := ev.Deny
			out.Deny = &event.Deny{Path: d.Path, PathTruncated: d.PathTruncated, RuleIndex: d.RuleIndex, Rule: d.Rule, Action: d.Action.String()}
		default:
			return nil
		}
	}
	if e.cfg.Scope == ScopeSession && !ev.Session.InSession() {
		return nil // the table is kept current, nothing is reported
	}
	if ent.partial {
		partial = appendOnce(partial, event.PartialProcess)
	}
	agent, wait := e.currentAgent(ent, ev.Session)
	if res != nil && res.Agent != nil {
		agent, wait = res.Agent, nil
	}
	if res != nil && res.Resolve != nil && agent != nil {
		wait = &agentWait{job: e.startResolve(agent, res.Resolve)}
	}
	return []*outItem{e.finish(out, ent, agent, wait, partial)}
}

// finish builds process, ancestry and identity (seq and event_id are the
// sequencer's, after the policy stage).
func (e *Engine) finish(out *event.Event, ent *entry, agent *event.Agent, wait *agentWait, partial []string) *outItem {
	if out.Posture == nil && e.deps.Posture != nil {
		out.Posture = e.deps.Posture.Latest()
	}
	it := &outItem{ev: out, resolve: wait, built: e.now()}
	if ent == nil {
		return it
	}
	p := e.snapshot(ent, it)
	out.Process = p
	if agent != nil {
		out.Agent = agent
	}
	n := 0
	for a := ent.parent; a != nil && n < e.cfg.MaxAncestry; a = a.parent {
		n++
	}
	if n > 0 {
		out.Ancestry = make([]event.Process, n)
		i := 0
		for a := ent.parent; a != nil && i < n; a = a.parent {
			out.Ancestry[i] = e.snapshotValue(a)
			i++
		}
		// Fix-ups point into the slice, which no longer grows.
		for i, a := 0, ent.parent; i < n; i, a = i+1, a.parent {
			if out.Ancestry[i].Binary == nil && a.bin != nil {
				it.fixes = append(it.fixes, binFix{dst: &out.Ancestry[i], f: a.bin})
			}
		}
	}
	last := p
	if n > 0 {
		last = &out.Ancestry[n-1]
	}
	// Complete means rooted at init, or at kthreadd for what the kernel
	// itself started.
	if last.PID != 1 && !(last.PID == 2 && last.PPID == 0) {
		partial = appendOnce(partial, event.PartialAncestry)
	}
	out.Identity = e.identity(p, out.Ancestry)
	if len(partial) > 0 {
		out.Partial = partial
		e.bump(func(s *Stats) { s.Misses++ })
	}
	return it
}

// snapshot copies the image for an event, queueing a fix-up when its hash
// is still being computed.
func (e *Engine) snapshot(ent *entry, it *outItem) *event.Process {
	p := e.snapshotValue(ent)
	if p.Binary == nil && ent.bin != nil {
		it.fixes = append(it.fixes, binFix{dst: &p, f: ent.bin})
	}
	return &p
}

func (e *Engine) snapshotValue(ent *entry) event.Process {
	if ent.proc.Binary == nil && ent.bin != nil {
		select {
		case <-ent.bin.done:
			ent.proc.Binary = ent.bin.res
		default:
		}
	}
	return ent.proc
}

// identity says who is behind an event: the OS user, the login user (which
// survives sudo and su), the human the admin mapped that login to, and how
// that was established: "config", or the SSH key that authenticated the
// login when an sshd ancestor logged it.
func (e *Engine) identity(p *event.Process, ancestry []event.Process) *event.Identity {
	id := &event.Identity{User: p.User, UID: p.UID, LoginUser: p.LoginUser, LoginUID: p.LoginUID}
	who := p.LoginUser
	if p.LoginUID == nil {
		who = p.User
	}
	if h, ok := e.cfg.Humans[who]; ok && who != "" {
		hh := h
		id.Human = &hh
		id.VerifiedBy = "config"
	}
	if e.deps.Logins != nil && who != "" {
		for i := range ancestry {
			if a := &ancestry[i]; isSSHD(a) {
				if fp, ok := e.deps.Logins.SSHKey(a.PID, who); ok {
					id.VerifiedBy = "ssh-key:" + fp
					break
				}
			}
		}
	}
	return id
}

func isSSHD(p *event.Process) bool {
	base := p.Exe[strings.LastIndexByte(p.Exe, '/')+1:]
	return base == "sshd" || base == "sshd-session"
}

// agentOf is the attribution of an image in a session: the observer's or
// inherited one when it matches the session, else the default.
func (e *Engine) agentOf(ent *entry, s sensor.SessionRef) *event.Agent {
	if !s.InSession() {
		return nil
	}
	root := e.rootExecID(s)
	if ent.agent != nil && ent.agent.RootExecID == root {
		return ent.agent
	}
	role := event.RoleDescendant
	if ent.proc.ExecID == root {
		role = event.RoleRoot
	}
	a := &event.Agent{Name: s.Agent.String(), RootExecID: root, Role: role}
	ent.agent, ent.agentJob, ent.agentRole = a, nil, ""
	return a
}

// currentAgent is the attribution of an image for an event, and the
// resolution the event must wait for when one is still running.
func (e *Engine) currentAgent(ent *entry, s sensor.SessionRef) (*event.Agent, *agentWait) {
	a := e.agentOf(ent, s)
	if a == nil || ent.agentJob == nil {
		return a, nil
	}
	select {
	case <-ent.agentJob.done:
		ent.agent = withRole(ent.agentJob.cp, ent.agentRole)
		ent.agentJob, ent.agentRole = nil, ""
		return ent.agent, nil
	default:
		return a, &agentWait{job: ent.agentJob, role: ent.agentRole}
	}
}

// startResolve runs an observer's Resolve on a private copy of a.
func (e *Engine) startResolve(a *event.Agent, resolve func(context.Context, *event.Agent)) *resolveJob {
	cp := *a
	if a.ToolUse != nil {
		tu := *a.ToolUse
		cp.ToolUse = &tu
	}
	job := &resolveJob{done: make(chan struct{}), cp: &cp}
	go func() {
		defer close(job.done)
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.EnrichWait)
		defer cancel()
		resolve(ctx, job.cp)
	}()
	return job
}

// inherit gives child the attribution of from (its parent or previous
// image), including a resolution still running; the session root's
// children are its descendants.
func inherit(child, from *entry) {
	child.agent, child.agentJob, child.agentRole = from.agent, from.agentJob, from.agentRole
	if from.agent != nil && from.agent.Role == event.RoleRoot {
		d := *from.agent
		d.Role = event.RoleDescendant
		child.agent = &d
		child.agentRole = event.RoleDescendant
	}
}

func (e *Engine) rootExecID(s sensor.SessionRef) string {
	if id, ok := e.sessions[s.Root]; ok {
		return id
	}
	if r := e.t.get(s.Root); r != nil {
		// A session found by the /proc seed: its root is the image that
		// was running when the sensor started.
		id := r.proc.ExecID
		e.sessions[s.Root] = id
		return id
	}
	return e.execID(s.Root.PID, s.Root.StartNs, s.Root.StartNs)
}

// exec records a new image of ev.Proc.
func (e *Engine) exec(ev sensor.Event) (*entry, []string) {
	x := ev.Exec
	var partial []string
	prev := e.t.get(ev.Proc)
	var birth *entry
	switch {
	case prev == nil || prev.partial:
		// First sight of this process (its fork was not reported), or
		// only a placeholder: the exec names its parent.
		birth = e.t.get(x.Parent)
		if birth == nil && x.Parent.PID != 0 {
			partial = append(partial, event.PartialAncestry)
		}
	case prev.forkImage:
		// fork then exec: the new image's parent is the process that
		// forked it; the fork image was only its parent's image.
		birth = prev.parent
	case prev.seeded && prev.bin != nil && prev.bin.req.Stat == x.Binary && prev.proc.Exe == exeOf(x):
		// The /proc seed already read this very image (the exec raced
		// the scan at start): it is not its own parent.
		birth = prev.parent
	default:
		// An exec chain: the previous image is the parent.
		birth = prev
	}
	ent := &entry{key: ev.Proc}
	exe := exeOf(x)
	ent.proc = event.Process{
		ExecID:        e.execID(ev.Proc.PID, ev.Proc.StartNs, ev.KtimeNs),
		PID:           ev.Proc.PID,
		PPID:          x.Parent.PID,
		StartTime:     e.wall(ev.Proc.StartNs),
		Exe:           exe,
		Argv:          x.Argv,
		ArgvTruncated: x.ArgvTruncated,
		UID:           x.UID,
		EUID:          x.EUID,
		GID:           x.GID,
	}
	if prev != nil {
		// Inherited across exec (and from the parent at fork).
		ent.proc.TTY = prev.proc.TTY
		ent.proc.Cgroup = prev.proc.Cgroup
		ent.proc.Cwd = prev.proc.Cwd
	} else if birth != nil {
		ent.proc.TTY = birth.proc.TTY
	}
	// The working directory is read while the process is fresh; when it
	// is already gone the inherited value (if any) stays.
	if cwd, err := e.deps.Proc.Cwd(ev.Proc.PID); err == nil {
		ent.proc.Cwd = cwd
	}
	if e.deps.Cgroups != nil && x.CgroupID != 0 {
		if p, ok := e.deps.Cgroups.CgroupPath(x.CgroupID); ok {
			ent.proc.Cgroup = p
		}
	}
	e.fillUsers(&ent.proc, x.LoginUID)
	e.link(ent, birth)
	ent.birthParent = x.Parent
	if prev != nil && !prev.partial {
		ent.birthParent = prev.birthParent
	}
	if x.Parent != ent.birthParent && !(ent.birthParent.StartNs == 0 && x.Parent.PID == ent.birthParent.PID) {
		// Reparented (to pid 1 or a subreaper) since birth: the ancestry
		// stays the one it was born with, the current parent is named.
		if cur := e.t.get(x.Parent); cur != nil {
			ent.proc.CurrentParentExecID = cur.proc.ExecID
		}
	}
	ent.bin = e.inspect(BinaryRequest{PID: ev.Proc.PID, Path: exe, Stat: x.Binary, HasStat: true})
	e.t.put(ent)

	if len(e.sessions) > e.cfg.MaxProcesses {
		// Forget sessions whose root left the table.
		for k := range e.sessions {
			if e.t.get(k) == nil {
				delete(e.sessions, k)
			}
		}
	}
	if x.Recognised != sensor.AgentNone {
		e.sessions[ev.Proc] = ent.proc.ExecID
	} else if ev.Session.InSession() && ev.Session.Root == ev.Proc {
		if _, ok := e.sessions[ev.Proc]; !ok {
			e.sessions[ev.Proc] = ent.proc.ExecID
		}
	}
	if ev.Session.InSession() {
		root := e.rootExecID(ev.Session)
		switch {
		case prev != nil && prev.agent != nil && prev.agent.RootExecID == root:
			inherit(ent, prev)
		case birth != nil && birth.agent != nil && birth.agent.RootExecID == root:
			inherit(ent, birth)
		}
		if ent.proc.ExecID == root {
			ent.agent, ent.agentJob, ent.agentRole = nil, nil, ""
		}
		if e.deps.Observer != nil {
			p := ent.proc
			var parentProc *event.Process
			if birth != nil {
				pp := birth.proc
				parentProc = &pp
			}
			pid := ev.Proc.PID
			res := e.deps.Observer.Exec(AgentExec{
				Proc: &p, Parent: parentProc, ParentAgent: ent.agent, Session: ev.Session, Raw: x,
				Env: func(key string) (string, bool) {
					v, ok, err := e.deps.Proc.Env(pid, key)
					return v, ok && err == nil
				},
			})
			if res.Agent != nil {
				ent.agent, ent.agentJob, ent.agentRole = res.Agent, nil, ""
			}
			if res.Resolve != nil {
				a := e.agentOf(ent, ev.Session)
				ent.agentJob, ent.agentRole = e.startResolve(a, res.Resolve), ""
			}
		}
	}
	return ent, partial
}

func exeOf(x *sensor.Exec) string {
	if x.Exe != "" {
		return x.Exe
	}
	return x.Filename
}

// fork records a forked child: it runs its parent's image until it execs.
func (e *Engine) fork(ev sensor.Event) (*entry, []string) {
	if cur := e.t.get(ev.Proc); cur != nil {
		// Already known: seeded, or its exec overtook this fork. A fork
		// image must not replace what the process runs now.
		return cur, nil
	}
	parent := e.t.get(ev.Fork.Parent)
	var partial []string
	ent := &entry{key: ev.Proc, forkImage: true, birthParent: ev.Fork.Parent}
	ent.proc = event.Process{
		ExecID:    e.execID(ev.Proc.PID, ev.Proc.StartNs, 0),
		PID:       ev.Proc.PID,
		PPID:      ev.Fork.Parent.PID,
		StartTime: e.wall(ev.Proc.StartNs),
	}
	if parent != nil {
		pp := parent.proc
		ent.proc.Exe, ent.proc.Argv, ent.proc.ArgvTruncated = pp.Exe, pp.Argv, pp.ArgvTruncated
		ent.proc.Cwd, ent.proc.UID, ent.proc.EUID, ent.proc.GID = pp.Cwd, pp.UID, pp.EUID, pp.GID
		ent.proc.User, ent.proc.LoginUID, ent.proc.LoginUser = pp.User, pp.LoginUID, pp.LoginUser
		ent.proc.TTY, ent.proc.Cgroup, ent.proc.Binary = pp.TTY, pp.Cgroup, pp.Binary
		ent.bin = parent.bin
		inherit(ent, parent)
		e.link(ent, parent)
		e.t.touch(parent)
	} else if ev.Fork.Parent.PID != 0 {
		partial = append(partial, event.PartialAncestry)
	}
	e.t.put(ent)
	return ent, partial
}

func fileEvent(f *sensor.File) (string, *event.File) {
	out := &event.File{Path: f.Path, PathTruncated: f.PathTruncated, Flags: f.Flags, Result: f.Result}
	var kind string
	switch f.Op {
	case sensor.FileOpen:
		kind = event.KindFileOpen
		switch f.Flags & syscall.O_ACCMODE {
		case syscall.O_RDONLY:
			out.Mode = event.ModeRead
		case syscall.O_WRONLY:
			out.Mode = event.ModeWrite
		default:
			out.Mode = event.ModeReadWrite
		}
		out.Created = f.Created
		if f.Created {
			m := f.Mode
			out.Perm = &m
		}
	case sensor.FileUnlink:
		kind = event.KindFileDelete
	case sensor.FileRename:
		kind = event.KindFileRename
		out.NewPath = f.NewPath
	case sensor.FileChmod:
		kind = event.KindFileChmod
		m := f.Mode
		out.Perm = &m
	default:
		kind = event.KindFileOpen
	}
	return kind, out
}

func netEvent(c *sensor.Connect) *event.Net {
	n := &event.Net{Result: c.Result}
	switch c.Protocol {
	case syscall.IPPROTO_TCP:
		n.Protocol = "tcp"
	case syscall.IPPROTO_UDP:
		n.Protocol = "udp"
	default:
		n.Protocol = fmt.Sprintf("ip-proto-%d", c.Protocol)
	}
	switch c.Family {
	case syscall.AF_INET:
		n.Family = "ipv4"
	case syscall.AF_INET6:
		n.Family = "ipv6"
	default:
		n.Family = fmt.Sprintf("af-%d", c.Family)
	}
	if c.Dst.IsValid() {
		n.DstIP = c.Dst.Addr().Unmap().String()
		n.DstPort = c.Dst.Port()
	}
	if c.Src.IsValid() {
		n.SrcIP = c.Src.Addr().Unmap().String()
		n.SrcPort = c.Src.Port()
	}
	return n
}
