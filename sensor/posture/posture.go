// Package posture samples the device's security posture: whether the machine
// an agent runs on is compliant at the moment of each event. A Sampler runs a
// set of checks (disk encryption, Secure Boot, kernel lockdown and hardening
// sysctls, sshd password logins, automatic updates and their freshness,
// inbound firewall, a MAC LSM, endpoint protection, the sensor's own
// programs, listeners of agent sessions) every interval, keeps the latest
// Sample behind an atomic pointer for the event hot path, and reports each
// sample and each change of compliance. The required subset of the checks
// decides compliance.
//
// It is a peer source of facts beside the kernel sensor, with its own types:
// it knows nothing of the enriched event, into which lineage maps its
// samples.
//
// Checks read files under a configurable root ("/" live, a fake tree in
// tests) and never shell out; process and socket facts come through gopsutil
// pointed at the same root; the firewall check, whose facts live only in the
// kernel, asks the kernel over netlink and sockets. What only another part of
// the sensor knows (its attached programs, session membership) is handed in
// as a function, so this package imports nothing of the project.
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

// Default thresholds of the os_updates_fresh check.
const (
	DefaultMaxIndexAge   = 7 * 24 * time.Hour
	DefaultMaxUpgradeAge = 30 * 24 * time.Hour
)

// DefaultEndpointProtection is the endpoint_protection check's list when
// Config.EndpointProtection is empty: CrowdStrike Falcon, SentinelOne,
// Wazuh, osquery, the Linux audit daemon and ClamAV.
func DefaultEndpointProtection() []string {
	return []string{"falcon-sensor", "SentinelAgent", "wazuh-agentd", "osqueryd", "auditd", "clamd"}
}

// Config configures a Sampler. It is also the posture section of
// lineaged's configuration: the mapstructure tags are the keys, and fields
// tagged "-" are set by the program, not configured.
type Config struct {
	// Interval between samples; zero means DefaultInterval.
	Interval time.Duration `mapstructure:"interval"`
	// Checks lists the enabled checks by name (see CheckNames); empty
	// means every check whose facts are available: all of them except
	// sensor_attached without Attached and no_agent_listener without
	// InSession.
	Checks []string `mapstructure:"checks"`
	// Required lists the enabled checks that decide compliance; empty
	// means all enabled checks. A required check must be enabled.
	Required []string `mapstructure:"required"`
	// Root is the directory host files are read from; empty means "/".
	Root string `mapstructure:"root"`
	// EndpointProtection lists the executables of which one must run for
	// endpoint_protection to pass: a name matches an executable's base
	// name, an absolute path the whole path. Empty means
	// DefaultEndpointProtection.
	EndpointProtection []string `mapstructure:"endpoint_protection"`
	// Updates holds the os_updates_fresh thresholds.
	Updates UpdatesConfig `mapstructure:"updates"`
	// Attached reports the sensor's own BPF programs: want is every
	// program the sensor attached, have those still attached according to
	// the kernel's link list. Nil leaves sensor_attached out of the
	// default set (named explicitly, it fails with "cannot determine").
	Attached func() (want, have []string, err error) `mapstructure:"-"`
	// SelfCheck is what the sensor's self-check last found wrong with
	// it (programs found detached or not firing), empty when sound. It
	// stays set from the finding until a later self-check finds the
	// repair holding. Non-empty fails sensor_attached. Nil: not asked.
	SelfCheck func() string `mapstructure:"-"`
	// InSession reports whether a process belongs to an agent session.
	// Nil leaves no_agent_listener out of the default set (named
	// explicitly, it fails with "cannot determine").
	InSession func(pid int32) bool `mapstructure:"-"`
	// ManagedSettings is Claude Code's managed settings file agent_hooks
	// reads (under Root); empty means DefaultManagedSettings. With Checks
	// empty, agent_hooks runs only when the file exists at start: a host
	// that never installed the hook is not non-compliant for it, one that
	// did is, once the hook is gone. Name it in checks to require it.
	ManagedSettings string `mapstructure:"managed_settings"`
}

