package policy

import (
	"sync"
	"sync/atomic"

	"github.com/lineaged/lineaged/lineage/event"
)

// maxSessions bounds the agent sessions the stage remembers for the
// sessions variable; past it, new sessions are not counted.
const maxSessions = 1 << 16

// RuleStats counts what the rules did since the stage was built.
type RuleStats struct {
	// Alerts counts policy.alert events by rule id, the deny_exec rule
	// included.
	Alerts map[string]uint64
	// Severity is the severity of each rule in Alerts.
	Severity map[string]string
	// EvalErrors counts evaluations that failed (a rule that errors does
	// not fire).
	EvalErrors uint64
	// Rules is the number of rules in force.
	Rules int
}

// ruleCounts is the stage's side of RuleStats: written on the pipeline's
// goroutine, read at scrape time.
type ruleCounts struct {
	mu       sync.Mutex
	alerts   map[string]uint64
	severity map[string]string
	errors   atomic.Uint64
}

func (c *ruleCounts) alert(rule, severity string) {
	c.mu.Lock()
	if c.alerts == nil {
		c.alerts, c.severity = make(map[string]uint64), make(map[string]string)
	}
	c.alerts[rule]++
	c.severity[rule] = severity
	c.mu.Unlock()
}

// RuleStats returns a snapshot of the rule counters. Safe for concurrent
// use with Process.
func (s *Stage) RuleStats() RuleStats {
	st := RuleStats{
		Alerts:     make(map[string]uint64),
		Severity:   make(map[string]string),
		EvalErrors: s.counts.errors.Load(),
		Rules:      s.rules.Load().Len(),
	}
	s.counts.mu.Lock()
	for k, v := range s.counts.alerts {
		st.Alerts[k] = v
		st.Severity[k] = s.counts.severity[k]
	}
	s.counts.mu.Unlock()
	return st
}

// SetRules puts rs in force from the next event on. The swap is atomic:
// every event is judged by exactly one set, the old or the new, so a
// reload neither loses nor repeats an alert. Safe for concurrent use with
// Process. A nil rs removes every rule (deny_exec stays).
func (s *Stage) SetRules(rs *Rules) {
	s.rules.Store(rs)
}

// Rules returns the rule set in force.
func (s *Stage) Rules() *Rules { return s.rules.Load() }

// judged reports whether the rules see events of kind: everything but the
// policy's own events, so a rule never fires on an alert.
func judged(kind string) bool {
	return kind != event.KindPolicyAlert && kind != event.KindPolicyAction
}

// evaluate runs the rules in force over ev and appends ev, then one
// policy.alert for each rule that matched and has the alert action.
func (s *Stage) evaluate(dst []*event.Event, ev *event.Event) []*event.Event {
	dst = append(dst, ev)
	rs := s.rules.Load()
	ended := s.trackSession(ev)
	if rs.Len() == 0 || !judged(ev.Kind) {
		s.endSession(ended)
		return dst
	}
	a := &s.act
	a.bind(ev, len(s.sessions), rs.adapter)
	for _, r := range rs.forKind(ev.Kind) {
		if !s.matches(r, a) {
			continue
		}
		for _, act := range r.Actions {
			switch act.Name {
			case ActionAlert:
				dst = append(dst, s.alertFor(r, ev))
			case ActionKillProcess, ActionKillSession:
				dst = s.kill(dst, r, act.Name, ev)
			case ActionDenyTool:
				dst = s.denyTool(dst, r, ev)
			}
		}
	}
	a.bind(nil, 0, nil)
	s.endSession(ended)
	return dst
}

// matches reports whether r's condition holds for the bound event and no
// exception does. An evaluation error counts as no match.
func (s *Stage) matches(r *Rule, a *activation) bool {
	v, _, err := r.cond.Eval(a)
	if err != nil {
		s.counts.errors.Add(1)
		return false
	}
	if b, ok := v.Value().(bool); !ok || !b {
		return false
	}
	for _, x := range r.exceptions {
		v, _, err := x.Eval(a)
		if err != nil {
			s.counts.errors.Add(1)
			continue // a broken exception does not hide the alert
		}
		if b, ok := v.Value().(bool); ok && b {
			return false
		}
	}
	return true
}

// alertFor builds the policy.alert of rule r on ev: a copy of ev (its
// process, ancestry, agent and tool call, identity, posture and object)
// with the rule's finding. Its trigger_event_id is filled by the
// sequencer once ev is numbered.
func (s *Stage) alertFor(r *Rule, ev *event.Event) *event.Event {
	s.counts.alert(r.ID, r.Severity)
	al := *ev
	al.Kind = event.KindPolicyAlert
	al.Alert = &event.Alert{
		Rule:     r.ID,
		Severity: r.Severity,
		Message:  r.Description,
		Mitre:    r.Mitre,
		Trigger:  ev,
	}
	return &al
}

// trackSession keeps the set of agent sessions seen in the stream for the
// sessions variable: a session counts from its first event to the exit of
// its root. It returns the session that ev ends, to forget after the rules
// have seen ev.
func (s *Stage) trackSession(ev *event.Event) string {
	ag := ev.Agent
	if ag == nil || ag.RootExecID == "" {
		return ""
	}
	if _, ok := s.sessions[ag.RootExecID]; !ok && len(s.sessions) < maxSessions {
		s.sessions[ag.RootExecID] = struct{}{}
		s.nsessions.Store(int64(len(s.sessions)))
	}
	if ev.Kind == event.KindProcessExit && ev.Process != nil && ev.Process.ExecID == ag.RootExecID {
		return ag.RootExecID
	}
	return ""
}

func (s *Stage) endSession(root string) {
	if root != "" {
		delete(s.sessions, root)
		s.nsessions.Store(int64(len(s.sessions)))
	}
}
