package sessions

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// Report is every agent session found in the input.
type Report struct {
	Events   int        `json:"events"`
	Sessions []*Session `json:"sessions"`
}

// Session is one agent session.
type Session struct {
	RootExecID string `json:"root_exec_id"`
	// ParentRootExecID names the session whose tool call started this one
	// (a nested agent).
	ParentRootExecID string               `json:"parent_root_exec_id,omitempty"`
	Agent            string               `json:"agent"`
	Version          string               `json:"version,omitempty"`
	SessionID        string               `json:"session_id,omitempty"`
	User             string               `json:"user,omitempty"`
	Human            string               `json:"human,omitempty"`
	Host             string               `json:"host,omitempty"`
	Start            time.Time            `json:"start"`
	End              time.Time            `json:"end,omitzero"`
	EndReason        string               `json:"end_reason,omitempty"`
	Counts           *event.SessionCounts `json:"counts,omitempty"`
	// Posture is the posture at the start, then every change of
	// compliance during the session.
	Posture []PostureMark `json:"posture,omitempty"`
	// Root is the agent's own process.
	Root      *Proc       `json:"root,omitempty"`
	ToolCalls []*ToolCall `json:"tool_calls"`
	// Other holds the process trees tied to no tool call: MCP servers,
	// hooks, the agent's own helpers.
	Other []*Proc `json:"other,omitempty"`
	// Alerts are the session's alerts not raised on one of its
	// processes or tool calls (a posture change, the root's exec).
	Alerts []*Alert `json:"alerts,omitempty"`

	last  time.Time // of the latest event
	procs map[string]*Proc
	calls map[string]*ToolCall
	order []*Proc
}

// PostureMark is the device posture at a point of the session.
type PostureMark struct {
	Time      time.Time `json:"time"`
	Compliant bool      `json:"compliant"`
	Failed    []string  `json:"failed,omitempty"`
}

// ToolCall is one tool call of the session.
type ToolCall struct {
	ID   string    `json:"id"`
	Name string    `json:"name"`
	Time time.Time `json:"time"`
	// Input is the redacted command, path or URL the call was given
	// (from the hook's input summary, else the tool process's argv).
	Input       string  `json:"input,omitempty"`
	Attribution string  `json:"attribution,omitempty"`
	Decision    string  `json:"decision,omitempty"`
	Rule        string  `json:"rule,omitempty"`
	Reason      string  `json:"reason,omitempty"`
	Outcome     string  `json:"outcome,omitempty"`
	DurationMS  *uint64 `json:"duration_ms,omitempty"`
	// Procs are the process trees the call started; Files what the agent
	// itself touched for it (Read, Write, Edit).
	Procs  []*Proc  `json:"processes,omitempty"`
	Files  []FileOp `json:"files,omitempty"`
	Alerts []*Alert `json:"alerts,omitempty"`
}

// Proc is one process image.
type Proc struct {
	ExecID   string    `json:"exec_id"`
	Parent   string    `json:"parent_exec_id,omitempty"`
	PID      uint32    `json:"pid"`
	Exe      string    `json:"exe,omitempty"`
	Argv     []string  `json:"argv,omitempty"`
	SHA256   string    `json:"sha256,omitempty"`
	Verdict  string    `json:"verdict,omitempty"`
	Role     string    `json:"role,omitempty"`
	Start    time.Time `json:"start"`
	Exit     *Exit     `json:"exit,omitempty"`
	Files    []FileOp  `json:"files,omitempty"`
	Conns    []Conn    `json:"connections,omitempty"`
	Alerts   []*Alert  `json:"alerts,omitempty"`
	Children []*Proc   `json:"children,omitempty"`

	tool   string // tool_use id, as last attributed
	placed bool
}

// Exit is how a process ended.
type Exit struct {
	Time   time.Time `json:"time"`
	Code   int32     `json:"code"`
	Signal int32     `json:"signal,omitempty"`
}

