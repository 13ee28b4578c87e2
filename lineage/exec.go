package lineage

import (
	"path"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// exec records a new image of ev.Proc: it finds the image the new one
// descends from, builds it, and attributes it to its session. A look-alike
// agent inside a session is put back into that session (ev is rewritten:
// verify.go).
func (e *Engine) exec(ev *sensor.Event) (*entry, []string) {
	prev := e.t.get(ev.Proc)
	birth, partial := e.birthOf(*ev, prev)
	ent := e.execImage(*ev, prev, birth)
	e.demote(ev, ent)
	e.t.put(ent)
	e.sess.execed(*ev, ent, prev, birth)
	return ent, partial
}

// birthOf is the image a new image of ev.Proc descends from; prev is the
// image it replaces.
func (e *Engine) birthOf(ev sensor.Event, prev *entry) (*entry, []string) {
	x := ev.Exec
	switch {
	case prev == nil || prev.partial:
		// First sight of this process (its fork was not reported), or
		// only a placeholder: the exec names its parent.
		birth := e.t.get(x.Parent)
		if birth == nil && x.Parent.PID != 0 {
			return nil, []string{event.PartialAncestry}
		}
		return birth, nil
	case prev.forkImage:
		// fork then exec: the new image's parent is the process that
		// forked it; the fork image was only its parent's image.
		return prev.parent, nil
	case prev.seeded && prev.bin != nil && prev.bin.req.Stat == x.Binary && prev.proc.Exe == exeOf(x):
		// The /proc seed already read this very image (the exec raced
		// the scan at start): it is not its own parent.
		return prev.parent, nil
	default:
		// An exec chain: the previous image is the parent.
		return prev, nil
	}
}

// execImage builds the image ev starts, linked to birth, and starts
// hashing its binary.
func (e *Engine) execImage(ev sensor.Event, prev, birth *entry) *entry {
	x := ev.Exec
	ent := &entry{key: ev.Proc}
	exe := exeOf(x)
	ent.proc = event.Process{
		ExecID:        e.execID(ev.Proc.PID, ev.Proc.StartNs, ev.KtimeNs),
		PID:           ev.Proc.PID,
		PPID:          x.Parent.PID,
		StartTime:     e.wall(ev.Proc.StartNs),
		Exe:           exe,
		ExeFlags:      exeFlags(x.Flags),
		Held:          x.Flags&sensor.ExecHeld != 0,
		Argv:          x.Argv,
		ArgvTruncated: x.ArgvTruncated,
		UID:           x.UID,
		EUID:          x.EUID,
		GID:           x.GID,
	}
	if x.MntNS != 0 && e.deps.MountNS != 0 && x.MntNS != e.deps.MountNS {
		ent.proc.MntNS = x.MntNS
	}
	if prev != nil {
		// Inherited across exec (and from the parent at fork).
		ent.proc.TTY = prev.proc.TTY
		ent.proc.Cgroup = prev.proc.Cgroup
		ent.proc.Cwd = prev.proc.Cwd
	} else if birth != nil {
		// No fork image (the kernel sends no fork record for a child
		// that execs under its parent): inherited from the parent, as
		// the fork image would have.
		ent.proc.TTY = birth.proc.TTY
		ent.proc.Cgroup = birth.proc.Cgroup
		ent.proc.Cwd = birth.proc.Cwd
	}
	cwdLive := e.readLive(&ent.proc, x)
	e.fillUsers(&ent.proc, x.LoginUID)
	e.link(ent, birth)
	e.setBirthParent(ent, x.Parent, prev)
	ent.bin = e.bins.inspect(BinaryRequest{PID: ev.Proc.PID, Path: exe, Stat: x.Binary, HasStat: true, ExeFlags: x.Flags})
	if req := loadedRequest(&ent.proc, cwdLive); req != nil {
		if path.IsAbs(req.Path) {
			ent.loaded = e.bins.inspect(*req)
		} else {
			ent.proc.Loaded = errorBinary(*req, "not hashed: a name without a directory, which the loader looks for in its search path, or a relative path while the working directory at the exec is unknown (the process was gone before it was read)")
		}
	}
	return ent
}

// readLive fills what only the live process can tell: the working
// directory, read while the process is fresh (when it is already gone the
// inherited value, if any, stays), and the cgroup path.
func (e *Engine) readLive(p *event.Process, x *sensor.Exec) (cwdLive bool) {
	if cwd, err := e.deps.Proc.Cwd(p.PID); err == nil {
		p.Cwd, cwdLive = cwd, true
	}
	if e.deps.Cgroups != nil && x.CgroupID != 0 {
		if path, ok := e.deps.Cgroups.CgroupPath(x.CgroupID); ok {
			p.Cgroup = path
			p.ContainerID = ContainerID(path)
		}
	}
	return cwdLive
}

// setBirthParent records the process ent was forked from, constant across
// its images, and names the current parent when it differs.
func (e *Engine) setBirthParent(ent *entry, parent sensor.ProcKey, prev *entry) {
	ent.birthParent = parent
	if prev != nil && !prev.partial {
		ent.birthParent = prev.birthParent
	}
	if parent != ent.birthParent && !(ent.birthParent.StartNs == 0 && parent.PID == ent.birthParent.PID) {
		// Reparented (to pid 1 or a subreaper) since birth: the ancestry
		// stays the one it was born with, the current parent is named.
		if cur := e.t.get(parent); cur != nil {
			ent.proc.CurrentParentExecID = cur.proc.ExecID
		}
	}
}

// exeFlags names the exec's path flags that say the exe is no ordinary
// path (event.Process.ExeFlags); nil for an ordinary one.
func exeFlags(f sensor.ExecFlags) []string {
	var out []string
	if f&sensor.ExecExePseudo != 0 {
		out = append(out, event.ExeMemfd)
	}
	if f&sensor.ExecExeDeleted != 0 {
		out = append(out, event.ExeDeleted)
	}
	if f&sensor.ExecExeOutsideRoot != 0 {
		out = append(out, event.ExeOutsideRoot)
	}
	return out
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
		ent.proc.ExeFlags = pp.ExeFlags
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

// link sets ent's birth parent, bounding chain depth so a process that execs
// endlessly cannot grow memory without bound.
func (e *Engine) link(ent, parent *entry) {
	if parent == nil {
		return
	}
	if parent.depth+1 > e.cfg.MaxAncestry {
		// Keep the parent but cut the chain above it.
		cut := *parent
		cut.parent, cut.depth, cut.prev, cut.next, cut.indexed, cut.kids = nil, 0, nil, nil, false, nil
		parent = &cut
	}
	ent.parent = parent
	ent.depth = parent.depth + 1
	ent.proc.ParentExecID = parent.proc.ExecID
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
