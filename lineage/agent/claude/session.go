package claude

import (
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// session returns the state of a's session, creating it when the observer
// never saw the root's exec (a session already running when the sensor
// started: the engine seeds it from /proc and attributes it by default).
// p is the process of the event, used as the root when it is the root; o.mu
// is held.
func (o *Observer) session(a *event.Agent, p, parent *event.Process, env func(string) (string, bool)) *session {
	s, ok := o.sessions.Get(a.RootExecID)
	if !ok {
		s = &session{rootExecID: a.RootExecID, bound: map[string]bool{}}
		if k := o.cfg.Table.KindOf(a.Name); k != sensor.AgentNone {
			s.match = agent.Match{Kind: k, Name: a.Name}
		}
		o.sessions.Add(s.rootExecID, s)
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
				root = &event.Process{PID: rp.PID, Exe: rp.Exe, Argv: rp.Argv, Cwd: rp.Cwd, UID: rp.UID, EUID: rp.EUID}
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
	m, ok := o.cfg.Table.Identify(root.Exe, root.Argv, o.cfg.ReadFile)
	if !ok {
		return
	}
	s.rootPID, s.match = root.PID, m
	s.rootUID, s.hasUID = root.EUID, true
	s.rootSharesOurs = o.sharesOurRoot(root.PID)
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
		s.cfg.hooks = append(s.cfg.hooks, managedHooks(o.cfg.ProcRoot, root.PID, o.cfg.ReadFile)...)
	}
}

// newSession starts the session of a recognised root exec.
func (o *Observer) newSession(x *agent.Exec, m agent.Match) agent.Result {
	a := &event.Agent{Name: m.Name, Version: m.Version, RootExecID: x.Proc.ExecID, Role: event.RoleRoot}
	if x.ParentAgent != nil {
		// Otherwise the agent.Router links the session to its parent's.
		a.ParentRootExecID = x.ParentAgent.RootExecID
	}
	s := &session{rootExecID: x.Proc.ExecID, rootPID: x.Proc.PID, rootUID: x.Proc.EUID, hasUID: true, match: m, bound: map[string]bool{},
		rootInHostNS: x.Proc.MntNS == 0}
	if m.Kind == sensor.AgentClaudeCode {
		var home string
		home, s.configDir = configDirs(x.Env)
		s.cfg = parseClaudeArgv(x.Proc.Argv, x.Proc.Cwd, home, s.configDir, o.cfg.ReadFile)
		s.cfg.hooks = append(s.cfg.hooks, managedHooks(o.cfg.ProcRoot, x.Proc.PID, o.cfg.ReadFile)...)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if s.cfg.sessionID != "" {
		o.setUUID(s, strings.ToLower(s.cfg.sessionID), false)
		s.stamp(a)
	}
	o.sessions.Add(s.rootExecID, s)
	return agent.Result{Agent: a}
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
	o.sessions.End(proc.ExecID)
}

// setUUID records the session UUID; o.mu is held.
func (o *Observer) setUUID(s *session, uuid string, firm bool) {
	if s.uuidFirm && !firm {
		return
	}
	s.uuid, s.uuidFirm, s.uuidHint = uuid, s.uuidFirm || firm, false
	if s.transcript == nil && s.configDir != "" {
		// Without the agent's open of its transcript (a session already
		// running when the sensor started, whose next append has not come
		// yet), find the transcript by its name.
		if m, _ := filepath.Glob(filepath.Join(s.configDir, "projects", "*", uuid+".jsonl")); len(m) == 1 {
			s.transcript = o.newTranscript(s, m[0])
		}
	}
}

// stamp writes the session's UUID into a, saying when it is only a hint.
func (s *session) stamp(a *event.Agent) {
	a.SessionID = s.uuid
	a.SessionIDHint = s.uuidHint && s.uuid != ""
}

// envRetry bounds how often the environment of an exec deeper than the
// agent's direct children is read while a session's ids are unknown: in a
// session whose agent never says its id (an exec storm in a tool call of
// an agent the sensor found running), reading /proc/PID/environ at every
// exec would cost more than the rest of the event.
const envRetry = time.Second

// tryEnv reports whether x's environment is worth reading for the
// session's ids: always for a direct child of the agent (where Claude
// Code sets them), else at most once per envRetry. o.mu is held.
func (o *Observer) tryEnv(s *session, x *agent.Exec) bool {
	if x.Parent != nil && x.Parent.ExecID == s.rootExecID {
		return true
	}
	now := time.Now()
	if now.Sub(s.envTried) < envRetry {
		return false
	}
	s.envTried = now
	return true
}

// learnSeededTool learns the session's UUID and configuration directory
// from the environment of tool, a Bash tool process of the session that ran
// before the sensor started (seeded from /proc, never seen exec): the agent
// set CLAUDE_CODE_SESSION_ID and CLAUDE_PID in it. Without it, a session
// already running when the sensor starts is anonymous until the agent next
// writes its transcript, and the tool call's children cannot be tied to
// it; o.mu is held.
func (o *Observer) learnSeededTool(s *session, tool *event.Process) {
	if o.cfg.Proc == nil || tool == nil || tool.ParentExecID != s.rootExecID {
		return
	}
	if s.rootPID == 0 && tool.PPID > 1 {
		// The tool process is a direct child of the root: the root, from
		// /proc, whose file system view the transcript is read through.
		if rp, err := o.cfg.Proc.Proc(tool.PPID); err == nil {
			o.learnRoot(s, &event.Process{PID: rp.PID, Exe: rp.Exe, Argv: rp.Argv, Cwd: rp.Cwd, UID: rp.UID, EUID: rp.EUID})
		}
	}
	env := func(k string) (string, bool) {
		v, ok, err := o.cfg.Proc.Env(tool.PID, k)
		return v, ok && err == nil
	}
	if s.configDir == "" {
		_, s.configDir = configDirs(env)
	}
	o.learnEnvSession(s, &agent.Exec{Proc: tool, Parent: &event.Process{ExecID: tool.ParentExecID, PID: tool.PPID}, Env: env})
}

// Seeded learns the sessions that were running when the sensor started
// from their agents' direct children (tool processes, hooks, MCP servers),
// read while they are alive: by the time the first event of a tool call
// blocked before the sensor started is attributed, the tool process and
// its children may be gone, and the session would stay anonymous and the
// call unbound until the agent next writes its transcript.
func (o *Observer) Seeded(procs []agent.Seeded) {
	if o.cfg.Proc == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	roots := map[string]*session{} // parent exec id -> its session; nil: not an agent
	for _, sp := range procs {
		if sp.Proc == nil || sp.Parent == nil {
			continue
		}
		s, seen := roots[sp.Parent.ExecID]
		if !seen {
			if m, ok := o.cfg.Table.Identify(sp.Parent.Exe, sp.Parent.Argv, o.cfg.ReadFile); ok && m.Kind == sensor.AgentClaudeCode {
				s = o.session(&event.Agent{Name: m.Name, RootExecID: sp.Parent.ExecID}, sp.Parent, nil, nil)
			}
			roots[sp.Parent.ExecID] = s
		}
		if s != nil && !s.uuidFirm {
			o.learnSeededTool(s, sp.Proc)
		}
	}
}

// learnEnvSession reads CLAUDE_CODE_SESSION_ID from a direct child of the
// agent: Claude Code sets it for tools, hooks and MCP servers. The root's
// own environment is never used: a nested agent inherits its parent's.
func (o *Observer) learnEnvSession(s *session, x *agent.Exec) {
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
		switch direct := x.Parent != nil && x.Parent.ExecID == s.rootExecID; {
		case !ok || !mine || !isUUID(v):
		case direct:
			o.setUUID(s, strings.ToLower(v), true)
		case s.uuid == "":
			// Deeper down, the environment is whatever a member passed
			// to execve: a hint until the agent's own child, argv or
			// transcript says.
			o.setUUID(s, strings.ToLower(v), false)
			s.uuidHint = true
			o.stats.SessionHints++
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