// File operations.
const (
	OpRead   = "read"
	OpWrite  = "write"
	OpCreate = "create"
	OpDelete = "delete"
	OpRename = "rename"
	OpChmod  = "chmod"
)

// FileOp is one file event of a process.
type FileOp struct {
	Time    time.Time `json:"time"`
	Op      string    `json:"op"`
	Path    string    `json:"path"`
	NewPath string    `json:"new_path,omitempty"`
}

// Conn is one connection a process made.
type Conn struct {
	Time     time.Time `json:"time"`
	Protocol string    `json:"protocol"`
	DstIP    string    `json:"dst_ip"`
	DstPort  uint16    `json:"dst_port"`
	Failed   bool      `json:"failed,omitempty"`
}

// Alert is a policy alert or action.
type Alert struct {
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"` // policy.alert or policy.action
	Rule     string    `json:"rule"`
	Severity string    `json:"severity"`
	Message  string    `json:"message,omitempty"`
	Action   string    `json:"action,omitempty"`
	Result   string    `json:"result,omitempty"`
	Mitre    []string  `json:"mitre,omitempty"`
	// On names what it was raised on: a path, a destination, a tool call.
	On string `json:"on,omitempty"`
}

// Builder gathers events into sessions; Add them in stream order, then
// Report.
type Builder struct {
	events int
	// pending holds the events until Report puts them in time order (a
	// SIEM export need not be); seen their event_ids, to drop the
	// duplicates at-least-once delivery makes.
	pending  []*event.Event
	seen     map[string]struct{}
	dups     int
	procs    map[string]*event.Process // interned process blocks
	host     *event.Host
	sessions map[string]*Session
	order    []*Session
	posture  []PostureMark // host-wide changes, in order
	hostwide []*Alert      // alerts outside any session (posture)
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder { return &Builder{sessions: make(map[string]*Session)} }

// add takes one event, in time order.
func (b *Builder) add(ev *event.Event) {
	switch ev.Kind {
	case event.KindPostureSample, event.KindPostureChange:
		if p := ev.Posture; p != nil {
			b.posture = append(b.posture, PostureMark{Time: ev.Time, Compliant: p.Compliant, Failed: p.Failed})
		}
		return
	}
	a := ev.Agent
	if a == nil || a.RootExecID == "" {
		if ev.Alert != nil {
			b.hostwide = append(b.hostwide, alertOf(ev))
		}
		return
	}
	s := b.session(ev)
	if p := ev.Posture; p != nil {
		if n := len(s.Posture); n == 0 || s.Posture[n-1].Compliant != p.Compliant || !slices.Equal(s.Posture[n-1].Failed, p.Failed) {
			s.Posture = append(s.Posture, PostureMark{Time: ev.Time, Compliant: p.Compliant, Failed: p.Failed})
		}
	}
	switch ev.Kind {
	case event.KindAgentSessionStart, event.KindAgentSessionEnd:
		if ss := ev.Session; ss != nil {
			s.Start = ss.Start
			if ev.Kind == event.KindAgentSessionEnd {
				s.End, s.EndReason, s.Counts = ss.End, ss.EndReason, ss.Counts
			}
		}
		if ev.Process != nil && s.Root == nil {
			s.Root = s.proc(ev.Process, a)
		}
		return
	case event.KindAgentToolCall:
		b.toolCall(s, ev)
		return
	case event.KindPolicyAlert, event.KindPolicyAction:
		b.alert(s, ev)
		return
	}
	if ev.Process == nil {
		return
	}
	p := s.proc(ev.Process, a)
	if ev.Process.ExecID == a.RootExecID {
		s.Root = p
	}
	var call *ToolCall
	if tu := a.ToolUse; tu != nil && tu.ID != "" {
		call = s.call(tu.ID, tu.Name, ev.Time)
		if call.Attribution == "" {
			call.Attribution = tu.Attribution
		}
	}
	switch ev.Kind {
	case event.KindProcessExec:
		if p.Start.IsZero() || ev.Time.Before(p.Start) {
			p.Start = ev.Time
		}
	case event.KindProcessExit:
		if x := ev.Exit; x != nil {
			p.Exit = &Exit{Time: ev.Time, Code: x.Code, Signal: x.Signal}
		}
	case event.KindFileOpen, event.KindFileDelete, event.KindFileRename, event.KindFileChmod, event.KindFileModify:
		if ev.File == nil {
			return
		}
		op := fileOp(ev)
		// The agent's own opens for a Read, Write or Edit call belong to
		// the call.
		if p == s.Root && call != nil {
			call.Files = append(call.Files, op)
		} else {
			p.Files = append(p.Files, op)
		}
	case event.KindNetConnect:
		if n := ev.Net; n != nil {
			p.Conns = append(p.Conns, Conn{Time: ev.Time, Protocol: n.Protocol, DstIP: n.DstIP, DstPort: n.DstPort,
				Failed: n.Result != 0 && n.Result != -115})
		}
	}
}

func fileOp(ev *event.Event) FileOp {
	f := ev.File
	op := FileOp{Time: ev.Time, Path: f.Path}
	switch ev.Kind {
	case event.KindFileDelete:
		op.Op = OpDelete
	case event.KindFileRename:
		op.Op, op.NewPath = OpRename, f.NewPath
	case event.KindFileChmod:
		op.Op = OpChmod
	case event.KindFileModify:
		// The change itself: truncate, chown, link, symlink, mkdir, ...
		op.Op = cmp.Or(f.Op, "modify")
		switch f.Op {
		case event.FileOpLink:
			op.NewPath = f.NewPath
		case event.FileOpSymlink:
			op.NewPath = f.Target
		}
	default:
		switch {
		case f.Created:
			op.Op = OpCreate
		case f.Mode == event.ModeWrite || f.Mode == event.ModeReadWrite:
			op.Op = OpWrite
		default:
			op.Op = OpRead
		}
	}
	return op
}

// session is ev's session, made on its first event.
func (b *Builder) session(ev *event.Event) *Session {
	a := ev.Agent
	s := b.sessions[a.RootExecID]
	if s == nil {
		s = &Session{RootExecID: a.RootExecID, Agent: a.Name, Start: ev.Time,
			procs: make(map[string]*Proc), calls: make(map[string]*ToolCall)}
		b.sessions[a.RootExecID] = s
		b.order = append(b.order, s)
	}
	s.Version = cmp.Or(s.Version, a.Version)
	s.SessionID = cmp.Or(s.SessionID, a.SessionID)
	s.ParentRootExecID = cmp.Or(s.ParentRootExecID, a.ParentRootExecID)
	if s.Host == "" && ev.Host != nil {
		s.Host = ev.Host.Hostname
	}
	if id := ev.Identity; id != nil && (s.User == "" || s.Human == "") {
		s.User = cmp.Or(s.User, id.LoginUser, id.User)
		if id.Human != nil && s.Human == "" {
			s.Human = id.Human.Name
			if id.Human.Email != "" {
				s.Human += " <" + id.Human.Email + ">"
			}
		}
	}
	if ev.Time.After(s.last) {
		s.last = ev.Time
	}
	return s
}

// proc is the process of an event, made on its first event.
func (s *Session) proc(ep *event.Process, a *event.Agent) *Proc {
	p := s.procs[ep.ExecID]
	if p == nil {
		p = &Proc{ExecID: ep.ExecID, Parent: ep.ParentExecID, PID: ep.PID, Exe: ep.Exe, Start: ep.StartTime}
		s.procs[ep.ExecID] = p
		s.order = append(s.order, p)
	}
	if len(p.Argv) == 0 && len(ep.Argv) > 0 {
		p.Argv = ep.Argv
	}
	if p.Exe == "" {
		p.Exe = ep.Exe
	}
	if bin := ep.Binary; bin != nil {
		// A process.binary brings the hash and verdict of an exec that
		// went out before its binary was hashed (verdict error).
		if p.SHA256 == "" && bin.SHA256 != "" {
			p.SHA256, p.Verdict = bin.SHA256, bin.Verdict
		}
		p.Verdict = cmp.Or(p.Verdict, bin.Verdict)
	}
	if a != nil {
		if a.Role != "" && (p.Role == "" || p.Role == event.RoleDescendant) {
			p.Role = a.Role
		}
		if tu := a.ToolUse; tu != nil && tu.ID != "" && ep.ExecID != a.RootExecID {
			p.tool = tu.ID
		}
	}
	return p
}

// call is the tool call id, made when first named.
func (s *Session) call(id, name string, t time.Time) *ToolCall {
	c := s.calls[id]
	if c == nil {
		c = &ToolCall{ID: id, Name: name, Time: t}
		s.calls[id] = c
		s.ToolCalls = append(s.ToolCalls, c)
	}
	if c.Name == "" {
		c.Name = name
	}
	if t.Before(c.Time) {
		c.Time = t
	}
	return c
}

func (b *Builder) toolCall(s *Session, ev *event.Event) {
	t := ev.Tool
	if t == nil || t.ID == "" {
		return
	}
	c := s.call(t.ID, t.Name, ev.Time)
	if c.Input == "" {
		c.Input = inputSummary(t.Input)
	}
	if t.Hook == "PreToolUse" || c.Decision == "" {
		c.Decision, c.Rule, c.Reason = t.Decision, t.Rule, t.Reason
	}
	if t.Outcome != "" {
		c.Outcome, c.DurationMS = t.Outcome, t.DurationMS
	}
	if c.Attribution == "" {
		c.Attribution = event.AttributionExact
	}
}

// inputKeys are the input keys that say what a call does, best first.
var inputKeys = []string{"command", "file_path", "path", "notebook_path", "url", "pattern", "query", "prompt"}

func inputSummary(in map[string]string) string {
	for _, k := range inputKeys {
		if v, ok := in[k]; ok && v != "" {
			return v
		}
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range in {
			if !yield(k) {
				return
			}
		}
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+in[k])
	}
	return strings.Join(parts, " ")
}

