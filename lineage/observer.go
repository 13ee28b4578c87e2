package lineage

import (
	"context"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// AgentObserver attributes session members to agents and tool calls. The
// engine calls it from its single table goroutine, in event order; it must
// not block (slow work goes into AgentResult.Resolve). With no observer the
// engine fills agent.name, root_exec_id and role root/descendant itself,
// inherited at fork in the process table.
type AgentObserver interface {
	// Exec: a session member (or a new session root) ran a new image.
	Exec(x AgentExec) AgentResult
	// File: a file event of a session member (Read/Write/Edit tool calls
	// run inside the agent process itself).
	File(x AgentFile) AgentResult
	// Exit: a session member's process ended; its table entry stays for
	// the exit grace period.
	Exit(proc *event.Process)
}

// A forked child inherits its parent's attribution; the observer is not
// asked, because a fork runs no new code.

// AgentExec describes an exec of a session member.
type AgentExec struct {
	Proc   *event.Process
	Parent *event.Process
	// ParentAgent is the attribution the process inherited (nil when the
	// parent was not in a session, e.g. for a new session root).
	ParentAgent *event.Agent
	Session     sensor.SessionRef
	Raw         *sensor.Exec
	// Env looks up the live process environment in /proc; it fails once
	// the process has exited or exec'd again.
	Env func(key string) (string, bool)
}

// AgentFile describes a file event of a session member.
type AgentFile struct {
	Proc  *event.Process
	Agent *event.Agent
	File  *event.File
}

// AgentResult is the observer's attribution. A nil Agent keeps the engine's
// default (inherited) attribution.
type AgentResult struct {
	Agent *event.Agent
	// Resolve, when set, completes the attribution off the table goroutine
	// before the event is emitted (e.g. a tool_use id that appears in the
	// transcript later). It gets a private copy of Agent; the engine waits
	// for it at most Config.EnrichWait, and emits the unresolved copy when
	// it runs late. A resolved attribution of an exec is also what the
	// process's later events and children inherit.
	Resolve func(ctx context.Context, a *event.Agent)
}
