package lineage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// binaries hands out binary identities as futures, computed off the table
// goroutine: one inspection per file and path in flight, shared by every
// image that runs it. Its map of futures is the only engine state another
// goroutine writes. At most maxInflight inspections run or wait at once,
// each one bounded by inspectWait: a stream of distinct files cannot grow
// the goroutines without bound.
type binaries struct {
	src      BinaryInspector
	mu       sync.Mutex
	inflight map[binKey]*binFuture
	max      int
	wait     time.Duration
	refused  atomic.Uint64
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
	// then are called with res once it is computed (follow-ups of events
	// that went out before it); guarded by binaries.mu.
	then []func(*event.Binary)
}

// Defaults of the inspection bounds.
const (
	maxInflight = 1024
	inspectWait = 2 * time.Minute
	// maxThen bounds the follow-ups waiting on one future.
	maxThen = 256
)

func newBinaries(src BinaryInspector) *binaries {
	return &binaries{src: src, inflight: make(map[binKey]*binFuture), max: maxInflight, wait: inspectWait}
}

// inspect returns the (possibly shared, possibly finished) future of a
// binary's identity, starting the work off this goroutine on a miss.
func (b *binaries) inspect(req BinaryRequest) *binFuture {
	k := binKey{stat: req.Stat, path: req.Path}
	b.mu.Lock()
	if f := b.inflight[k]; f != nil && (!f.req.Background || req.Background) {
		b.mu.Unlock()
		return f
	}
	// A live event does not wait behind the seed's background queue: it
	// gets its own foreground request (the file is read twice at most).
	f := &binFuture{done: make(chan struct{}), req: req}
	if res, ok := b.src.Cached(req); ok {
		f.res = res
		close(f.done)
		b.mu.Unlock()
		return f
	}
	if len(b.inflight) >= b.max {
		b.mu.Unlock()
		b.refused.Add(1)
		f.res = errorBinary(req, fmt.Sprintf("hashing not started: %d inspections already in flight", b.max))
		close(f.done)
		return f
	}
	b.inflight[k] = f
	b.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), b.wait)
		res := b.src.Inspect(ctx, req)
		cancel()
		if res == nil {
			res = errorBinary(req, "inspector returned nothing")
		}
		b.mu.Lock()
		f.res = res
		if b.inflight[k] == f {
			delete(b.inflight, k)
		}
		then := f.then
		f.then = nil
		close(f.done)
		b.mu.Unlock()
		for _, fn := range then {
			fn(res)
		}
	}()
	return f
}

// onDone calls fn with the future's identity once it is computed (at once
// when it already is); false when the future has too many waiting.
func (b *binaries) onDone(f *binFuture, fn func(*event.Binary)) bool {
	b.mu.Lock()
	select {
	case <-f.done:
		b.mu.Unlock()
		fn(f.res)
		return true
	default:
	}
	defer b.mu.Unlock()
	if len(f.then) >= maxThen {
		return false
	}
	f.then = append(f.then, fn)
	return true
}

// ready returns the identity when it is computed, without waiting.
func (f *binFuture) ready() (*event.Binary, bool) {
	select {
	case <-f.done:
		return f.res, true
	default:
		return nil, false
	}
}

func errorBinary(req BinaryRequest, reason string) *event.Binary {
	return &event.Binary{
		Path: req.Path, Size: req.Stat.Size, Inode: req.Stat.Inode, Dev: req.Stat.Dev,
		Mtime: time.Unix(0, req.Stat.MtimeNs).UTC(), Verdict: event.VerdictError, Reason: reason,
	}
}

// lateBinaries queues the process.binary follow-ups of execs whose event
// went out before their hash: Run emits them in line with the rest.
type lateBinaries struct {
	mu  sync.Mutex
	evs []*event.Event
}

// maxLate bounds the follow-ups waiting for Run.
const maxLate = 4096

// add queues ev; false when too many are waiting.
func (l *lateBinaries) add(ev *event.Event) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.evs) >= maxLate {
		return false
	}
	l.evs = append(l.evs, ev)
	return true
}

func (l *lateBinaries) take() []*event.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.evs
	l.evs = nil
	return evs
}

// followUp arranges a process.binary event for the exec event ev whose
// binary fx went out late, carrying the identity once computed.
func (e *Engine) followUp(ev *event.Event, f *binFuture) {
	p := ev.Process
	stub := event.Process{ExecID: p.ExecID, ParentExecID: p.ParentExecID, PID: p.PID, PPID: p.PPID,
		StartTime: p.StartTime, Exe: p.Exe, UID: p.UID, EUID: p.EUID, User: p.User}
	agent := ev.Agent
	dropped := func() { e.add(func(s *Stats) { s.BinaryFollowUpsDropped++ }) }
	if !e.bins.onDone(f, func(b *event.Binary) {
		q := stub
		q.Binary = b
		if !e.late.add(&event.Event{Kind: event.KindProcessBinary, Process: &q, Agent: agent}) {
			dropped()
			return
		}
		e.add(func(s *Stats) { s.BinaryFollowUps++ })
	}) {
		dropped()
	}
}

// lateItems are the follow-ups ready to go out.
func (e *Engine) lateItems() []*outItem {
	var out []*outItem
	for _, ev := range e.late.take() {
		out = append(out, e.external(ev))
	}
	return out
}