func alertOf(ev *event.Event) *Alert {
	al := ev.Alert
	a := &Alert{Time: ev.Time, Kind: ev.Kind, Rule: al.Rule, Severity: al.Severity, Message: al.Message,
		Action: al.Action, Result: al.Result, Mitre: al.Mitre}
	switch {
	case ev.File != nil:
		a.On = ev.File.Path
	case ev.Net != nil:
		a.On = ev.Net.DstIP
	case ev.Tool != nil:
		a.On = ev.Tool.Name + " " + ev.Tool.ID
	case ev.Process != nil:
		a.On = ev.Process.Exe
	}
	return a
}

// alert places a policy event where it was raised: a tool call's (the
// hook's decision), a process's, or the session's.
func (b *Builder) alert(s *Session, ev *event.Event) {
	if ev.Alert == nil {
		return
	}
	al := alertOf(ev)
	switch {
	case ev.Tool != nil && ev.Tool.ID != "":
		c := s.call(ev.Tool.ID, ev.Tool.Name, ev.Time)
		c.Alerts = append(c.Alerts, al)
	case ev.Process != nil && ev.Process.ExecID != s.RootExecID:
		p := s.proc(ev.Process, nil)
		p.Alerts = append(p.Alerts, al)
	case ev.Agent.ToolUse != nil && ev.Agent.ToolUse.ID != "":
		c := s.call(ev.Agent.ToolUse.ID, ev.Agent.ToolUse.Name, ev.Time)
		c.Alerts = append(c.Alerts, al)
	default:
		s.Alerts = append(s.Alerts, al)
	}
}

