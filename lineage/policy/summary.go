package policy

import (
	"fmt"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy/hookclient"
)

// Bounds of the summaries' memory (an agent can start sessions and write
// files without end): the open sessions summarised, and the distinct
// written paths remembered across them to count files_written (past it,
// every further write event counts as a new file).
const (
	maxSummaries    = 4096
	maxWrittenPaths = 1 << 16
)

// lossSummaries is the sensor.loss where of events whose session was
// left without a summary.
const lossSummaries = "session-summaries"

// summaries makes the agent.session_start and agent.session_end events: a
// session's summary opens before its first event reaches the output and
// closes after the exit of its root (with the alerts on that exit), or
// before sensor.stop for a session still running. It counts after the
// rules ran, so a session's alerts and denied tool calls are in its end.
// It runs on the pipeline's goroutine, inside Stage.Process.
type summaries struct {
	open  map[string]*summary // by agent.root_exec_id
	order []string            // open sessions, oldest first
	buf   []*event.Event
	// paths counts the written paths remembered, against maxWrittenPaths;
	// unreported counts the events of sessions over maxSummaries not yet
	// reported in a sensor.loss, refused all of them.
	paths      int
	unreported uint64
	refused    uint64
}

type summary struct {
	start   *event.Event // the agent.session_start sent
	last    *event.Event // the session's latest event
	root    *event.Process
	agent   event.Agent
	counts  event.SessionCounts
	written map[string]struct{}
}

// observe returns out with the session summaries it calls for: a start
// before a session's first event, the ends of the sessions out closes
// after the whole batch (an exit and its alerts), and before sensor.stop
// the end of every session still open.
func (ss *summaries) observe(out []*event.Event) []*event.Event {
	var ended []string
	changed := false
	buf := ss.buf[:0]
	for _, ev := range out {
		if ev.Kind == event.KindSensorStop {
			if ss.unreported > 0 {
				buf = append(buf, ss.loss(ev))
				changed = true
			}
			for _, root := range ss.order {
				if s := ss.open[root]; s != nil {
					buf = append(buf, s.end(ev, event.SessionEndSensorStop))
				}
			}
			changed = changed || len(ss.order) > 0
			clear(ss.open)
			ss.order = ss.order[:0]
			ss.paths = 0
			buf = append(buf, ev)
			continue
		}
		a := ev.Agent
		if a == nil || a.RootExecID == "" || ev.Kind == event.KindAgentSessionStart || ev.Kind == event.KindAgentSessionEnd {
			buf = append(buf, ev)
			continue
		}
		s := ss.open[a.RootExecID]
		if s == nil {
			if ss.open == nil {
				ss.open = make(map[string]*summary)
			}
			if len(ss.open) >= maxSummaries {
				// Reported at once the first time, then at sensor.stop.
				ss.refused++
				ss.unreported++
				buf = append(buf, ev)
				if ss.refused == 1 {
					buf = append(buf, ss.loss(ev))
					changed = true
				}
				continue
			}
			s = &summary{}
			ss.open[a.RootExecID] = s
			ss.order = append(ss.order, a.RootExecID)
			buf = append(buf, s.begin(ev))
			changed = true
		}
		s.count(ev, ss)
		buf = append(buf, ev)
		if ev.Kind == event.KindProcessExit && ev.Process != nil && ev.Process.ExecID == a.RootExecID {
			ended = append(ended, a.RootExecID)
		}
	}
	for _, root := range ended {
		if s := ss.open[root]; s != nil {
			buf = append(buf, s.end(s.last, event.SessionEndExit))
			ss.forget(root)
			changed = true
		}
	}
	ss.buf = buf
	if !changed {
		return out
	}
	return append(out[:0], buf...)
}

// loss reports the events of sessions left without a summary since the
// last report.
func (ss *summaries) loss(at *event.Event) *event.Event {
	n := ss.unreported
	ss.unreported = 0
	return &event.Event{Schema: at.Schema, Time: at.Time, Kind: event.KindSensorLoss, Host: at.Host,
		Loss: &event.Loss{Where: lossSummaries, Of: fmt.Sprintf("events of agent sessions without a summary (over %d open sessions)", maxSummaries), Count: n}}
}

func (ss *summaries) forget(root string) {
	if s := ss.open[root]; s != nil {
		ss.paths -= len(s.written)
	}
	delete(ss.open, root)
	for i, r := range ss.order {
		if r == root {
			ss.order = append(ss.order[:i], ss.order[i+1:]...)
			break
		}
	}
}

