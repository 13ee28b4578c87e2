// Package agent attributes processes and file events to AI coding agent
// sessions: which agent (a table of recognisers: Claude Code in every
// install form, Codex CLI, Gemini CLI), which session (the agent's own
// session UUID), which role (root, tool, mcp-server, hook, descendant) and
// which tool call (tool_use id and name, from the session transcript).
//
// The Observer is called by the lineage engine on the event path and must
// stay cheap there: everything that may wait (the transcript lagging behind
// the tool's exec) happens in the Resolve functions it returns, which the
// engine runs off the hot path with a deadline.
package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// Config tunes the observer. The zero value is usable.
type Config struct {
	// Recognisers is the agent table; nil means Recognisers().
	Recognisers []Recogniser
	// ReadFile reads package.json and agent config files; nil means
	// ReadSmallFile.
	ReadFile ReadFileFunc
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
	// MaxSessions bounds the sessions remembered (default 1024); ended
	// sessions are forgotten first.
	MaxSessions int
	// Proc reads live processes (lineage.ProcFS): optional, used to learn
	// the root of a session already running when the sensor started from
	// the parent of one of its members.
	Proc ProcFacts
}

// ProcFacts is the part of lineage.ProcFacts the observer uses.
type ProcFacts interface {
	Proc(pid uint32) (*procfs.Proc, error)
	Env(pid uint32, key string) (string, bool, error)
}

// ExecInput is an exec of a session member or of a new session root. It
// mirrors lineage.AgentExec.
type ExecInput struct {
	Proc        *event.Process
	Parent      *event.Process
	ParentAgent *event.Agent
	Session     sensor.SessionRef
	Raw         *sensor.Exec
	// Env looks a variable up in the live process environment; it may fail
	// for a process that already exited. Values are never exported.
	Env func(key string) (string, bool)
}

// FileInput is a file event of a session member. It mirrors
// lineage.AgentFile.
type FileInput struct {
	Proc  *event.Process
	Agent *event.Agent
	File  *event.File
}

// Result is the attribution of one event. It mirrors lineage.AgentResult.
type Result struct {
	Agent *event.Agent
	// Resolve, when set, completes Agent before the event is emitted; it
	// returns when done or when ctx ends, and mutates only the agent it is
	// given.
	Resolve func(ctx context.Context, a *event.Agent)
}

// Stats are the observer's counters.
type Stats struct {
	Sessions        int
	ToolsBound      uint64 // Bash tool processes tied to their tool_use
	ToolsUnbound    uint64 // Bash tool processes whose tool_use never appeared in time
	FilesBound      uint64 // agent-process file events tied to a tool_use
	Transcript      TranscriptStats
	TranscriptPaths int
}

// Observer implements the lineage engine's AgentObserver.
type Observer struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session // by root exec_id
	order    []string            // root exec_ids, oldest first
	bindings map[*event.ToolUse]*binding
	// byExec finds the binding of a Bash tool process by exec_id.
	bindOrder []*event.ToolUse
	byExec    map[string]*binding
	// helpers maps the bogus session root a kernel recogniser made of an
	// embedded helper exec to the attribution it should have had.
	helpers     map[string]*event.Agent
	byExecOrder []string
	// members maps an image's exec_id to its session root's.
	members     map[string]string
	memberOrder []string
	stats       Stats
}

type session struct {
	rootExecID string
	rootPID    uint32
	match      Match
	cfg        claudeConfig
	// configDir is the agent's ~/.claude (or $CLAUDE_CONFIG_DIR).
	configDir string
	ended     bool

	uuid       string
	uuidFirm   bool // learned from the environment or the transcript, not argv
	transcript *Transcript
	bound      map[string]bool // tool_use ids already tied to a process
}

// binding is a Bash tool process waiting for its tool_use.
type binding struct {
	sess    *session
	payload string
	tu      *event.ToolUse // the placeholder the tool process carries
	done    chan struct{}
	id      string
	closed  bool
}

