package lineage

import (
	"fmt"
	"slices"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// Snapshot is the engine's state at one point of its input, as a capture
// records it (docs/capture.md, the snapshot record): what a replay's
// engine must start from to build, byte for byte, the events the live one
// built from there on for processes it already knew. Taken on the engine's
// goroutine between two steps (Engine.Snapshot); put back before RunSteps
// (Engine.Restore).
type Snapshot struct {
	// LastKt is the engine's kernel clock.
	LastKt uint64 `json:"last_kt"`
	// Images are every process image the table indexes and every image
	// they link to (birth parents, exec predecessors, ancestors evicted
	// from the index), parents before the images that link to them.
	Images []SnapImage `json:"images"`
	// Live and Exited index Images: the table's lists, most recent first.
	Live   []int `json:"live"`
	Exited []int `json:"exited"`
	// ByPID indexes the images that are the newest of their pid.
	ByPID []int `json:"by_pid"`
	// Binaries are the binary identities the images share: computed, or
	// being computed (then its result is a FactSnapBinary numbered by its
	// index here, recorded when it completes). Inflight indexes those the
	// engine shares with any new exec of the same file.
	Binaries []SnapBinary `json:"binaries,omitempty"`
	Inflight []int        `json:"inflight,omitempty"`
	// Jobs are the agent resolutions the images carry: done, with their
	// result, or running (their result is a FactSnapResolved numbered by
	// the index here).
	Jobs []SnapJob `json:"jobs,omitempty"`
	// Roots are the session roots' exec ids; Demoted the look-alike
	// agents and the session each stays in.
	Roots   []SnapRoot    `json:"roots,omitempty"`
	Demoted []SnapDemoted `json:"demoted,omitempty"`
	// Pending are the events waiting for a parent, in order; For the
	// hook events waiting for their process; Late the process.binary
	// follow-ups queued to go out.
	Pending []SnapPending  `json:"pending,omitempty"`
	For     []SnapFor      `json:"for,omitempty"`
	Late    []*event.Event `json:"late,omitempty"`
	// Verdicts are the settled session-root verifications, oldest first
	// (the emitter's state: Engine.SnapshotVerdicts).
	Verdicts []SnapVerdict `json:"verdicts,omitempty"`
}

// SnapImage is one table entry. Parent, Bin, Loaded and Job index the
// snapshot's lists; -1 is none.
type SnapImage struct {
	Key         sensor.ProcKey `json:"key"`
	Proc        event.Process  `json:"proc"`
	Parent      int            `json:"parent"`
	Depth       int            `json:"depth,omitempty"`
	Bin         int            `json:"bin"`
	Loaded      int            `json:"loaded"`
	Agent       *event.Agent   `json:"agent,omitempty"`
	Job         int            `json:"job"`
	Role        string         `json:"role,omitempty"`
	Via         string         `json:"via,omitempty"`
	BirthParent sensor.ProcKey `json:"birth_parent"`
	ForkImage   bool           `json:"fork_image,omitempty"`
	Seeded      bool           `json:"seeded,omitempty"`
	Partial     bool           `json:"partial,omitempty"`
	Exited      bool           `json:"exited,omitempty"`
	ExitKt      uint64         `json:"exit_kt,omitempty"`
}

// SnapBinary is one binary identity future.
type SnapBinary struct {
	Req  BinaryRequest `json:"req"`
	Done bool          `json:"done,omitempty"`
	Res  *event.Binary `json:"res,omitempty"`
}

// SnapJob is one agent resolution.
type SnapJob struct {
	Done  bool         `json:"done,omitempty"`
	Agent *event.Agent `json:"agent,omitempty"`
}

// SnapRoot is one session root.
type SnapRoot struct {
	Key    sensor.ProcKey `json:"key"`
	ExecID string         `json:"exec_id"`
}

// SnapDemoted is one look-alike agent.
type SnapDemoted struct {
	Key     sensor.ProcKey    `json:"key"`
	Session sensor.SessionRef `json:"session"`
}

// SnapPending is one event waiting for a parent.
type SnapPending struct {
	Ev     sensor.Event   `json:"ev"`
	Wall   time.Time      `json:"wall"`
	Needed sensor.ProcKey `json:"needed"`
}

// SnapFor is one hook event waiting for its process.
type SnapFor struct {
	PID      uint32       `json:"pid"`
	Ev       *event.Event `json:"ev"`
	Kt       uint64       `json:"kt"`
	Deadline time.Time    `json:"deadline,omitzero"`
}

// SnapVerdict is one settled session-root verification.
type SnapVerdict struct {
	Root    string    `json:"root"`
	Method  string    `json:"method"`
	Release string    `json:"release,omitempty"`
	At      time.Time `json:"at"`
}

// Fact kinds answering the parts of a snapshot still being computed when
// it was taken; N is the index in Snapshot.Binaries or Snapshot.Jobs.
const (
	FactSnapBinary   = "snapshot.binary"
	FactSnapResolved = "snapshot.resolved"
)

// Snapshot copies the engine's state. Call it on the engine's goroutine
// between two steps (from the RecordSteps callback). rec is told, from
// other goroutines (or this one, when it completes meanwhile), the result
// of each binary identity and agent resolution still being computed, once
// it completes (FactSnapBinary, FactSnapResolved): rec must not wait for
// the engine. Both complete within their own bounds (inspection and
// resolution timeouts).
func (e *Engine) Snapshot(rec func(Fact)) *Snapshot {
	s := &Snapshot{LastKt: e.lastKt}
	imgs := map[*entry]int{}
	bins := map[*binFuture]int{}
	jobs := map[*resolveJob]int{}
	binIdx := func(f *binFuture) int {
		if f == nil {
			return -1
		}
		if i, ok := bins[f]; ok {
			return i
		}
		i := len(s.Binaries)
		bins[f] = i
		sb := SnapBinary{Req: f.req}
		e.bins.mu.Lock()
		select {
		case <-f.done:
			sb.Done, sb.Res = true, f.res
		default:
		}
		e.bins.mu.Unlock()
		s.Binaries = append(s.Binaries, sb)
		if !sb.Done && rec != nil {
			if !e.bins.onDone(f, func(b *event.Binary) {
				rec(Fact{Kind: FactSnapBinary, N: uint64(i), Binary: b})
			}) {
				e.log.Warn("snapshot: a binary identity has too many waiting; replay gives it an error", "path", f.req.Path)
			}
		}
		return i
	}
	jobIdx := func(j *resolveJob) int {
		if j == nil {
			return -1
		}
		if i, ok := jobs[j]; ok {
			return i
		}
		i := len(s.Jobs)
		jobs[j] = i
		var sj SnapJob
		select {
		case <-j.done:
			sj.Done, sj.Agent = true, j.cp
		default:
			if rec != nil {
				go func() {
					<-j.done
					rec(Fact{Kind: FactSnapResolved, N: uint64(i), Agent: j.cp})
				}()
			}
		}
		s.Jobs = append(s.Jobs, sj)
		return i
	}
	var add func(x *entry) int
	add = func(x *entry) int {
		if x == nil {
			return -1
		}
		if i, ok := imgs[x]; ok {
			return i
		}
		// Parents first: a chain is at most MaxAncestry long (link cuts
		// it), so the recursion is bounded.
		parent := add(x.parent)
		si := SnapImage{
			Key: x.key, Proc: x.proc, Parent: parent, Depth: x.depth,
			Bin: binIdx(x.bin), Loaded: binIdx(x.loaded),
			Agent: x.att.agent, Job: jobIdx(x.att.job), Role: x.att.role, Via: x.att.via,
			BirthParent: x.birthParent, ForkImage: x.forkImage, Seeded: x.seeded,
			Partial: x.partial, Exited: x.exited, ExitKt: x.exitKt,
		}
		i := len(s.Images)
		imgs[x] = i
		s.Images = append(s.Images, si)
		return i
	}
	for x := e.t.live.head; x != nil; x = x.next {
		s.Live = append(s.Live, add(x))
	}
	for x := e.t.exited.head; x != nil; x = x.next {
		s.Exited = append(s.Exited, add(x))
	}
	for _, x := range e.t.byPID {
		s.ByPID = append(s.ByPID, imgs[x])
	}
	slices.Sort(s.ByPID)
	e.bins.mu.Lock()
	inflight := make([]*binFuture, 0, len(e.bins.inflight))
	for _, f := range e.bins.inflight {
		inflight = append(inflight, f)
	}
	e.bins.mu.Unlock()
	for _, f := range inflight {
		s.Inflight = append(s.Inflight, binIdx(f))
	}
	slices.Sort(s.Inflight)
	for k, id := range e.sess.roots {
		s.Roots = append(s.Roots, SnapRoot{Key: k, ExecID: id})
	}
	for k, r := range e.demoted.m {
		s.Demoted = append(s.Demoted, SnapDemoted{Key: k, Session: r})
	}
	for _, p := range e.pending.events {
		s.Pending = append(s.Pending, SnapPending{Ev: p.ev, Wall: p.wall, Needed: p.needed})
	}
	for _, f := range e.forWait {
		s.For = append(s.For, SnapFor{PID: f.pid, Ev: f.ev, Kt: f.kt, Deadline: f.deadline})
	}
	e.late.mu.Lock()
	s.Late = append(s.Late, e.late.evs...)
	e.late.mu.Unlock()
	return s
}

// SnapshotVerdicts copies the settled session-root verifications. Call it
// on the emitter's goroutine (from the function RunFunc hands events to),
// where they are kept: after the last event before the snapshot's step.
func (e *Engine) SnapshotVerdicts() []SnapVerdict {
	var out []SnapVerdict
	for _, root := range e.verify.order {
		if vd := e.verify.m[root]; vd != nil {
			out = append(out, SnapVerdict{Root: root, Method: vd.method, Release: vd.release, At: vd.at})
		}
	}
	return out
}

// Restore puts a snapshot's state into a new engine, in place of Seed;
// call it before RunSteps. answer gives the result of a binary identity or
// an agent resolution that was still being computed (ok false: it had not
// completed when the capture ended).
func (e *Engine) Restore(s *Snapshot, answer func(kind string, n uint64) (Fact, bool)) error {
	if s == nil {
		return nil
	}
	if e.t.live.n+e.t.exited.n > 0 {
		return fmt.Errorf("lineage: restore into an engine that already holds processes")
	}
	e.lastKt = s.LastKt
	// What was still being computed completes at once with the answer
	// recorded live; an in-flight identity stays shared with any new
	// exec of the same file for the whole replay (live, such an exec
	// either shared it or found its result in the cache).
	bins := make([]*binFuture, len(s.Binaries))
	for i, sb := range s.Binaries {
		f := &binFuture{done: make(chan struct{}), req: sb.Req, res: sb.Res}
		bins[i] = f
		if !sb.Done {
			if a, ok := answer(FactSnapBinary, uint64(i)); ok && a.Binary != nil {
				f.res = a.Binary
			} else {
				f.res = errorBinary(f.req, "replay: hashing had not finished when the capture ended")
			}
		}
		close(f.done)
	}
	e.bins.mu.Lock()
	for _, i := range s.Inflight {
		if i < 0 || i >= len(bins) {
			continue
		}
		f := bins[i]
		e.bins.inflight[binKey{stat: f.req.Stat, path: f.req.Path}] = f
	}
	e.bins.mu.Unlock()
	jobs := make([]*resolveJob, len(s.Jobs))
	var unanswered []int
	for i, sj := range s.Jobs {
		j := &resolveJob{done: make(chan struct{}), cp: sj.Agent}
		jobs[i] = j
		if !sj.Done {
			a, ok := answer(FactSnapResolved, uint64(i))
			if !ok {
				unanswered = append(unanswered, i)
				continue
			}
			j.cp = a.Agent
		}
		close(j.done)
	}
	pick := func(list []*binFuture, i int) *binFuture {
		if i < 0 || i >= len(list) {
			return nil
		}
		return list[i]
	}
	ents := make([]*entry, len(s.Images))
	for i, si := range s.Images {
		x := &entry{
			key: si.Key, proc: si.Proc, depth: si.Depth,
			bin: pick(bins, si.Bin), loaded: pick(bins, si.Loaded),
			att:         attribution{agent: si.Agent, role: si.Role, via: si.Via},
			birthParent: si.BirthParent, forkImage: si.ForkImage, seeded: si.Seeded,
			partial: si.Partial, exited: si.Exited, exitKt: si.ExitKt,
		}
		if si.Job >= 0 && si.Job < len(jobs) {
			x.att.job = jobs[si.Job]
		}
		if si.Parent >= 0 {
			if si.Parent >= i {
				return fmt.Errorf("lineage: snapshot image %d links to image %d, not before it", i, si.Parent)
			}
			x.parent = ents[si.Parent]
		}
		ents[i] = x
	}
	index := func(idx []int, l *list) error {
		// Pushed oldest first, so the front ends up most recent.
		for k := len(idx) - 1; k >= 0; k-- {
			i := idx[k]
			if i < 0 || i >= len(ents) || ents[i].indexed {
				return fmt.Errorf("lineage: snapshot lists image %d twice or out of range", i)
			}
			x := ents[i]
			x.indexed = true
			e.t.byKey[x.key] = x
			l.pushFront(x)
		}
		return nil
	}
	if err := index(s.Live, &e.t.live); err != nil {
		return err
	}
	if err := index(s.Exited, &e.t.exited); err != nil {
		return err
	}
	for _, i := range s.ByPID {
		if i >= 0 && i < len(ents) && ents[i].indexed {
			e.t.byPID[ents[i].key.PID] = ents[i]
		}
	}
	for _, i := range unanswered {
		// Live, it had not completed when the capture closed: here it
		// completes after the wait, with the attribution it started from.
		j := jobs[i]
		for _, x := range ents {
			if x.att.job == j && x.att.agent != nil {
				cp := *x.att.agent
				j.cp = &cp
				break
			}
		}
		if j.cp == nil {
			j.cp = &event.Agent{}
		}
		go func() {
			time.Sleep(e.cfg.EnrichWait)
			close(j.done)
		}()
	}
	for _, r := range s.Roots {
		e.sess.roots[r.Key] = r.ExecID
	}
	for _, d := range s.Demoted {
		if e.demoted.m == nil {
			e.demoted.m = map[sensor.ProcKey]sensor.SessionRef{}
		}
		e.demoted.m[d.Key] = d.Session
	}
	for _, p := range s.Pending {
		e.pending.push(&pendingEvent{ev: p.Ev, wall: p.Wall, needed: p.Needed})
	}
	for _, f := range s.For {
		e.forWait = append(e.forWait, forProc{pid: f.PID, ev: f.Ev, kt: f.Kt, deadline: f.Deadline})
	}
	e.late.evs = append(e.late.evs, s.Late...)
	for _, v := range s.Verdicts {
		e.verify.remember(v.Root, &verdict{method: v.Method, release: v.Release, at: v.At})
	}
	e.bump(func(*Stats) {})
	return nil
}
