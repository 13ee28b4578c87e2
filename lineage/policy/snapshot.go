package policy

import (
	"sort"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// Snapshot is the stage's state between two events, as a capture records
// it where a tee starts (docs/capture.md, the snapshot record): what a
// replay's stage must start from to write, for sessions older than the
// tee, what the live one wrote (their summaries, the sessions variable,
// loss windows). Rules, redaction and the killer come from the
// configuration, not from here.
type Snapshot struct {
	// Sessions are the sessions the sessions variable counts.
	Sessions []string `json:"sessions,omitempty"`
	// First is the time of the first event; Losses the last report of
	// each loss.
	First  time.Time      `json:"first,omitzero"`
	Losses []SnapLoss     `json:"losses,omitempty"`
	Denied []DenyFile     `json:"denied,omitempty"`
	Open   []SnapSummary  `json:"open,omitempty"` // open session summaries, oldest first
	Counts *SnapSummaries `json:"summaries,omitempty"`
}

// SnapLoss is the last report of one loss.
type SnapLoss struct {
	Where string    `json:"where"`
	Of    string    `json:"of"`
	At    time.Time `json:"at"`
}

// SnapSummary is one open session summary.
type SnapSummary struct {
	Root    string              `json:"root"`
	Start   *event.Event        `json:"start"`
	Last    *event.Event        `json:"last,omitempty"`
	Process *event.Process      `json:"process,omitempty"`
	Agent   event.Agent         `json:"agent"`
	Counts  event.SessionCounts `json:"counts"`
	Written []string            `json:"written,omitempty"`
}

// SnapSummaries are the summaries' own counters.
type SnapSummaries struct {
	Paths      int    `json:"paths,omitempty"`
	Unreported uint64 `json:"unreported,omitempty"`
	Refused    uint64 `json:"refused,omitempty"`
}

// Snapshot copies the stage's state. Call it on the goroutine that runs
// Process, between two calls.
func (s *Stage) Snapshot() *Snapshot {
	out := &Snapshot{First: s.first}
	for root := range s.sessions {
		out.Sessions = append(out.Sessions, root)
	}
	sort.Strings(out.Sessions)
	for k, at := range s.lossAt {
		out.Losses = append(out.Losses, SnapLoss{Where: k.where, Of: k.of, At: at})
	}
	sort.Slice(out.Losses, func(i, j int) bool {
		a, b := out.Losses[i], out.Losses[j]
		return a.Where < b.Where || (a.Where == b.Where && a.Of < b.Of)
	})
	for f, ok := range s.denied {
		if ok {
			out.Denied = append(out.Denied, f)
		}
	}
	sort.Slice(out.Denied, func(i, j int) bool {
		a, b := out.Denied[i], out.Denied[j]
		return a.Dev < b.Dev || (a.Dev == b.Dev && a.Inode < b.Inode)
	})
	if ss := s.summaries; ss != nil {
		out.Counts = &SnapSummaries{Paths: ss.paths, Unreported: ss.unreported, Refused: ss.refused}
		for _, root := range ss.order {
			sm := ss.open[root]
			if sm == nil {
				continue
			}
			sn := SnapSummary{Root: root, Start: sm.start, Last: sm.last, Process: sm.root, Agent: sm.agent, Counts: sm.counts}
			for p := range sm.written {
				sn.Written = append(sn.Written, p)
			}
			sort.Strings(sn.Written)
			out.Open = append(out.Open, sn)
		}
	}
	return out
}

// Restore puts a snapshot's state into a new stage, before its first
// event.
func (s *Stage) Restore(sn *Snapshot) {
	if sn == nil {
		return
	}
	s.first = sn.First
	for _, root := range sn.Sessions {
		s.sessions[root] = struct{}{}
	}
	s.nsessions.Store(int64(len(s.sessions)))
	for _, l := range sn.Losses {
		s.lossAt[lossKey{l.Where, l.Of}] = l.At
	}
	for _, f := range sn.Denied {
		s.denied[f] = true
	}
	ss := s.summaries
	if ss == nil {
		return
	}
	if c := sn.Counts; c != nil {
		ss.paths, ss.unreported, ss.refused = c.Paths, c.Unreported, c.Refused
	}
	for _, o := range sn.Open {
		if o.Start == nil || o.Start.Session == nil {
			continue
		}
		sm := &summary{start: o.Start, last: o.Last, root: o.Process, agent: o.Agent, counts: o.Counts}
		for _, p := range o.Written {
			if sm.written == nil {
				sm.written = make(map[string]struct{}, len(o.Written))
			}
			sm.written[p] = struct{}{}
		}
		if ss.open == nil {
			ss.open = make(map[string]*summary)
		}
		ss.open[o.Root] = sm
		ss.order = append(ss.order, o.Root)
	}
}
