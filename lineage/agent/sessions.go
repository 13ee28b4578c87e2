package agent

import "github.com/lineaged/lineaged/lineage/event"

// Sessions is an integration's per-session state, by the session root's
// exec_id, bounded: beyond its limit, sessions whose root ended are
// forgotten first, then the oldest. It is not safe for concurrent use; the
// integration holds its own lock.
type Sessions[S any] struct {
	max   int
	m     map[string]*sessionEntry[S]
	order []string // root exec_ids, oldest first
	drop  func(S)
}

type sessionEntry[S any] struct {
	v     S
	ended bool
}

// NewSessions returns a registry of at most limit sessions (at least 1);
// drop, when set, is called for each session forgotten.
func NewSessions[S any](limit int, drop func(S)) *Sessions[S] {
	return &Sessions[S]{max: max(limit, 1), m: map[string]*sessionEntry[S]{}, drop: drop}
}

// Get returns the state of the session rooted at root.
func (s *Sessions[S]) Get(root string) (S, bool) {
	e, ok := s.m[root]
	if !ok {
		var zero S
		return zero, false
	}
	return e.v, true
}

// Add remembers the state of a new session, forgetting others beyond the
// limit.
func (s *Sessions[S]) Add(root string, v S) {
	if e, ok := s.m[root]; ok {
		e.v = v
		return
	}
	s.m[root] = &sessionEntry[S]{v: v}
	s.order = append(s.order, root)
	for len(s.m) > s.max {
		victim := 0
		for i, id := range s.order {
			if s.m[id].ended {
				victim = i
				break
			}
		}
		id := s.order[victim]
		s.order = append(s.order[:victim], s.order[victim+1:]...)
		if s.drop != nil {
			s.drop(s.m[id].v)
		}
		delete(s.m, id)
	}
}

// End notes that a session's root exited: the session is kept (its
// daemonized descendants still need it) but becomes the first to forget.
func (s *Sessions[S]) End(root string) {
	if e, ok := s.m[root]; ok {
		e.ended = true
	}
}

// Len is the number of sessions remembered.
func (s *Sessions[S]) Len() int { return len(s.m) }

// Each calls f for every session remembered.
func (s *Sessions[S]) Each(f func(S)) {
	for _, e := range s.m {
		f(e.v)
	}
}

// MaxMembers bounds the images whose session Members remembers.
const MaxMembers = 65536

// Members remembers the session of each image (exec_id → root exec_id),
// the MaxMembers most recent: the engine gives a new session root no
// inherited attribution, and this is how a nested agent's session learns
// the session that started it (event.Agent.ParentRootExecID). The zero
// value is ready; it is not safe for concurrent use.
type Members struct {
	m     map[string]string
	order []string
}

// Remember notes that execID is in the session rooted at root.
func (m *Members) Remember(execID, root string) {
	if _, ok := m.m[execID]; ok {
		return
	}
	if m.m == nil {
		m.m = map[string]string{}
	}
	m.m[execID] = root
	m.order = append(m.order, execID)
	if len(m.order) > MaxMembers {
		delete(m.m, m.order[0])
		m.order = m.order[1:]
	}
}

// RootOf returns the session root of execID, "" when unknown.
func (m *Members) RootOf(execID string) string { return m.m[execID] }

// Reparented reports a process whose parent is no longer the one it was
// born under: it daemonized (double fork, setsid) or was adopted by pid 1
// or a subreaper. parent is the image the process was forked from, when
// known. Such a process keeps its session and the tool call that started
// it, but is a descendant, no longer part of that call's process tree.
func Reparented(proc, parent *event.Process) bool {
	switch {
	case proc.CurrentParentExecID != "", proc.PPID == 1:
		return true
	case parent != nil && parent.PID == proc.PID && parent.PPID != 0 && parent.PPID != proc.PPID:
		return true
	}
	return false
}
