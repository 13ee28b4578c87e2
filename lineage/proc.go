package lineage

import (
	"errors"
	"sort"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

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
	if sd, ok := e.sess.obs.(agent.Seeder); ok {
		seeded := make([]agent.Seeded, 0, len(ps))
		for _, p := range ps {
			if ent := e.t.get(p.Key); ent != nil && ent.parent != nil {
				seeded = append(seeded, agent.Seeded{Proc: &ent.proc, Parent: &ent.parent.proc})
			}
		}
		sd.Seeded(seeded)
	}
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
		ent.bin = e.bins.inspect(BinaryRequest{PID: p.PID, Path: exePath(p), Stat: p.Binary, HasStat: p.HasBinary, Background: background})
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
