// Package policy is the stage between enrichment and the sinks (DESIGN.md:
// lineage → policy → encoder → sinks). It owns the rules and what they
// produce: the deny-exec list (validated here and turned into the keys the
// kernel enforces), the policy.alert and policy.action events, the output
// transforms (redaction, in policy/redact) and, last of all, the one
// Sequencer that numbers every event before it is written.
package policy

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy/redact"
)

// Config is the policy in force.
type Config struct {
	// DenyExec lists executables agent-session members must not run
	// (ValidateDenyExec); the kernel enforces DenyKeys of it, the stage
	// reports what it did.
	DenyExec []string
	// Redact selects the redaction applied to every event on its way out.
	Redact redact.Config
	// Rules is the rule set in force at start (LoadRules); nil: none.
	// SetRules replaces it.
	Rules *Rules
	// Kill carries out the kill actions (NewKiller); nil: they are
	// reported as not carried out.
	Kill *Killer
	// DenyFile adds a file, by identity, to the kernel's deny map, with the
	// index of the deny_exec entry that denies it (sensor/kernel
	// Sensor.DenyInode, wired by cmd/lineaged): called for a copy of a
	// binary a SHA-256 entry denies, once it has been hashed. nil: such
	// copies are alerted on and killed, never added.
	DenyFile func(f DenyFile, index uint32) error
	// SessionSummaries adds agent.session_start and agent.session_end
	// (summary.go) to the output.
	SessionSummaries bool
}

// Stage applies the policy to the enriched events. Process is not safe for
// concurrent use: the pipeline runs it on one goroutine; SetRules and
// RuleStats may be called from any.
type Stage struct {
	denyExec []string
	redactor atomic.Pointer[redact.Redactor] // swapped by SetRedaction
	out      []*event.Event

	rules    atomic.Pointer[Rules]
	act      activation
	counts   ruleCounts
	sessions map[string]struct{}
	// nsessions is len(sessions) for DecideTool, which runs on other
	// goroutines.
	nsessions atomic.Int64
	killer    *Killer

	// denyHash maps the SHA-256 entries' digests to their index; denied
	// holds the files denyFile has added to the kernel's map.
	denyHash map[string]uint32
	// denyPaths are the path entries as the kernel matches them (DenyKeys:
	// as written and symlink-resolved), for the program a dynamic loader
	// runs (denyLoaded).
	denyPaths map[string]uint32
	denyFile  func(DenyFile, uint32) error
	denied    map[DenyFile]bool
	denyRule  *Rule

	// first is the time of the first event seen, where the first loss
	// window opens; lossAt the time of the last report of each loss.
	first  time.Time
	lossAt map[lossKey]time.Time

	// summaries makes the agent session summaries (summary.go); nil:
	// none.
	summaries *summaries
}

type lossKey struct{ where, of string }

// New validates cfg and builds the stage. Errors name the setting.
func New(cfg Config) (*Stage, error) {
	if err := ValidateDenyExec(cfg.DenyExec); err != nil {
		return nil, fmt.Errorf("policy.deny_exec: %w", err)
	}
	r, err := redact.New(cfg.Redact)
	if err != nil {
		return nil, fmt.Errorf("redact.patterns: %w", err)
	}
	s := &Stage{
		denyExec:  append([]string(nil), cfg.DenyExec...),
		lossAt:    make(map[lossKey]time.Time),
		sessions:  make(map[string]struct{}),
		killer:    cfg.Kill,
		denyHash:  denyHashes(cfg.DenyExec),
		denyPaths: DenyKeys(cfg.DenyExec, filepath.EvalSymlinks),
		denyFile:  cfg.DenyFile,
		denied:    make(map[DenyFile]bool),
		denyRule:  &Rule{ID: RuleDenyExec, Severity: "high"},
	}
	s.redactor.Store(r)
	if cfg.SessionSummaries {
		s.summaries = &summaries{}
	}
	s.rules.Store(cfg.Rules)
	return s, nil
}

// Process runs the rules over ev and returns the events to write in its
// place, in order: ev itself and whatever the rules made of it, each through
// the output transforms. None is numbered yet (Sequencer.StampAll). The
// slice is reused by the next call.
func (s *Stage) Process(ev *event.Event) []*event.Event {
	if s.first.IsZero() {
		s.first = ev.Time
	}
	out := s.out[:0]
	switch {
	case ev.Deny != nil:
		out = s.deny(out, ev)
	case ev.Kind == event.KindSensorLoss && ev.Loss != nil:
		s.lossWindow(ev)
		out = s.evaluate(out, ev)
	default:
		out = s.evaluate(out, ev)
		out = s.denyByHash(out, ev)
		out = s.denyLoaded(out, ev)
	}
	if s.summaries != nil {
		out = s.summaries.observe(out)
	}
	for _, o := range out {
		s.redactor.Load().Event(o)
	}
	s.out = out
	return out
}

// lossWindow gives a loss report for events that were never seen (lost in
// the kernel or a queue on the way to lineage) the time range it covers:
// since the previous report of the same loss, or since the first event.
func (s *Stage) lossWindow(ev *event.Event) {
	l := ev.Loss
	if !l.From.IsZero() {
		return
	}
	k := lossKey{l.Where, l.Of}
	from, ok := s.lossAt[k]
	if !ok {
		from = s.first
	}
	l.From, l.To = from, ev.Time
	s.lossAt[k] = ev.Time
}

// SetRedaction puts a new redaction in force from the next event on (a
// SIGHUP reload). A configuration that does not compile changes nothing;
// the error names the pattern. Safe for concurrent use with Process.
func (s *Stage) SetRedaction(cfg redact.Config) error {
	r, err := redact.New(cfg)
	if err != nil {
		return fmt.Errorf("redact.patterns: %w", err)
	}
	s.redactor.Store(r)
	return nil
}