// UpdatesConfig bounds the age of the package manager's last index update
// and last upgrade (os_updates_fresh).
type UpdatesConfig struct {
	// MaxIndexAge: zero means DefaultMaxIndexAge.
	MaxIndexAge time.Duration `mapstructure:"max_index_age"`
	// MaxUpgradeAge: zero means DefaultMaxUpgradeAge.
	MaxUpgradeAge time.Duration `mapstructure:"max_upgrade_age"`
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
	if c.ManagedSettings == "" {
		c.ManagedSettings = DefaultManagedSettings
	}
	if !filepath.IsAbs(c.ManagedSettings) {
		return fmt.Errorf("posture.managed_settings: %q is not an absolute path", c.ManagedSettings)
	}
	if !filepath.IsAbs(c.Root) {
		return fmt.Errorf("posture.root: %q is not an absolute path", c.Root)
	}
	if st, err := os.Stat(c.Root); err != nil {
		return fmt.Errorf("posture.root: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("posture.root: %q is not a directory", c.Root)
	}
	if err := checkNames("posture.checks", c.Checks); err != nil {
		return err
	}
	if err := checkNames("posture.required", c.Required); err != nil {
		return err
	}
	if len(c.Checks) > 0 {
		for _, n := range c.Required {
			if !slices.Contains(c.Checks, n) {
				return fmt.Errorf("posture.required: check %q is not enabled in posture.checks", n)
			}
		}
	}
	if len(c.EndpointProtection) == 0 {
		c.EndpointProtection = DefaultEndpointProtection()
	}
	for _, e := range c.EndpointProtection {
		if e == "" || strings.ContainsRune(e, '/') && !filepath.IsAbs(e) {
			return fmt.Errorf("posture.endpoint_protection: %q is neither an executable name nor an absolute path", e)
		}
	}
	if c.Updates.MaxIndexAge == 0 {
		c.Updates.MaxIndexAge = DefaultMaxIndexAge
	}
	if c.Updates.MaxIndexAge < 0 {
		return fmt.Errorf("posture.updates.max_index_age: %s is negative", c.Updates.MaxIndexAge)
	}
	if c.Updates.MaxUpgradeAge == 0 {
		c.Updates.MaxUpgradeAge = DefaultMaxUpgradeAge
	}
	if c.Updates.MaxUpgradeAge < 0 {
		return fmt.Errorf("posture.updates.max_upgrade_age: %s is negative", c.Updates.MaxUpgradeAge)
	}
	return nil
}

// checkNames refuses unknown and repeated check names, naming the key.
func checkNames(key string, names []string) error {
	known := CheckNames()
	seen := map[string]bool{}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return fmt.Errorf("%s: unknown check %q (known: %s)", key, n, strings.Join(known, ", "))
		}
		if seen[n] {
			return fmt.Errorf("%s: check %q listed twice", key, n)
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
	// Compliant is true when every required check passed.
	Compliant bool
	// Failed lists the failed required checks' names, sorted. A check
	// that is enabled but not required shows its failure in Checks only.
	Failed []string
	// Checks holds every enabled check's result by name.
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
	// set is the enabled checks and the required ones, swapped whole by
	// SetChecks.
	set    atomic.Pointer[checkSet]
	clock  func() time.Time
	log    *slog.Logger
	latest atomic.Pointer[Sample]
	// newTicker makes the Run loop's tick source; tests drive it by hand.
	newTicker func(time.Duration) (<-chan time.Time, func())
	// poke asks Run for a sample now (Resample).
	poke chan struct{}
}

// Resample asks Run to take a sample now rather than at its next tick:
// a fact a check reads changed (the sensor's self-check found it tampered
// with, or repaired). It never blocks; requests made while one is pending
// are one.
func (s *Sampler) Resample() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// New validates cfg and returns a Sampler with the enabled built-in checks.
// clock stamps samples and ages update logs (nil means time.Now); log
// receives check failures and posture changes.
func New(cfg Config, clock func() time.Time, log *slog.Logger) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = time.Now
	}
	return newSampler(cfg, enabledChecks(cfg, clock), clock, log), nil
}

