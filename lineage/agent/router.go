package agent

import (
	"sync"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// RouterConfig configures a Router. The zero value is usable.
type RouterConfig struct {
	// Table is the agent table; nil means DefaultTable().
	Table *Table
	// Integrations are the agents' own integrations (sensor.AgentClaudeCode:
	// lineage/agent/claude's Observer). Agents without one get the
	// generic attribution.
	Integrations map[sensor.AgentKind]Integration
	// ReadFile reads the package.json an install form keeps its version
	// in; nil means ReadSmallFile.
	ReadFile ReadFileFunc
	// MaxSessions bounds the sessions of agents without an integration
	// remembered (default 1024).
	MaxSessions int
}

// Router is the Integration the lineage engine gets (lineage.Deps.Observer).
// It hands each session's events to the integration of the session's agent
// and gives sessions of agents that have none the generic attribution:
// agent name, install-form version, roles root and descendant. Across all
// agents it links a nested session to the session that started it
// (event.Agent.ParentRootExecID): the engine gives a new session root no
// inherited attribution, and its parent may belong to another agent.
type Router struct {
	table *Table
	by    map[sensor.AgentKind]Integration
	read  ReadFileFunc

	mu       sync.Mutex
	members  Members
	versions *Sessions[string] // generic sessions: version by root exec_id
}

// NewRouter returns a router.
func NewRouter(cfg RouterConfig) *Router {
	if cfg.Table == nil {
		cfg.Table = DefaultTable()
	}
	if cfg.ReadFile == nil {
		cfg.ReadFile = ReadSmallFile
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 1024
	}
	by := make(map[sensor.AgentKind]Integration, len(cfg.Integrations))
	for k, in := range cfg.Integrations {
		if in != nil {
			by[k] = in
		}
	}
	return &Router{table: cfg.Table, by: by, read: cfg.ReadFile, versions: NewSessions[string](cfg.MaxSessions, nil)}
}

// kindOf names the agent whose session an exec belongs to: the kernel's
// session, else (for callers that do not pass one) the inherited
// attribution, the kernel's recognition, or the table.
func (r *Router) kindOf(x *Exec) sensor.AgentKind {
	switch {
	case x.Session.Agent != sensor.AgentNone:
		return x.Session.Agent
	case x.ParentAgent != nil:
		return r.table.KindOf(x.ParentAgent.Name)
	case x.Raw != nil && x.Raw.Recognised != sensor.AgentNone:
		return x.Raw.Recognised
	}
	return r.table.Recognise(x.ExePath(), x.Proc.Argv)
}

// Exec attributes a new image of a session member or a new session root.
func (r *Router) Exec(x Exec) Result {
	if x.Proc == nil {
		return Result{}
	}
	var res Result
	if in := r.by[r.kindOf(&x)]; in != nil {
		res = in.Exec(x)
	} else {
		res = r.genericExec(&x)
	}
	if a := res.Agent; a != nil {
		r.mu.Lock()
		if a.Role == event.RoleRoot && a.RootExecID == x.Proc.ExecID && a.ParentRootExecID == "" && x.Parent != nil {
			a.ParentRootExecID = r.members.RootOf(x.Parent.ExecID)
		}
		r.members.Remember(x.Proc.ExecID, a.RootExecID)
		r.mu.Unlock()
	}
	return res
}

// File attributes a file event of a session member.
func (r *Router) File(x File) Result {
	if x.Agent == nil {
		return Result{}
	}
	if in := r.by[r.table.KindOf(x.Agent.Name)]; in != nil {
		return in.File(x)
	}
	if x.Agent.Version != "" {
		return Result{}
	}
	a := *x.Agent
	r.mu.Lock()
	a.Version, _ = r.versions.Get(a.RootExecID)
	r.mu.Unlock()
	return Result{Agent: &a}
}

// Exit tells every integration that a session member ended.
func (r *Router) Exit(proc *event.Process) {
	if proc == nil {
		return
	}
	for _, in := range r.by {
		in.Exit(proc)
	}
	r.mu.Lock()
	r.versions.End(proc.ExecID)
	r.mu.Unlock()
}

var _ Seeder = (*Router)(nil)

// Seeded passes the /proc seed to every integration that learns from it.
func (r *Router) Seeded(procs []Seeded) {
	for _, in := range r.by {
		if sd, ok := in.(Seeder); ok {
			sd.Seeded(procs)
		}
	}
}

// genericExec attributes an exec in the session of an agent without an
// integration: a recognised root starts a session named by the table; a
// member inherits, with the session's version, and a daemonized one is a
// descendant.
func (r *Router) genericExec(x *Exec) Result {
	if x.ParentAgent == nil {
		if x.Proc.AgentLookalike {
			return Result{} // a member of its session, not a new one
		}
		m, ok := r.table.Identify(x.ExePath(), x.Proc.Argv, r.read)
		if !ok {
			if x.Raw == nil || x.Raw.Recognised == sensor.AgentNone || r.table.Vetoed(x.ExePath(), x.Proc.Argv) {
				return Result{}
			}
			// The kernel ran another table than this one: still a
			// session, without a version.
			m = Match{Kind: x.Raw.Recognised, Name: x.Raw.Recognised.String()}
		}
		r.mu.Lock()
		r.versions.Add(x.Proc.ExecID, m.Version)
		r.mu.Unlock()
		return Result{Agent: &event.Agent{Name: m.Name, Version: m.Version, RootExecID: x.Proc.ExecID, Role: event.RoleRoot}}
	}
	a := *x.ParentAgent
	if a.Version == "" {
		r.mu.Lock()
		a.Version, _ = r.versions.Get(a.RootExecID)
		r.mu.Unlock()
	}
	if Reparented(x.Proc, x.Parent) && a.Role != event.RoleRoot {
		a.Role = event.RoleDescendant
	}
	return Result{Agent: &a}
}
