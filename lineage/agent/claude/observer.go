// Package claude is the Claude Code integration: it attributes the
// processes and file events of Claude Code sessions to the agent's own
// session UUID, to a role (root, tool, mcp-server, hook, descendant) and to
// a tool call (tool_use id and name, from the session transcript; a Bash
// tool process is tied to its call by the eval payload in its argv). Which
// execs are Claude Code, in which install form and version, is a row of
// lineage/agent's table; this package knows what Claude Code does once it
// runs (docs/agents.md records the observations).
//
// The Observer is the agent.Integration for sensor.AgentClaudeCode behind
// an agent.Router, which hands it the events of Claude Code sessions and
// links a nested session to the one that started it.
//
// The Observer is called by the lineage engine on the event path and must
// stay cheap there: everything that may wait (the transcript lagging behind
// the tool's exec) happens in the Resolve functions it returns, which the
// engine runs off the hot path with a deadline.
package claude

import (
	"log/slog"
	"sync"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// Config tunes the observer. The zero value is usable.
type Config struct {
	// Table is the agent table; nil means agent.DefaultTable().
	Table *agent.Table
	// ReadFile reads package.json and agent config files; nil means
	// agent.ReadSmallFile.
	ReadFile agent.ReadFileFunc
	// PollInterval is how often a waiting Resolve re-reads the transcript
	// (default 10ms).
	PollInterval time.Duration
	// FileWait bounds how long a file event of the agent process waits for
	// a Read/Write/Edit tool call naming its path to appear in the
	// transcript (default 250ms). The tool_use record is usually written
	// before the tool runs, but the agent appends asynchronously: on a busy
	// host the Write tool's first open was seen 70ms ahead of its record.
	FileWait time.Duration
	// MaxTranscriptLine bounds one transcript record (default 4 MiB).
	MaxTranscriptLine int
	// MaxTranscriptBytes refuses a larger transcript file (default
	// DefaultTranscriptMaxBytes); TranscriptPollBytes bounds the bytes one
	// poll reads (default DefaultTranscriptPollBytes); TranscriptRetain
	// bounds the bytes all transcripts keep together (default
	// DefaultRetainBytes).
	MaxTranscriptBytes  int64
	TranscriptPollBytes int64
	TranscriptRetain    int64
	// MaxSessions bounds the sessions remembered (default 1024); ended
	// sessions are forgotten first.
	MaxSessions int
	// ProcRoot is where /proc is mounted, to read the managed settings
	// through an agent's own root (default /proc).
	ProcRoot string
	// Proc reads live processes (lineage.ProcFS): optional, used to learn
	// the root of a session already running when the sensor started from
	// the parent of one of its members.
	Proc agent.ProcFacts
}

// Stats are the observer's counters.
type Stats struct {
	Sessions        int
	ToolsBound      uint64 // Bash tool processes tied to their tool_use
	ToolsBoundExact uint64 // of which through the hook (exact)
	ToolsNoHook     uint64 // Bash tool processes of a hooked session with no hook decision
	ToolsUnbound    uint64 // Bash tool processes whose tool_use never appeared in time
	// ToolsBoundUntrusted counts bindings through a transcript something
	// other than the agent wrote to; ForeignWrites such writes seen.
	ToolsBoundUntrusted uint64
	ForeignWrites       uint64
	// SessionHints counts session UUIDs taken as a hint from the
	// environment of a process below the agent's direct children.
	SessionHints uint64
	FilesBound   uint64 // agent-process file events tied to a tool_use
	// FilesHousekeeping counts agent-process file events taken for its
	// own upkeep, not waited on (housekeeping).
	FilesHousekeeping uint64
	Transcript        TranscriptStats
	TranscriptPaths   int
}

// Observer is the Claude Code agent.Integration.
type Observer struct {
	cfg Config
	log *slog.Logger
	// inHostNS: the sensor runs in the mount namespace the engine takes
	// for the host's (sameMountNS).
	inHostNS bool

	mu       sync.Mutex
	sessions *agent.Sessions[*session]
	bindings map[*event.ToolUse]*binding
	// byExec finds the binding of a Bash tool process by exec_id.
	bindOrder []*event.ToolUse
	byExec    map[string]*binding
	// helpers maps the bogus session root a kernel recogniser made of an
	// embedded helper exec to the attribution it should have had.
	helpers     map[string]*event.Agent
	byExecOrder []string
	// hooks is what the agents' hooks reported, by session UUID.
	hooks     map[string]*hookLog
	hookOrder []string
	stats     Stats
	// retain is the transcripts' shared retained-bytes budget.
	retain *RetainBudget
	// foreign are transcript paths a process other than their agent
	// opened for write (or renamed), with what did it, bounded.
	foreign      map[string]string
	foreignOrder []string
}

type session struct {
	rootExecID string
	rootPID    uint32
	// rootSharesOurs: the root, when learnt, saw the sensor's own file
	// system (same mount namespace, same root directory): its transcript
	// is read from "/" and stays readable once the root has exited.
	rootSharesOurs bool
	// rootInHostNS: the kernel found the root, at its exec, in the host's
	// mount namespace (no event.Process.MntNS): once it has exited, its
	// transcript is read from the sensor's root when the sensor is there
	// too (Observer.inHostNS).
	rootInHostNS bool
	// rootUID is the agent's uid, when known (hasUID): its transcript
	// must be the user's own file.
	rootUID uint32
	hasUID  bool
	match   agent.Match
	cfg     claudeConfig
	// configDir is the agent's ~/.claude (or $CLAUDE_CONFIG_DIR).
	configDir string

	uuid     string
	uuidFirm bool // learned from the environment or the transcript, not argv
	// uuidHint: uuid came from the environment of a process below the
	// agent's direct children, which a session member controls.
	uuidHint   bool
	transcript *Transcript
	bound      map[string]bool // tool_use ids already tied to a process
	// envTried is when an exec below the agent's direct children last had
	// its environment read for the session's ids.
	envTried time.Time
}

// binding is a Bash tool process waiting for its tool_use.
type binding struct {
	sess    *session
	payload string
	tu      *event.ToolUse // the placeholder the tool process carries
	done    chan struct{}
	id      string
	closed  bool
	// unhooked: the session's agent calls the hook, and no hook decision
	// named this call.
	unhooked bool
	// sum and trimSum are the digests of payload, whole and trimmed.
	sum, trimSum [32]byte
}

// New returns an observer.
func New(cfg Config, log *slog.Logger) *Observer {
	if cfg.Table == nil {
		cfg.Table = agent.DefaultTable()
	}
	if cfg.ReadFile == nil {
		cfg.ReadFile = agent.ReadSmallFile
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	if cfg.FileWait <= 0 {
		cfg.FileWait = 250 * time.Millisecond
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 1024
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Observer{
		cfg: cfg, log: log.With("component", "agent"), inHostNS: sameMountNS(cfg.ProcRoot),
		sessions: agent.NewSessions(cfg.MaxSessions, func(s *session) {
			if s.transcript != nil {
				s.transcript.Close()
			}
		}),
		bindings: map[*event.ToolUse]*binding{}, byExec: map[string]*binding{}, helpers: map[string]*event.Agent{},
		hooks: map[string]*hookLog{}, retain: NewRetainBudget(cfg.TranscriptRetain), foreign: map[string]string{},
	}
}

// Stats returns a snapshot of the counters.
func (o *Observer) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.stats
	s.Sessions = o.sessions.Len()
	o.sessions.Each(func(ss *session) {
		if ss.transcript != nil {
			s.TranscriptPaths++
			ts := ss.transcript.Stats()
			s.Transcript.Lines += ts.Lines
			s.Transcript.Malformed += ts.Malformed
			s.Transcript.Oversized += ts.Oversized
			s.Transcript.ToolCalls += ts.ToolCalls
			s.Transcript.OpenErrs += ts.OpenErrs
			s.Transcript.Refused += ts.Refused
			s.Transcript.Dropped += ts.Dropped
			s.Transcript.Budgeted += ts.Budgeted
		}
	})
	return s
}

// Exec attributes a new image.
func (o *Observer) Exec(x agent.Exec) agent.Result {
	if x.Proc == nil {
		return agent.Result{}
	}
	argv := x.Proc.Argv
	exe := x.ExePath()
	// A look-alike (recognised by path inside a session, binary not
	// verified) is a member of the enclosing session, not a new one.
	if m, ok := o.cfg.Table.Identify(exe, argv, o.cfg.ReadFile); ok && !x.Proc.AgentLookalike {
		return o.newSession(&x, m)
	}
	if x.ParentAgent == nil {
		return o.unnamedRoot(&x, exe)
	}
	a := *x.ParentAgent

	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.session(&a, x.Proc, x.Parent, x.Env)
	if (s.uuid == "" || s.uuidHint || s.match.Version == "") && o.tryEnv(s, &x) {
		o.learnEnvSession(s, &x)
	}
	if a.Version == "" {
		a.Version = s.match.Version
	}
	if s.uuid != "" {
		s.stamp(&a)
	}
	if agent.Reparented(x.Proc, x.Parent) && a.Role != event.RoleRoot {
		// A daemonized child keeps its session and the tool call that
		// started it, but is no longer part of that call's process tree.
		a.Role = event.RoleDescendant
	}
	if x.Parent != nil && x.Parent.ExecID == s.rootExecID && x.Proc.PID != x.Parent.PID {
		return o.directChild(s, &x, &a)
	}
	if a.ToolUse == nil && x.Parent != nil && (a.Role == event.RoleDescendant || a.Role == event.RoleTool) && isBashTool(x.Parent.Argv) {
		// The parent is a Bash tool process the observer never saw exec:
		// it was running when the sensor started (seeded from /proc).
		if a.Role != event.RoleDescendant || !agent.Reparented(x.Proc, x.Parent) {
			a.Role = event.RoleTool
		}
		if s.uuid == "" || s.uuidHint {
			// This child may be gone before its environment is read; the
			// tool process, still running, has what the agent gave it.
			o.learnSeededTool(s, x.Parent)
			if s.uuid != "" {
				s.stamp(&a)
			}
		}
		return o.bindTool(s, x.Parent, &a, true)
	}
	if r := o.inherit(s, &a); r != nil {
		return agent.Result{Agent: &a, Resolve: r}
	}
	return agent.Result{Agent: &a}
}

// unnamedRoot handles a session root the table does not name: the kernel
// ran another table than this one (state pinned by an older sensor, or a
// Config.Table of its own).
func (o *Observer) unnamedRoot(x *agent.Exec, exe string) agent.Result {
	if x.Raw == nil || x.Raw.Recognised == sensor.AgentNone {
		return agent.Result{}
	}
	if o.cfg.Table.Vetoed(exe, x.Proc.Argv) {
		// A kernel recogniser that ignores argv[0] took Claude Code's
		// embedded grep for a new session: give it, and the events filed
		// under that bogus session, the tool's attribution.
		if a := o.helperOf(x); a != nil {
			return agent.Result{Agent: a}
		}
		return agent.Result{}
	}
	// The kernel's recogniser matched a form this table does not name:
	// still a session, without a version.
	return o.newSession(x, agent.Match{Kind: x.Raw.Recognised, Name: x.Raw.Recognised.String()})
}

// helperOf attributes a Claude Code helper exec (claude.exe as ugrep) to
// the tool process that ran it, when the observer knows that process.
func (o *Observer) helperOf(x *agent.Exec) *event.Agent {
	if x.Parent == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.byExec[x.Parent.ExecID]
	if b == nil {
		return nil
	}
	s := b.sess
	a := &event.Agent{Name: s.match.Name, Version: s.match.Version, RootExecID: s.rootExecID, Role: event.RoleTool}
	s.stamp(a)
	if b.id != "" {
		a.ToolUse = b.toolUse()
	} else {
		a.ToolUse = b.tu
	}
	if len(o.helpers) >= maxBindings {
		clear(o.helpers)
	}
	h := *a
	o.helpers[x.Proc.ExecID] = &h
	return a
}

var (
	_ agent.Integration = (*Observer)(nil)
	_ agent.Seeder      = (*Observer)(nil)
)
