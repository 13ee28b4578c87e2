// Package policy is the stage between enrichment and the sinks (DESIGN.md:
// lineage → policy → encoder → sinks). It owns the rules and what they
// produce: the deny-exec list (validated here and turned into the keys the
// kernel enforces), the policy.alert and policy.action events, the output
// transforms (redaction, in policy/redact) and, last of all, the one
// Sequencer that numbers every event before it is written.
package policy

import (
	"fmt"

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
}

// Stage applies the policy to the enriched events. It is not safe for
// concurrent use: the pipeline runs it on one goroutine.
type Stage struct {
	denyExec []string
	redactor *redact.Redactor
	out      []*event.Event
}

// New validates cfg and builds the stage. Errors name the setting.
func New(cfg Config) (*Stage, error) {
	if err := ValidateDenyExec(cfg.DenyExec); err != nil {
		return nil, fmt.Errorf("policy.deny_exec: %w", err)
	}
	r, err := redact.New(cfg.Redact)
	if err != nil {
		return nil, fmt.Errorf("redact.patterns: %w", err)
	}
	return &Stage{denyExec: append([]string(nil), cfg.DenyExec...), redactor: r}, nil
}

// Process runs the rules over ev and returns the events to write in its
// place, in order: ev itself and whatever the rules made of it, each through
// the output transforms. None is numbered yet (Sequencer.StampAll). The
// slice is reused by the next call.
func (s *Stage) Process(ev *event.Event) []*event.Event {
	out := s.out[:0]
	if ev.Deny != nil {
		out = s.deny(out, ev)
	} else {
		out = append(out, ev)
	}
	for _, o := range out {
		s.redactor.Event(o)
	}
	s.out = out
	return out
}