// Report places every process under its tool call or parent and returns
// the sessions, oldest first.
func (b *Builder) Report() *Report {
	// Time order; the sensor's own order (seq) among events of the same
	// time. Events of one sensor run are already in seq order.
	slices.SortStableFunc(b.pending, func(x, y *event.Event) int {
		if c := x.Time.Compare(y.Time); c != 0 {
			return c
		}
		return cmp.Compare(x.Seq, y.Seq)
	})
	for _, ev := range b.pending {
		b.add(ev)
	}
	b.pending, b.procs, b.seen = nil, nil, nil
	r := &Report{Events: b.events, Sessions: make([]*Session, 0, len(b.order))}
	for _, s := range b.order {
		if s.End.IsZero() {
			s.End = s.last // no agent.session_end: its last event
		}
		s.place()
		b.postureOf(s)
		for _, al := range b.hostwide {
			if !al.Time.Before(s.Start) && !al.Time.After(s.End) {
				s.Alerts = append(s.Alerts, al)
			}
		}
		sort.SliceStable(s.Alerts, func(i, j int) bool { return s.Alerts[i].Time.Before(s.Alerts[j].Time) })
		r.Sessions = append(r.Sessions, s)
	}
	slices.SortStableFunc(r.Sessions, func(a, b *Session) int { return a.Start.Compare(b.Start) })
	return r
}