// New returns an observer.
func New(cfg Config, log *slog.Logger) *Observer {
	if cfg.Recognisers == nil {
		cfg.Recognisers = Recognisers()
	}
	if cfg.ReadFile == nil {
		cfg.ReadFile = ReadSmallFile
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
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Observer{
		cfg: cfg, log: log.With("component", "agent"),
		sessions: map[string]*session{}, bindings: map[*event.ToolUse]*binding{}, byExec: map[string]*binding{}, helpers: map[string]*event.Agent{}, members: map[string]string{},
	}
}

// Stats returns a snapshot of the counters.
func (o *Observer) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.stats
	s.Sessions = len(o.sessions)
	for _, ss := range o.sessions {
		if ss.transcript != nil {
			s.TranscriptPaths++
			ts := ss.transcript.Stats()
			s.Transcript.Lines += ts.Lines
			s.Transcript.Malformed += ts.Malformed
			s.Transcript.Oversized += ts.Oversized
			s.Transcript.ToolCalls += ts.ToolCalls
			s.Transcript.OpenErrs += ts.OpenErrs
		}
	}
	return s
}

func exePath(x *ExecInput) string {
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

// Exec attributes a new image.
func (o *Observer) Exec(x ExecInput) Result {
	r := o.exec(x)
	if r.Agent != nil && x.Proc != nil {
		o.mu.Lock()
		o.remember(x.Proc.ExecID, r.Agent.RootExecID)
		o.mu.Unlock()
	}
	return r
}

// maxMembers bounds the images whose session the observer remembers (to
// link a nested agent to the session that started it).
const maxMembers = 65536

// remember notes the session of an image, bounded; o.mu is held.
func (o *Observer) remember(execID, root string) {
	if _, ok := o.members[execID]; ok {
		return
	}
	o.members[execID] = root
	o.memberOrder = append(o.memberOrder, execID)
	if len(o.memberOrder) > maxMembers {
		delete(o.members, o.memberOrder[0])
		o.memberOrder = o.memberOrder[1:]
	}
}

func (o *Observer) exec(x ExecInput) Result {
	if x.Proc == nil {
		return Result{}
	}
	argv := x.Proc.Argv
	if m, ok := Identify(o.cfg.Recognisers, exePath(&x), argv, o.cfg.ReadFile); ok {
		return o.newSession(&x, m)
	}
	if x.ParentAgent == nil {
		if x.Raw != nil && x.Raw.Recognised != sensor.AgentNone && IsClaudeHelper(argv) {
			// A kernel recogniser that ignores argv[0] took Claude Code's
			// embedded grep for a new session: give it, and the events
			// filed under that bogus session, the tool's attribution.
			if a := o.helperOf(&x); a != nil {
				return Result{Agent: a}
			}
		}
		if x.Raw != nil && x.Raw.Recognised != sensor.AgentNone && !IsClaudeHelper(argv) {
			// The kernel's recogniser matched a form this table does not
			// name: still a session, without a version.
			return o.newSession(&x, Match{Kind: x.Raw.Recognised, Name: x.Raw.Recognised.String()})
		}
		return Result{}
	}
	a := *x.ParentAgent

	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.session(&a, x.Proc, x.Parent, x.Env)
	if s.uuid == "" || s.match.Version == "" {
		o.learnEnvSession(s, &x)
	}
	if a.Version == "" {
		a.Version = s.match.Version
	}
	if s.uuid != "" {
		a.SessionID = s.uuid
	}
	if reparented(&x) && a.Role != event.RoleRoot {
		// A daemonized child keeps its session and the tool call that
		// started it, but is no longer part of that call's process tree.
		a.Role = event.RoleDescendant
	}
	if x.Parent != nil && x.Parent.ExecID == s.rootExecID && x.Proc.PID != x.Parent.PID {
		// A direct child of the agent process: this is where roles are
		// decided. Everything below inherits.
		a.ToolUse = nil
		switch {
		case s.match.Kind == sensor.AgentClaudeCode && isBashTool(argv):
			a.Role = event.RoleTool
			return o.bindTool(s, x.Proc, &a, false)
		case s.cfg.isMCP(argv):
			a.Role = event.RoleMCPServer
		case s.cfg.isHook(argv):
			a.Role = event.RoleHook
		default:
			a.Role = roleFromEnv(&x, s.rootPID)
		}
		if a.SessionID == "" {
			return Result{Agent: &a, Resolve: o.resolveSession(s)}
		}
		return Result{Agent: &a}
	}
	if a.ToolUse == nil && x.Parent != nil && (a.Role == event.RoleDescendant || a.Role == event.RoleTool) && isBashTool(x.Parent.Argv) {
		// The parent is a Bash tool process the observer never saw exec:
		// it was running when the sensor started (seeded from /proc).
		if a.Role != event.RoleDescendant || !reparented(&x) {
			a.Role = event.RoleTool
		}
		return o.bindTool(s, x.Parent, &a, true)
	}
	if r := o.inherit(s, &a); r != nil {
		return Result{Agent: &a, Resolve: r}
	}
	return Result{Agent: &a}
}

// helperOf attributes a Claude Code helper exec (claude.exe as ugrep) to
// the tool process that ran it, when the observer knows that process.
func (o *Observer) helperOf(x *ExecInput) *event.Agent {
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
	a := &event.Agent{Name: s.match.Name, Version: s.match.Version, SessionID: s.uuid, RootExecID: s.rootExecID, Role: event.RoleTool}
	if b.id != "" {
		a.ToolUse = &event.ToolUse{ID: b.id, Name: b.tu.Name}
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

// bindTool gives a the tool call of the Bash tool process tool, creating
// its binding on first sight; o.mu is held.
//
// seeded is set for a tool process the observer never saw exec (running
// before the sensor started): its forked copies and children reach the
// observer under different exec_ids, so such bindings are shared by
// session and command.
func (o *Observer) bindTool(s *session, tool *event.Process, a *event.Agent, seeded bool) Result {
	b := o.byExec[tool.ExecID]
	if b == nil {
		payload, _ := BashToolPayload(tool.Argv)
		seedKey := "seeded\x00" + s.rootExecID + "\x00" + payload
		if seeded {
			b = o.byExec[seedKey]
		}
		if b == nil {
			tu := &event.ToolUse{Name: "Bash"}
			b = &binding{sess: s, payload: payload, tu: tu, done: make(chan struct{})}
			o.addBinding(tu, b)
			if seeded {
				o.indexExec(seedKey, b)
			}
		}
		o.indexExec(tool.ExecID, b)
	}
	if b.id != "" {
		a.ToolUse = &event.ToolUse{ID: b.id, Name: b.tu.Name}
		if a.SessionID == "" {
			return Result{Agent: a, Resolve: o.resolveSession(s)}
		}
		return Result{Agent: a}
	}
	a.ToolUse = b.tu
	return Result{Agent: a, Resolve: o.resolveTool(b)}
}

// indexExec finds b by key from now on, bounded; o.mu is held.
func (o *Observer) indexExec(key string, b *binding) {
	o.byExec[key] = b
	o.byExecOrder = append(o.byExecOrder, key)
	if len(o.byExecOrder) > maxBindings {
		delete(o.byExec, o.byExecOrder[0])
		o.byExecOrder = o.byExecOrder[1:]
	}
}

// maxBindings bounds the Bash tool processes remembered.
const maxBindings = 8192

// session returns the state of a's session, creating it when the observer
// never saw the root's exec (a session already running when the sensor
// started: the engine seeds it from /proc and attributes it by default).
// p is the process of the event, used as the root when it is the root; o.mu
// is held.
func (o *Observer) session(a *event.Agent, p, parent *event.Process, env func(string) (string, bool)) *session {
	s := o.sessions[a.RootExecID]
	if s == nil {
		s = &session{rootExecID: a.RootExecID, bound: map[string]bool{}}
		for _, r := range o.cfg.Recognisers {
			if r.Name == a.Name {
				s.match = Match{Kind: r.Kind, Name: r.Name}
			}
		}
		o.sessions[s.rootExecID] = s
		o.order = append(o.order, s.rootExecID)
		o.evict()
	}
	if s.rootPID == 0 {
		// Learn the root of a session that was running before the sensor:
		// from the event's own process, from its parent image, or from
		// /proc through the parent pid of a direct child.
		var root *event.Process
		switch {
		case p != nil && p.ExecID == s.rootExecID:
			root = p
		case parent != nil && parent.ExecID == s.rootExecID:
			root = parent
		case p != nil && p.ParentExecID == s.rootExecID && p.PPID > 1 && o.cfg.Proc != nil:
			if rp, err := o.cfg.Proc.Proc(p.PPID); err == nil {
				root = &event.Process{PID: rp.PID, Exe: rp.Exe, Argv: rp.Argv, Cwd: rp.Cwd}
			}
		}
		if root != nil {
			o.learnRoot(s, root)
		}
	}
	if s.configDir == "" && env != nil {
		_, s.configDir = configDirs(env)
	}
	return s
}

// learnRoot fills a lazily created session from its root process; o.mu is
// held.
func (o *Observer) learnRoot(s *session, root *event.Process) {
	m, ok := Identify(o.cfg.Recognisers, root.Exe, root.Argv, o.cfg.ReadFile)
	if !ok {
		return
	}
	s.rootPID, s.match = root.PID, m
	if s.configDir == "" && o.cfg.Proc != nil {
		_, s.configDir = configDirs(func(k string) (string, bool) {
			v, ok, err := o.cfg.Proc.Env(root.PID, k)
			return v, ok && err == nil
		})
	}
	if m.Kind == sensor.AgentClaudeCode {
		home := ""
		if filepath.Base(s.configDir) == ".claude" {
			home = filepath.Dir(s.configDir)
		}
		s.cfg = parseClaudeArgv(root.Argv, root.Cwd, home, s.configDir, o.cfg.ReadFile)
	}
}

// inherit completes an inherited attribution: a tool_use placeholder whose
// binding is already resolved is replaced at once, a pending one waits in
// Resolve; o.mu is held.
func (o *Observer) inherit(s *session, a *event.Agent) func(context.Context, *event.Agent) {
	if a.ToolUse != nil {
		if b := o.bindings[a.ToolUse]; b != nil {
			if b.id == "" {
				return o.resolveInherited(b)
			}
			a.ToolUse = &event.ToolUse{ID: b.id, Name: b.tu.Name}
		}
	}
	if a.SessionID == "" {
		return o.resolveSession(s)
	}
	return nil
}

// isBashTool reports the Claude Code Bash tool's process shape.
func isBashTool(argv []string) bool {
	if _, ok := BashToolPayload(argv); !ok {
		return false
	}
	// The tool's script always sources the session's shell snapshot or
	// records the working directory afterwards; a user's own `bash -c
	// "eval ..."` run by the agent process is not a tool call.
	return strings.Contains(argv[2], "/shell-snapshots/snapshot-") || strings.Contains(argv[2], "pwd -P >| ")
}

// reparented reports a process whose parent is no longer the one it was
// born under: it daemonized (double fork, setsid) or was adopted by pid 1 or
// a subreaper.
func reparented(x *ExecInput) bool {
	if x.Proc.CurrentParentExecID != "" {
		return true
	}
	if x.Proc.PPID == 1 {
		return true
	}
	if x.Parent != nil && x.Parent.PID == x.Proc.PID && x.Parent.PPID != 0 && x.Parent.PPID != x.Proc.PPID {
		return true
	}
	return false
}

// roleFromEnv classifies a child of Claude Code that matched no argv rule
// by the variables Claude Code sets for it (observed on 2.1.x): tool
// processes get AI_AGENT=claude-code_<v>_agent, MCP servers get
// CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS, hooks get AI_AGENT=..._harness with
// CLAUDE_PID. Its own helpers (environment probe, shell snapshot) get none
// of the latter and are descendants.
func roleFromEnv(x *ExecInput, rootPID uint32) string {
	if x.Env == nil {
		return event.RoleDescendant
	}
	if _, ok := x.Env("CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS"); ok {
		return event.RoleMCPServer
	}
	ai, _ := x.Env("AI_AGENT")
	// CLAUDE_PID must name this agent: a nested agent's helpers inherit
	// the outer agent's.
	pid, hasPID := x.Env("CLAUDE_PID")
	hasPID = hasPID && (rootPID == 0 || pid == strconv.FormatUint(uint64(rootPID), 10))
	switch {
	case strings.HasSuffix(ai, "_agent") && hasPID:
		return event.RoleTool
	case strings.HasSuffix(ai, "_harness") && hasPID:
		return event.RoleHook
	}
	return event.RoleDescendant
}

// learnEnvSession reads CLAUDE_CODE_SESSION_ID from a direct child of the
// agent: Claude Code sets it for tools, hooks and MCP servers. The root's
// own environment is never used: a nested agent inherits its parent's.
func (o *Observer) learnEnvSession(s *session, x *ExecInput) {
	if x.Env == nil || s.match.Kind != sensor.AgentClaudeCode {
		return
	}
	if !s.uuidFirm {
		// Only trust the variable where this session's agent set it: tools
		// and hooks carry CLAUDE_PID (the agent's pid), MCP servers the
		// launching session's ids. Helpers just inherit the environment,
		// which for a nested agent names the outer session.
		v, ok := x.Env("CLAUDE_CODE_SESSION_ID")
		pid, hasPID := x.Env("CLAUDE_PID")
		launched, _ := x.Env("CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS")
		mine := (hasPID && (s.rootPID == 0 || pid == strconv.FormatUint(uint64(s.rootPID), 10))) ||
			(launched != "" && strings.Contains(launched, v))
		if ok && mine && isUUID(v) {
			o.setUUID(s, strings.ToLower(v), true)
		}
	}
	if s.match.Version == "" {
		// AI_AGENT=claude-code_2-1-332_agent
		if v, ok := x.Env("AI_AGENT"); ok {
			parts := strings.Split(v, "_")
			if len(parts) == 3 && parts[0] == "claude-code" {
				s.match.Version = strings.ReplaceAll(parts[1], "-", ".")
			}
		}
	}
}

// setUUID records the session UUID; o.mu is held.
func (o *Observer) setUUID(s *session, uuid string, firm bool) {
	if s.uuidFirm && !firm {
		return
	}
	s.uuid, s.uuidFirm = uuid, s.uuidFirm || firm
	if s.transcript == nil && s.configDir != "" {
		// Without the agent's open of its transcript (a session already
		// running when the sensor started, whose next append has not come
		// yet), find the transcript by its name.
		if m, _ := filepath.Glob(filepath.Join(s.configDir, "projects", "*", uuid+".jsonl")); len(m) == 1 {
			s.transcript = NewTranscript(m[0], o.cfg.MaxTranscriptLine)
		}
	}
}

func (o *Observer) newSession(x *ExecInput, m Match) Result {
	a := &event.Agent{Name: m.Name, Version: m.Version, RootExecID: x.Proc.ExecID, Role: event.RoleRoot}
	if x.ParentAgent != nil {
		a.ParentRootExecID = x.ParentAgent.RootExecID
	} else if x.Parent != nil {
		// The engine gives a new session root no inherited attribution;
		// the observer remembers which session its parent image was in.
		o.mu.Lock()
		a.ParentRootExecID = o.members[x.Parent.ExecID]
		o.mu.Unlock()
	}
	s := &session{rootExecID: x.Proc.ExecID, rootPID: x.Proc.PID, match: m, bound: map[string]bool{}}
	if m.Kind == sensor.AgentClaudeCode {
		var home string
		home, s.configDir = configDirs(x.Env)
		s.cfg = parseClaudeArgv(x.Proc.Argv, x.Proc.Cwd, home, s.configDir, o.cfg.ReadFile)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if s.cfg.sessionID != "" {
		o.setUUID(s, strings.ToLower(s.cfg.sessionID), false)
		a.SessionID = s.uuid
	}
	o.sessions[s.rootExecID] = s
	o.order = append(o.order, s.rootExecID)
	o.evict()
	return Result{Agent: a}
}

// evict keeps at most MaxSessions, dropping ended sessions first; o.mu held.
func (o *Observer) evict() {
	for len(o.sessions) > o.cfg.MaxSessions {
		victim := -1
		for i, id := range o.order {
			if s := o.sessions[id]; s == nil || s.ended {
				victim = i
				break
			}
		}
		if victim < 0 {
			victim = 0
		}
		id := o.order[victim]
		o.order = append(o.order[:victim], o.order[victim+1:]...)
		if s := o.sessions[id]; s != nil && s.transcript != nil {
			s.transcript.Close()
		}
		delete(o.sessions, id)
	}
}

// configDirs returns HOME and Claude Code's configuration directory
// ($CLAUDE_CONFIG_DIR, else ~/.claude) from a process environment.
func configDirs(env func(string) (string, bool)) (home, config string) {
	if env == nil {
		return "", ""
	}
	if v, ok := env("HOME"); ok && filepath.IsAbs(v) {
		home = filepath.Clean(v)
		config = filepath.Join(home, ".claude")
	}
	if v, ok := env("CLAUDE_CONFIG_DIR"); ok && filepath.IsAbs(v) {
		config = filepath.Clean(v)
	}
	return home, config
}

// Exit notes the end of a process; a session whose root exited is kept (its
// daemonized descendants still need it) but becomes the first to forget.
func (o *Observer) Exit(proc *event.Process) {
	if proc == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := o.sessions[proc.ExecID]; s != nil {
		s.ended = true
	}
}

// File attributes a file event of a session member.
func (o *Observer) File(x FileInput) Result {
	if x.Agent == nil || x.File == nil || x.Proc == nil {
		return Result{}
	}
	a := *x.Agent
	o.mu.Lock()
	defer o.mu.Unlock()
	if h := o.helpers[a.RootExecID]; h != nil {
		a = *h
	}
	s := o.session(&a, x.Proc, nil, nil)
	if a.Version == "" {
		a.Version = s.match.Version
	}
	if s.uuid != "" {
		a.SessionID = s.uuid
	}
	if x.Proc.ExecID == s.rootExecID {
		if uuid, ok := TranscriptSession(x.File.Path); ok && (x.File.Mode != event.ModeRead || s.uuid == "" || s.uuid == uuid) {
			// The agent appends to its own transcript (opened for write on
			// every append); it reads others only for --resume or listings.
			if x.File.Mode != event.ModeRead || s.transcript == nil {
				o.setUUID(s, uuid, x.File.Mode != event.ModeRead)
				if s.transcript == nil || s.transcript.Path() != x.File.Path {
					if s.transcript != nil {
						s.transcript.Close()
					}
					s.transcript = NewTranscript(x.File.Path, o.cfg.MaxTranscriptLine)
				}
			}
			a.SessionID = s.uuid
			return Result{Agent: &a}
		}
		if s.match.Kind == sensor.AgentClaudeCode {
			return Result{Agent: &a, Resolve: o.resolveFile(s, x.File)}
		}
	}
	if a.Role == event.RoleDescendant && a.ToolUse == nil && x.Proc.ParentExecID == s.rootExecID && x.Proc.PID != s.rootPID {
		// A direct child of the agent the observer never saw exec (an MCP
		// server or hook running before the sensor started).
		switch {
		case s.cfg.isMCP(x.Proc.Argv):
			a.Role = event.RoleMCPServer
		case s.cfg.isHook(x.Proc.Argv):
			a.Role = event.RoleHook
		}
	}
	if reparented(&ExecInput{Proc: x.Proc}) && a.Role != event.RoleRoot {
		a.Role = event.RoleDescendant
	}
	if a.ToolUse == nil && a.Role != event.RoleRoot && isBashTool(x.Proc.Argv) {
		// A Bash tool process seeded from /proc (running before the
		// sensor started), e.g. its own redirections, or a forked copy of
		// it that has not exec'd yet (a redirection opened for a child).
		if !reparented(&ExecInput{Proc: x.Proc}) {
			a.Role = event.RoleTool
		}
		return o.bindTool(s, x.Proc, &a, true)
	}
	if r := o.inherit(s, &a); r != nil {
		return Result{Agent: &a, Resolve: r}
	}
	return Result{Agent: &a}
}

// resolveSession fills the session UUID if it became known by emission time.
func (o *Observer) resolveSession(s *session) func(context.Context, *event.Agent) {
	return func(_ context.Context, a *event.Agent) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if a.SessionID == "" {
			a.SessionID = s.uuid
		}
	}
}

// wait sleeps one poll interval; false when ctx ended.
func (o *Observer) wait(ctx context.Context) bool {
	t := time.NewTimer(o.cfg.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// transcriptOf returns the session's transcript; o.mu is taken.
func (o *Observer) transcriptOf(s *session) *Transcript {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s.transcript == nil && s.uuid != "" && s.configDir != "" {
		o.setUUID(s, s.uuid, s.uuidFirm)
	}
	return s.transcript
}

// resolveTool ties a Bash tool process to its tool_use: the transcript
// record may be written after the exec, so poll it until a Bash call whose
// command equals the eval payload appears, or ctx ends.
func (o *Observer) resolveTool(b *binding) func(context.Context, *event.Agent) {
	return func(ctx context.Context, a *event.Agent) {
		for {
			if id, ok := o.tryBind(b); ok {
				o.finishAgent(b, a, id)
				return
			}
			if !o.wait(ctx) {
				o.mu.Lock()
				if b.id == "" {
					o.stats.ToolsUnbound++
				}
				o.unresolved(b, a)
				o.mu.Unlock()
				return
			}
		}
	}
}

// unresolved ends a Resolve that ran out of time: a keeps the binding's
// placeholder (the engine gave Resolve a copy the observer does not know),
// so whatever inherits a can still be resolved later; o.mu is held.
func (o *Observer) unresolved(b *binding, a *event.Agent) {
	if b.id != "" {
		a.ToolUse = &event.ToolUse{ID: b.id, Name: b.tu.Name}
		o.addBinding(a.ToolUse, b)
	} else {
		a.ToolUse = b.tu
	}
	if a.SessionID == "" {
		a.SessionID = b.sess.uuid
	}
}

// addBinding indexes b by a ToolUse pointer, bounded; o.mu is held.
func (o *Observer) addBinding(tu *event.ToolUse, b *binding) {
	if _, ok := o.bindings[tu]; ok {
		return
	}
	o.bindings[tu] = b
	o.bindOrder = append(o.bindOrder, tu)
	if len(o.bindOrder) > 4*maxBindings {
		for _, old := range o.bindOrder[:maxBindings] {
			delete(o.bindings, old)
		}
		o.bindOrder = append([]*event.ToolUse(nil), o.bindOrder[maxBindings:]...)
	}
}

// finishAgent writes the resolution into a (a fresh ToolUse: the
// placeholder may already be shared with events in flight).
func (o *Observer) finishAgent(b *binding, a *event.Agent, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	tu := &event.ToolUse{ID: id, Name: b.tu.Name}
	a.ToolUse = tu
	o.addBinding(tu, b)
	if a.SessionID == "" {
		a.SessionID = b.sess.uuid
	}
}

// tryBind polls the transcript once and binds b to the first unbound Bash
// call with the same command.
func (o *Observer) tryBind(b *binding) (string, bool) {
	o.mu.Lock()
	if b.id != "" {
		id := b.id
		o.mu.Unlock()
		return id, true
	}
	o.mu.Unlock()
	t := o.transcriptOf(b.sess)
	if t == nil {
		return "", false
	}
	_ = t.Poll()
	o.mu.Lock()
	defer o.mu.Unlock()
	if b.id != "" {
		return b.id, true
	}
	c, ok := t.find(func(calls []*ToolCall) *ToolCall {
		for _, c := range calls {
			if c.Command != "" && !b.sess.bound[c.ID] && commandMatches(c.Command, b.payload) {
				return c
			}
		}
		return nil
	})
	if !ok {
		return "", false
	}
	b.sess.bound[c.ID] = true
	b.id = c.ID
	b.tu = &event.ToolUse{ID: c.ID, Name: c.Name}
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	o.stats.ToolsBound++
	return c.ID, true
}

// commandMatches compares a transcript command with an eval payload: equal,
// or equal once surrounding whitespace is trimmed (Claude Code trims the
// command before quoting it).
func commandMatches(cmd, payload string) bool {
	return cmd == payload || strings.TrimSpace(cmd) == strings.TrimSpace(payload)
}

// resolveInherited completes the tool_use of a process (or file event)
// descending from a Bash tool process whose binding was still pending.
func (o *Observer) resolveInherited(b *binding) func(context.Context, *event.Agent) {
	return func(ctx context.Context, a *event.Agent) {
		for {
			if id, ok := o.tryBind(b); ok {
				o.finishAgent(b, a, id)
				return
			}
			select {
			case <-ctx.Done():
				o.mu.Lock()
				o.unresolved(b, a)
				o.mu.Unlock()
				return
			case <-b.done:
			default:
				if !o.wait(ctx) {
					o.mu.Lock()
					o.unresolved(b, a)
					o.mu.Unlock()
					return
				}
			}
		}
	}
}

// fileTools are the tools that run inside the agent process and name one
// file in their input.
var fileTools = map[string]bool{"Read": true, "Write": true, "Edit": true, "MultiEdit": true, "NotebookEdit": true}

// resolveFile ties a file event of the agent process to the Read/Write/Edit
// call whose input names the same file, where one matches.
func (o *Observer) resolveFile(s *session, f *event.File) func(context.Context, *event.Agent) {
	path, newPath := f.Path, f.NewPath
	return func(ctx context.Context, a *event.Agent) {
		ctx, cancel := context.WithTimeout(ctx, o.cfg.FileWait)
		defer cancel()
		for {
			if t := o.transcriptOf(s); t != nil {
				_ = t.Poll()
				c, ok := t.find(func(calls []*ToolCall) *ToolCall {
					var best *ToolCall
					for i := len(calls) - 1; i >= 0; i-- {
						c := calls[i]
						if !fileTools[c.Name] || c.Path == "" {
							continue
						}
						if pathMatches(c.Path, path) || (newPath != "" && pathMatches(c.Path, newPath)) {
							if !c.Done {
								return c
							}
							if best == nil {
								best = c
							}
						}
					}
					if best != nil {
						return best
					}
					// The agent also opens the files a Bash command names
					// while it vets the command, before and after running
					// it: tie those to the call still in flight.
					for i := len(calls) - 1; i >= 0; i-- {
						if c := calls[i]; c.Command != "" && !c.Done && commandNames(c.Command, path) {
							return c
						}
					}
					return nil
				})
				if ok {
					o.mu.Lock()
					a.ToolUse = &event.ToolUse{ID: c.ID, Name: c.Name}
					if a.SessionID == "" {
						a.SessionID = s.uuid
					}
					o.stats.FilesBound++
					o.mu.Unlock()
					return
				}
			}
			if !o.wait(ctx) {
				o.resolveSession(s)(ctx, a)
				return
			}
		}
	}
}

// commandNames reports whether a shell command names path as a whole word.
func commandNames(cmd, path string) bool {
	if !filepath.IsAbs(path) || len(path) < 2 {
		return false
	}
	for i := 0; ; {
		j := strings.Index(cmd[i:], path)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(path)
		before := j == 0 || strings.ContainsRune(" \t\n'\"<>=;|&(", rune(cmd[j-1]))
		after := end == len(cmd) || strings.ContainsRune(" \t\n'\";|&)<>", rune(cmd[end]))
		if before && after {
			return true
		}
		i = j + 1
	}
}

// pathMatches compares a tool input path with a path the kernel resolved:
// equal; equal after resolving symlinks in the input (Read of
// /etc/os-release opens /usr/lib/os-release); or the temporary file the
// Write/Edit tools write before renaming it into place
// ("<path>.tmp.<pid>.<hex>", reached through /proc/self/fd/N/).
func pathMatches(input, got string) bool {
	if !filepath.IsAbs(input) {
		return false
	}
	input = filepath.Clean(input)
	if got == input || strings.HasPrefix(got, input+".tmp.") {
		return true
	}
	if strings.HasPrefix(got, "/proc/self/fd/") || strings.HasPrefix(got, "/proc/") && strings.Contains(got, "/fd/") {
		b := base(got)
		if b == base(input) || strings.HasPrefix(b, base(input)+".tmp.") {
			return true
		}
	}
	if r, err := filepath.EvalSymlinks(input); err == nil && r != input {
		return got == r || strings.HasPrefix(got, r+".tmp.")
	}
	return false
}
