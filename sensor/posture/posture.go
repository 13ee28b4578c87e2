// Package posture samples the device's security posture: whether the machine
// an agent runs on is compliant at the moment of each event. A Sampler runs a
// set of checks (disk encryption, Secure Boot, kernel lockdown and hardening
// sysctls, sshd password logins, automatic updates, inbound firewall) every
// interval, keeps the latest Sample behind an atomic pointer for the event
// hot path, and reports each sample and each change of compliance.
//
// It is a peer source of facts beside the kernel sensor, with its own types:
// it knows nothing of the enriched event, into which lineage maps its
// samples.
//
// Checks read files under a configurable root ("/" live, a fake tree in
// tests) and never shell out; the firewall check, whose facts live only in
// the kernel, asks the kernel over netlink and sockets.
package posture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultInterval is the sampling interval when Config.Interval is zero.
const DefaultInterval = time.Minute

// MinInterval is the shortest accepted interval: checks read a few dozen
// files and dump the firewall, which is cheap but not free.
const MinInterval = 100 * time.Millisecond

// checkTimeout bounds one check; only the firewall check can block (on
// netlink), and it honours the deadline.
const checkTimeout = 5 * time.Second

// Config configures a Sampler.
type Config struct {
	// Interval between samples; zero means DefaultInterval.
	Interval time.Duration
	// Checks lists the enabled checks by name (see CheckNames); empty
	// means all of them.
	Checks []string
	// Root is the directory host files are read from; empty means "/".
	Root string
}