// postureOf merges the posture the session's own events carried with the
// host's posture samples and changes during it, keeping the first and
// every change of compliance or of the failed checks.
func (b *Builder) postureOf(s *Session) {
	marks := s.Posture
	var before *PostureMark // the host's posture in force at the start
	for i, m := range b.posture {
		switch {
		case m.Time.Before(s.Start):
			before = &b.posture[i]
		case !m.Time.After(s.End):
			marks = append(marks, m)
		}
	}
	if before != nil && (len(marks) == 0 || marks[0].Time.After(s.Start)) {
		m := *before
		m.Time = s.Start
		marks = append(marks, m)
	}
	slices.SortStableFunc(marks, func(a, b PostureMark) int { return a.Time.Compare(b.Time) })
	s.Posture = marks[:0:0]
	for _, m := range marks {
		if n := len(s.Posture); n > 0 && s.Posture[n-1].Compliant == m.Compliant && slices.Equal(s.Posture[n-1].Failed, m.Failed) {
			continue
		}
		s.Posture = append(s.Posture, m)
	}
}

// place builds the trees: a process goes under its parent when the parent
// is in the session (and is not the agent itself), else at the top of its
// tool call, else among the processes tied to no tool call.
func (s *Session) place() {
	for _, p := range s.order {
		if p == s.Root {
			continue
		}
		parent := s.procs[p.Parent]
		switch {
		case parent != nil && parent != s.Root && parent != p && (p.tool == "" || parent.tool == p.tool):
			parent.Children = append(parent.Children, p)
		case p.tool != "":
			c := s.calls[p.tool]
			c.Procs = append(c.Procs, p)
		default:
			s.Other = append(s.Other, p)
		}
		p.placed = true
	}
	for _, c := range s.ToolCalls {
		if c.Input == "" && len(c.Procs) > 0 {
			c.Input = bashCommand(c.Procs[0].Argv)
		}
		if c.Input == "" && len(c.Files) > 0 {
			c.Input = c.Files[0].Path
		}
	}
	slices.SortStableFunc(s.ToolCalls, func(a, b *ToolCall) int { return a.Time.Compare(b.Time) })
}

// bashCommand is the command of Claude Code's Bash tool process (bash -c
// "... eval '<command>' ..."), else the argv joined.
func bashCommand(argv []string) string {
	if len(argv) == 3 && argv[1] == "-c" {
		c := argv[2]
		if i := strings.Index(c, "eval '"); i >= 0 {
			rest := c[i+len("eval '"):]
			if j := strings.Index(rest, "' < /dev/null"); j >= 0 {
				return strings.ReplaceAll(rest[:j], `'\''`, `'`)
			}
			if j := strings.LastIndex(rest, "'"); j >= 0 {
				return strings.ReplaceAll(rest[:j], `'\''`, `'`)
			}
		}
		return c
	}
	return strings.Join(argv, " ")
}
