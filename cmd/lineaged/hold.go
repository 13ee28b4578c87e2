package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// holdFlags maps hashing.hold_exec's values to the exec flags the kernel
// stops a session member at (kernel Config.HoldExeFlags); holdUnseen is
// the value for every image on disk not judged yet (Config.HoldUnseen).
var holdFlags = map[string]sensor.ExecFlags{
	"memfd":   sensor.ExecExePseudo,
	"deleted": sensor.ExecExeDeleted,
}

const holdUnseen = "unseen"

// maxHoldTimeout bounds hashing.hold_timeout: a process is never kept
// stopped longer than this by the hold.
const maxHoldTimeout = time.Minute

// holdMask is hashing.hold_exec as kernel flags (0: no hold).
func holdMask(values []string) sensor.ExecFlags {
	var m sensor.ExecFlags
	for _, v := range values {
		m |= holdFlags[v]
	}
	return m
}

// binaryInspector is the part of the shared inspector (binid) the holder
// uses: the engine's inspection of the same exec then finds the hash in its
// cache.
type binaryInspector interface {
	Inspect(ctx context.Context, req lineage.BinaryRequest) *event.Binary
}

// holder decides the processes the kernel stopped at exec (sensor.ExecHeld):
// each is pinned by a pidfd (checked against the exec's start time), its
// image hashed through the shared inspector within the timeout, and then
// killed when a deny_exec sha256: entry names the hash, else continued. A
// timeout, a hashing error or the sensor stopping continues it: the hold
// never leaves a process stopped.
type holder struct {
	inspect  binaryInspector
	denyHash map[string]bool // lowercase hex digests of the sha256: entries
	timeout  time.Duration
	procRoot string
	log      *slog.Logger
	// markSeen tells the kernel an image was hashed and allowed, so a
	// later exec of it is not held (hashing.hold_exec "unseen"); nil
	// without that hold. Set before the sensor runs.
	markSeen func(sensor.FileStat) error

	ctx    context.Context // cancelled by close: every hold releases
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool

	holds, releases, kills, timeouts, failures atomic.Uint64
}

func newHolder(inspect binaryInspector, denyExec []string, timeout time.Duration, procRoot string, log *slog.Logger) *holder {
	h := &holder{inspect: inspect, denyHash: map[string]bool{}, timeout: timeout, procRoot: procRoot, log: log}
	for _, e := range denyExec {
		if d, ok := strings.CutPrefix(e, policy.SHA256Prefix); ok {
			h.denyHash[strings.ToLower(d)] = true
		}
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// held is the sensor's OnHeld: it starts the hold's goroutine and returns
// at once (it runs on the ring-buffer reader).
func (h *holder) held(ev sensor.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		// Stopping: release at once, unhashed.
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.releaseNow(ev.Proc)
		}()
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.hold(ev)
	}()
}

// releaseNow continues the process without hashing it.
func (h *holder) releaseNow(key sensor.ProcKey) {
	p, err := h.open(key)
	if err != nil {
		h.note(key, err)
		return
	}
	defer p.Close()
	h.holds.Add(1)
	h.release(p, key, "the sensor is stopping")
}

// open pins the held process. An error that may pass (out of
// descriptors, a /proc read refused) is retried within the hold's timeout,
// as leaving the process stopped is the one outcome the hold must avoid; a
// process gone, or a pid now another process's, is final.
func (h *holder) open(key sensor.ProcKey) (*kernel.HeldProcess, error) {
	deadline := time.Now().Add(h.timeout)
	for {
		p, err := kernel.OpenHeld(h.procRoot, key)
		if err == nil || errors.Is(err, procfs.ErrGone) || errors.Is(err, kernel.ErrNotSameProcess) || time.Now().After(deadline) {
			return p, err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-h.ctx.Done():
			return kernel.OpenHeld(h.procRoot, key) // a last try at stop
		}
	}
}

// note counts and logs a hold that could not be decided: the process is
// gone (nothing to release) or the pid is another process's (not ours to
// signal).
func (h *holder) note(key sensor.ProcKey, err error) {
	if errors.Is(err, procfs.ErrGone) {
		return
	}
	h.failures.Add(1)
	h.log.Warn("held process not signalled", "pid", key.PID, "err", err)
}

func (h *holder) release(p *kernel.HeldProcess, key sensor.ProcKey, why string) {
	if err := p.Continue(); err != nil {
		h.note(key, err)
		return
	}
	h.releases.Add(1)
	if why != "" {
		h.log.Info("held process continued unhashed", "pid", key.PID, "why", why)
	}
}

func (h *holder) hold(ev sensor.Event) {
	key := ev.Proc
	p, err := h.open(key)
	if err != nil {
		h.note(key, err)
		return
	}
	defer p.Close()
	h.holds.Add(1)
	x := ev.Exec
	ctx, cancel := context.WithTimeout(h.ctx, h.timeout)
	defer cancel()
	res := make(chan *event.Binary, 1)
	go func() {
		res <- h.inspect.Inspect(ctx, lineage.BinaryRequest{PID: key.PID, Path: x.Exe, Stat: x.Binary, HasStat: true, ExeFlags: x.Flags})
	}()
	var b *event.Binary
	select {
	case b = <-res:
	case <-ctx.Done():
	}
	switch {
	case h.ctx.Err() != nil:
		h.release(p, key, "the sensor is stopping")
	case b == nil:
		h.timeouts.Add(1)
		h.release(p, key, "not hashed within hashing.hold_timeout ("+h.timeout.String()+")")
	case b.SHA256 == "":
		if ctx.Err() != nil {
			h.timeouts.Add(1)
		} else {
			h.failures.Add(1)
		}
		h.release(p, key, "not hashed: "+b.Reason)
	case h.denyHash[b.SHA256]:
		if err := p.Kill(); err != nil {
			h.note(key, err)
			return
		}
		h.kills.Add(1)
		h.log.Info("held process killed: deny_exec names its SHA-256", "pid", key.PID, "exe", x.Exe, "sha256", b.SHA256)
	default:
		h.release(p, key, "")
		if h.markSeen != nil && x.Flags&(sensor.ExecExePseudo|sensor.ExecExeDeleted) == 0 {
			if err := h.markSeen(x.Binary); err != nil {
				h.log.Warn("image not marked seen: its next exec is held again", "exe", x.Exe, "err", err)
			}
		}
	}
}

// close releases every held process, those whose hash is under way too,
// and waits for them.
func (h *holder) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// holdStat reads one of the holder's counters; 0 with the hold off.
func (p *pipeline) holdStat(read func(*holder) uint64) uint64 {
	if p.holder == nil {
		return 0
	}
	return read(p.holder)
}
