package agent

import (
	"context"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// Integration is what an agent integration (lineage/agent/claude) gives the
// lineage engine: it attributes session members to agents, roles and tool
// calls. The engine calls it from its single table goroutine, in event
// order; it must not block (slow work goes into Result.Resolve). With no
// integration the engine fills agent.name, root_exec_id and role
// root/descendant itself, inherited at fork in the process table.
//
// A forked child inherits its parent's attribution; the integration is not
// asked, because a fork runs no new code.
type Integration interface {
	// Exec: a session member (or a new session root) ran a new image.
	Exec(x Exec) Result
	// File: a file event of a session member (Read/Write/Edit tool calls
	// run inside the agent process itself).
	File(x File) Result
	// Exit: a session member's process ended; its table entry stays for
	// the exit grace period.
	Exit(proc *event.Process)
}

// Seeder is implemented by an integration that learns from processes
// already running when the sensor started. The engine calls Seeded once,
// from Engine.Seed, with every process of its /proc scan that has a parent
// in the table, while they are still alive to be read: a session's tool
// process may exit before its first event is attributed, and with it what
// its environment says about the session. The processes are the engine's:
// read them during the call, never keep or change them.
type Seeder interface {
	Seeded(procs []Seeded)
}

// Seeded is a process of the /proc seed and its parent.
type Seeded struct {
	Proc   *event.Process
	Parent *event.Process
}

// Exec describes an exec of a session member or of a new session root.
type Exec struct {
	Proc   *event.Process
	Parent *event.Process
	// ParentAgent is the attribution the process inherited (nil when the
	// parent was not in a session, e.g. for a new session root).
	ParentAgent *event.Agent
	Session     sensor.SessionRef
	Raw         *sensor.Exec
	// Env looks up the live process environment in /proc; it fails once
	// the process has exited or exec'd again. Values are never exported.
	Env func(key string) (string, bool)
}

// ExePath is the executable of an exec: the resolved path the engine
// reports, else the kernel's.
func (x *Exec) ExePath() string {
	if x.Proc != nil && x.Proc.Exe != "" {
		return x.Proc.Exe
	}
	if x.Raw != nil {
		if x.Raw.Exe != "" {
			return x.Raw.Exe
		}
		return x.Raw.Filename
	}
	return ""
}

// File describes a file event of a session member.
type File struct {
	Proc  *event.Process
	Agent *event.Agent
	File  *event.File
}

// Result is the integration's attribution. A nil Agent keeps the engine's
// default (inherited) attribution.
type Result struct {
	Agent *event.Agent
	// Resolve, when set, completes the attribution off the table goroutine
	// before the event is emitted (e.g. a tool_use id that appears in the
	// transcript later). It gets a private copy of Agent, mutates only that
	// copy, and returns when done or when ctx ends; the engine waits for it
	// at most Config.EnrichWait, and emits the unresolved copy when it runs
	// late. A resolved attribution of an exec is also what the process's
	// later events and children inherit.
	Resolve func(ctx context.Context, a *event.Agent)
}

// ProcFacts reads live processes (lineage.ProcFS implements it): an
// integration uses it to learn about a session that was already running
// when the sensor started.
type ProcFacts interface {
	Proc(pid uint32) (*procfs.Proc, error)
	Env(pid uint32, key string) (string, bool, error)
}