// Validate checks the configuration and fills defaults. Errors name the
// offending field and value.
func (c *Config) Validate() error {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < MinInterval {
		return fmt.Errorf("posture.interval: %s is shorter than the minimum %s", c.Interval, MinInterval)
	}
	if c.Root == "" {
		c.Root = "/"
	}
	if !filepath.IsAbs(c.Root) {
		return fmt.Errorf("posture.root: %q is not an absolute path", c.Root)
	}
	if st, err := os.Stat(c.Root); err != nil {
		return fmt.Errorf("posture.root: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("posture.root: %q is not a directory", c.Root)
	}
	known := CheckNames()
	seen := map[string]bool{}
	for _, n := range c.Checks {
		if !slices.Contains(known, n) {
			return fmt.Errorf("posture.checks: unknown check %q (known: %s)", n, strings.Join(known, ", "))
		}
		if seen[n] {
			return fmt.Errorf("posture.checks: check %q listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

// Result is what one check saw.
type Result struct {
	// OK is true when the check passed.
	OK bool
	// Detail says what the check saw, pass or fail ("ptrace_scope=1").
	Detail string
}

// Sample is one run of the enabled checks.
type Sample struct {
	// SampledAt is when the run started, in UTC.
	SampledAt time.Time
	// Compliant is true when every check passed.
	Compliant bool
	// Failed lists the failed checks' names, sorted.
	Failed []string
	// Checks holds every check's result by name.
	Checks map[string]Result
}

// Report says why Run hands a sample to its emit function.
type Report uint8

// Reports.
const (
	// Sampled: a periodic sample.
	Sampled Report = iota
	// Changed: the sample just reported as Sampled differs from the one
	// before in compliance or in the set of failed checks.
	Changed
)

// String names the report for logs and test failures.
func (r Report) String() string {
	if r == Changed {
		return "change"
	}
	return "sample"
}

// Sampler runs the posture checks and holds the latest sample.
type Sampler struct {
	interval time.Duration
	root     Root
	checks   []Check
	clock    func() time.Time
	log      *slog.Logger
	latest   atomic.Pointer[Sample]
	// newTicker makes the Run loop's tick source; tests drive it by hand.
	newTicker func(time.Duration) (<-chan time.Time, func())
}

// New validates cfg and returns a Sampler with the enabled built-in checks.
// clock stamps samples (nil means time.Now); log receives check failures
// and posture changes.
func New(cfg Config, clock func() time.Time, log *slog.Logger) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var checks []Check
	for _, c := range builtin() {
		if len(cfg.Checks) == 0 || slices.Contains(cfg.Checks, c.Name()) {
			checks = append(checks, c)
		}
	}
	return newSampler(cfg, checks, clock, log), nil
}

// newSampler builds a Sampler over an arbitrary check set (tests use fakes).
func newSampler(cfg Config, checks []Check, clock func() time.Time, log *slog.Logger) *Sampler {
	if clock == nil {
		clock = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sampler{
		interval: cfg.Interval,
		root:     Root(cfg.Root),
		checks:   checks,
		clock:    clock,
		log:      log.With("component", "posture"),
		newTicker: func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		},
	}
}

// Checks returns the names of the enabled checks, in run order.
func (s *Sampler) Checks() []string {
	names := make([]string, len(s.checks))
	for i, c := range s.checks {
		names[i] = c.Name()
	}
	return names
}

// Sample runs every enabled check now, stores the result as the latest
// sample and returns it. Compliant is true when every check passed; Failed
// lists the failed checks' names, sorted. The returned value shares its
// Failed slice and Checks map with what Latest returns: do not modify them.
func (s *Sampler) Sample(ctx context.Context) Sample {
	return *s.sample(ctx)
}

func (s *Sampler) sample(ctx context.Context) *Sample {
	p := &Sample{
		SampledAt: s.clock().UTC(),
		Compliant: true,
		Checks:    make(map[string]Result, len(s.checks)),
	}
	for _, c := range s.checks {
		r := s.runCheck(ctx, c)
		p.Checks[c.Name()] = r
		if !r.OK {
			p.Compliant = false
			p.Failed = append(p.Failed, c.Name())
		}
	}
	sort.Strings(p.Failed)
	s.latest.Store(p)
	return p
}

// runCheck runs one check with a deadline and turns a panic into a failed
// result, so a bug in one check cannot take the sensor down or hide the
// other checks.
func (s *Sampler) runCheck(ctx context.Context, c Check) (r Result) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("posture check panicked", "check", c.Name(), "panic", v)
			r = fail("check failed: panic: %v", v)
		}
	}()
	r = c.Run(ctx, s.root)
	if r.Detail == "" {
		r.Detail = "no detail"
	}
	return r
}

// Latest returns the most recent sample, or nil before the first one. It is
// a single atomic load, safe to call for every event from any goroutine.
// The returned value is shared: callers must not modify it.
func (s *Sampler) Latest() *Sample {
	return s.latest.Load()
}

// Run samples immediately and then every interval until ctx is cancelled;
// when Sample was called before, that sample counts as Run's first and Run
// waits for the next tick.
// Each sample is emitted as Sampled; when the compliance or the set of
// failed checks differs from the previous sample, the same sample is
// emitted again as Changed. The first sample has no predecessor and is not
// a change. emit is called from Run's goroutine and receives the shared
// sample (do not modify it). Run returns nil once ctx is cancelled.
func (s *Sampler) Run(ctx context.Context, emit func(kind Report, p *Sample)) error {
	if emit == nil {
		return errors.New("posture: Run needs an emit function")
	}
	tick, stop := s.newTicker(s.interval)
	defer stop()
	// A sample already taken (the caller emitted it at start) is the
	// first one: continue from it at the next tick.
	prev := s.Latest()
	if prev != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
	}
	for {
		p := s.sample(ctx)
		if ctx.Err() != nil {
			return nil
		}
		emit(Sampled, p)
		if prev != nil && changed(prev, p) {
			s.log.Info("posture changed", "compliant", p.Compliant, "failed", p.Failed, "previous_failed", prev.Failed)
			emit(Changed, p)
		}
		prev = p
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
	}
}

// changed reports a change of compliance or of the failed set; details alone
// (a counter in a firewall detail) do not make a change.
func changed(a, b *Sample) bool {
	return a.Compliant != b.Compliant || !slices.Equal(a.Failed, b.Failed)
}