// begin builds the agent.session_start of the session ev is the first
// event of: its agent, host, identity and posture, and the root process
// with its ancestry when ev names it (itself or an ancestor).
func (s *summary) begin(ev *event.Event) *event.Event {
	s.agent = *ev.Agent
	s.agent.ToolUse = nil
	s.agent.Role = event.RoleRoot
	var above []event.Process
	s.root, above = rootProcess(ev, s.agent.RootExecID)
	start := ev.Time
	if s.root != nil && !s.root.StartTime.IsZero() {
		start = s.root.StartTime
	}
	ag := s.agent
	s.start = &event.Event{
		Schema: ev.Schema, Time: ev.Time, Kind: event.KindAgentSessionStart,
		Host: ev.Host, Process: s.root, Ancestry: above, Agent: &ag, Identity: ev.Identity, Posture: ev.Posture,
		Session: &event.Session{Start: start},
	}
	return s.start
}

// end builds the agent.session_end after last, the session's last event
// (or sensor.stop): the agent as last known (its session id may have been
// learned during the session), the posture then, and the counts.
func (s *summary) end(last *event.Event, reason string) *event.Event {
	ag := s.agent
	if s.last != nil && s.last.Agent != nil {
		l := s.last.Agent
		ag.Version = firstOf(l.Version, ag.Version)
		ag.SessionID = firstOf(l.SessionID, ag.SessionID)
		ag.ParentRootExecID = firstOf(l.ParentRootExecID, ag.ParentRootExecID)
		if l.VerifiedAt != nil || ag.Verification == "" {
			// The root's verification, settled during the session.
			ag.Verified, ag.Verification, ag.VerifiedAt, ag.Release = l.Verified, l.Verification, l.VerifiedAt, l.Release
		}
	}
	counts := s.counts
	ev := &event.Event{
		Schema: s.start.Schema, Time: last.Time, Kind: event.KindAgentSessionEnd,
		Host: s.start.Host, Process: s.root, Agent: &ag, Identity: s.start.Identity, Posture: last.Posture,
		Session: &event.Session{Start: s.start.Session.Start, End: last.Time, EndReason: reason, Counts: &counts},
	}
	if ev.Host == nil {
		ev.Host = last.Host
	}
	if ev.Posture == nil && s.last != nil {
		ev.Posture = s.last.Posture
	}
	if ev.Posture == nil {
		ev.Posture = s.start.Posture
	}
	return ev
}

// count adds ev to the session's counts.
func (s *summary) count(ev *event.Event, ss *summaries) {
	s.last = ev
	if s.root == nil {
		s.root, _ = rootProcess(ev, s.agent.RootExecID)
	}
	if s.agent.SessionID == "" && ev.Agent.SessionID != "" {
		s.agent.SessionID = ev.Agent.SessionID
	}
	if s.agent.Version == "" && ev.Agent.Version != "" {
		s.agent.Version = ev.Agent.Version
	}
	c := &s.counts
	switch ev.Kind {
	case event.KindProcessExec:
		c.Processes++
	case event.KindNetConnect:
		c.Connections++
	case event.KindPolicyAlert:
		c.Alerts++
	case event.KindAgentToolCall:
		if t := ev.Tool; t != nil && t.Hook == hookclient.PreToolUse {
			c.ToolCalls++
			if t.Decision == event.DecisionDeny {
				c.DeniedToolCalls++
			}
		}
	case event.KindFileOpen:
		if f := ev.File; f != nil && (f.Mode == event.ModeWrite || f.Mode == event.ModeReadWrite || f.Created) {
			s.wrote(f.Path, ss)
		}
	case event.KindFileDelete:
		if ev.File != nil {
			s.wrote(ev.File.Path, ss)
		}
	case event.KindFileRename:
		if ev.File != nil {
			s.wrote(ev.File.NewPath, ss)
		}
	case event.KindFileModify:
		// A link's new name is what it wrote; any other op changed path.
		if f := ev.File; f != nil && f.Op == event.FileOpLink {
			s.wrote(f.NewPath, ss)
		} else if f != nil {
			s.wrote(f.Path, ss)
		}
	}
}

func (s *summary) wrote(path string, ss *summaries) {
	if s.written == nil {
		s.written = make(map[string]struct{})
	}
	if _, ok := s.written[path]; ok {
		return
	}
	if ss.paths < maxWrittenPaths {
		s.written[path] = struct{}{}
		ss.paths++
	}
	s.counts.FilesWritten++
}

// rootProcess is a copy of the session root's process from ev: the event's
// own process or one of its ancestors; nil when ev does not name it.
func rootProcess(ev *event.Event, root string) (*event.Process, []event.Process) {
	if p := ev.Process; p != nil && p.ExecID == root {
		c := *p
		return &c, ev.Ancestry
	}
	for i := range ev.Ancestry {
		if ev.Ancestry[i].ExecID == root {
			c := ev.Ancestry[i]
			return &c, ev.Ancestry[i+1:]
		}
	}
	return nil, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
