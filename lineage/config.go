package lineage

import (
	"fmt"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
)

// Config bounds and shapes the engine. Zero values take the defaults noted.
// It is also the lineage section of lineaged's configuration: the
// mapstructure tags are the keys, and fields tagged "-" are set by the
// program (Scope and Humans from their own top-level keys), not configured.
type Config struct {
	// Scope is ScopeAgents (default: only agent-session members are
	// reported) or ScopeAll (every process).
	Scope string `mapstructure:"-"`
	// EmitFork emits process.fork events (optional in the contract).
	EmitFork bool `mapstructure:"-"`
	// MaxProcesses bounds the process table (live and exited images).
	// Default 65536.
	MaxProcesses int `mapstructure:"max_processes"`
	// ExitGrace keeps an exited image so late events still find it,
	// measured on the kernel's boot clock. Default 30s.
	ExitGrace time.Duration `mapstructure:"exit_grace"`
	// MaxPending bounds the events waiting for a parent. Default 4096.
	MaxPending int `mapstructure:"max_pending"`
	// PendingTimeout is how long (kernel time, or wall time when the
	// stream is quiet) an event waits for its parent before it is emitted
	// with what is known, marked partial. Default 500ms.
	PendingTimeout time.Duration `mapstructure:"-"`
	// EnrichWait bounds the wait for hashes and agent resolution before an
	// event is emitted. Default 2s.
	EnrichWait time.Duration `mapstructure:"enrich_wait"`
	// MaxAncestry bounds the ancestry list (deeper chains are cut and
	// marked). Default 256.
	MaxAncestry int `mapstructure:"-"`
	// Humans maps a login user name (or, without a login uid, the user)
	// to the person behind it.
	Humans map[string]event.Human `mapstructure:"-"`
	// AgentReleases are the known agent releases a session root's binary
	// is verified against (docs/agents.md, "Agent identity"); nil knows
	// none, so every agent is agent-unverified.
	AgentReleases *agent.Releases `mapstructure:"-"`
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	switch out.Scope {
	case "":
		out.Scope = ScopeAgents
	case ScopeAgents, ScopeAll:
	default:
		return out, fmt.Errorf("lineage: config: scope %q is not %q or %q", out.Scope, ScopeAgents, ScopeAll)
	}
	def := func(v *int, d int, name string) error {
		if *v == 0 {
			*v = d
		}
		if *v < 0 {
			return fmt.Errorf("lineage: config: %s %d is negative", name, *v)
		}
		return nil
	}
	defD := func(v *time.Duration, d time.Duration, name string) error {
		if *v == 0 {
			*v = d
		}
		if *v < 0 {
			return fmt.Errorf("lineage: config: %s %v is negative", name, *v)
		}
		return nil
	}
	if err := def(&out.MaxProcesses, 65536, "max processes"); err != nil {
		return out, err
	}
	if out.MaxProcesses < 16 {
		return out, fmt.Errorf("lineage: config: max processes %d is below the minimum of 16", out.MaxProcesses)
	}
	if err := def(&out.MaxPending, 4096, "max pending"); err != nil {
		return out, err
	}
	if err := def(&out.MaxAncestry, 256, "max ancestry"); err != nil {
		return out, err
	}
	if err := defD(&out.ExitGrace, 30*time.Second, "exit grace"); err != nil {
		return out, err
	}
	if err := defD(&out.PendingTimeout, 500*time.Millisecond, "pending timeout"); err != nil {
		return out, err
	}
	if err := defD(&out.EnrichWait, 2*time.Second, "enrich wait"); err != nil {
		return out, err
	}
	return out, nil
}

// Scopes, spelled as the --scope flag and the scope config key spell them.
const (
	// ScopeAgents reports only members of agent sessions (the default).
	ScopeAgents = "agents"
	// ScopeAll reports every process.
	ScopeAll = "all"
)
