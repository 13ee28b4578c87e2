package sessions

import (
	"strings"

	"github.com/lineaged/lineaged/lineage/event"
)

// Add takes one event, in any order; one whose event_id was seen before
// (a redelivery) is dropped.
func (b *Builder) Add(ev *event.Event) {
	if ev.EventID != "" {
		if b.seen == nil {
			b.seen = make(map[string]struct{})
		}
		if _, ok := b.seen[ev.EventID]; ok {
			b.dups++
			return
		}
		b.seen[ev.EventID] = struct{}{}
	}
	b.events++
	// Every event of a process repeats its process block: keep one (the
	// first with argv), so holding the input costs little more than its
	// processes.
	if p := ev.Process; p != nil && p.ExecID != "" {
		if b.procs == nil {
			b.procs = make(map[string]*event.Process)
		}
		if q, ok := b.procs[p.ExecID]; ok && (len(q.Argv) > 0 || len(p.Argv) == 0) && (hashOf(q) != "" || hashOf(p) == "") {
			ev.Process = q
		} else {
			b.procs[p.ExecID] = p
		}
	}
	if h := ev.Host; h != nil {
		if b.host != nil && *b.host == *h {
			ev.Host = b.host
		} else {
			b.host = h
		}
	}
	b.pending = append(b.pending, ev)
}

func hashOf(p *event.Process) string {
	if p.Binary == nil {
		return ""
	}
	return p.Binary.SHA256
}

// Duplicates is the number of events dropped as redeliveries.
func (b *Builder) Duplicates() int { return b.dups }

// Only keeps the sessions whose session id, or root exec id, starts with
// id; nil when none does.
func (r *Report) Only(id string) *Report {
	out := &Report{Events: r.Events}
	for _, s := range r.Sessions {
		if id != "" && (strings.HasPrefix(s.SessionID, id) || strings.HasPrefix(s.RootExecID, id)) {
			out.Sessions = append(out.Sessions, s)
		}
	}
	if len(out.Sessions) == 0 {
		return nil
	}
	return out
}

// Events is the number of events added so far.
func (b *Builder) Events() int { return b.events }