// enabledChecks are the built-in checks cfg enables, in run order.
func enabledChecks(cfg Config, clock func() time.Time) []Check {
	var checks []Check
	for _, c := range builtin(cfg, clock) {
		if enabled(cfg, c.Name()) {
			checks = append(checks, c)
		}
	}
	return checks
}

// enabled: a check named in Checks or Required runs; with Checks empty,
// every check runs whose facts were handed in.
func enabled(cfg Config, name string) bool {
	if slices.Contains(cfg.Checks, name) || slices.Contains(cfg.Required, name) {
		return true
	}
	if len(cfg.Checks) > 0 {
		return false
	}
	switch name {
	case CheckSensorAttached:
		return cfg.Attached != nil
	case CheckNoAgentListener:
		return cfg.InSession != nil
	case CheckAgentHooks:
		p := cfg.ManagedSettings
		if p == "" {
			p = DefaultManagedSettings
		}
		_, err := os.Stat(Root(cfg.Root).Path(p))
		return err == nil
	}
	return true
}

// newSampler builds a Sampler over an arbitrary check set (tests use fakes).
func newSampler(cfg Config, checks []Check, clock func() time.Time, log *slog.Logger) *Sampler {
	if clock == nil {
		clock = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	required := requiredSet(cfg)
	s := &Sampler{
		interval: cfg.Interval,
		root:     Root(cfg.Root),
		clock:    clock,
		log:      log.With("component", "posture"),
		newTicker: func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		},
		poke: make(chan struct{}, 1),
	}
	s.set.Store(&checkSet{checks: checks, required: required})
	return s
}

// requiredSet is cfg.Required as a set; nil when every check decides.
func requiredSet(cfg Config) map[string]bool {
	if len(cfg.Required) == 0 {
		return nil
	}
	required := make(map[string]bool, len(cfg.Required))
	for _, n := range cfg.Required {
		required[n] = true
	}
	return required
}

// checkSet is the checks a Sampler runs, and those that decide
// compliance (nil: every one).
type checkSet struct {
	checks   []Check
	required map[string]bool
}

func (cs *checkSet) isRequired(name string) bool {
	return cs.required == nil || cs.required[name]
}

// SetChecks puts cfg's checks and required list in force from the next
// sample on (a SIGHUP reload); the interval and root stay. A cfg that does
// not validate changes nothing. Safe for concurrent use with Run.
func (s *Sampler) SetChecks(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.set.Store(&checkSet{checks: enabledChecks(cfg, s.clock), required: requiredSet(cfg)})
	return nil
}

// Checks returns the names of the enabled checks, in run order.
func (s *Sampler) Checks() []string {
	cs := s.set.Load()
	names := make([]string, len(cs.checks))
	for i, c := range cs.checks {
		names[i] = c.Name()
	}
	return names
}

// Required returns the names of the checks that decide compliance, in run
// order.
func (s *Sampler) Required() []string {
	var names []string
	cs := s.set.Load()
	for _, c := range cs.checks {
		if cs.isRequired(c.Name()) {
			names = append(names, c.Name())
		}
	}
	return names
}

// Sample runs every enabled check now, stores the result as the latest
// sample and returns it. Compliant is true when every required check
// passed; Failed lists the failed required checks' names, sorted. The returned value shares its
// Failed slice and Checks map with what Latest returns: do not modify them.
func (s *Sampler) Sample(ctx context.Context) Sample {
	return *s.sample(ctx)
}

func (s *Sampler) sample(ctx context.Context) *Sample {
	cs := s.set.Load()
	p := &Sample{
		SampledAt: s.clock().UTC(),
		Compliant: true,
		Checks:    make(map[string]Result, len(cs.checks)),
	}
	for _, c := range cs.checks {
		r := s.runCheck(ctx, c)
		p.Checks[c.Name()] = r
		if !r.OK && cs.isRequired(c.Name()) {
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
		case <-s.poke:
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
		case <-s.poke:
		}
	}
}

// changed reports a change of compliance or of the failed set; details alone
// (a counter in a firewall detail) do not make a change.
func changed(a, b *Sample) bool {
	return a.Compliant != b.Compliant || !slices.Equal(a.Failed, b.Failed)
}
