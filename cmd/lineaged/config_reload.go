package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lineaged/lineaged/lineage/binid"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy/redact"
	"github.com/lineaged/lineaged/sensor/posture"
)

// configReloads counts SIGHUP reloads of the configuration: ok when every
// reloadable change is in force, failed when the file (or a rule file, or
// a redaction pattern) was refused and nothing changed.
type configReloads struct {
	ok, failed atomic.Uint64
}

// registerConfigReloads exposes the reload counts as
// lineaged_config_reloads_total{result="ok"|"failed"}.
func registerConfigReloads(reg prometheus.Registerer, c *configReloads) error {
	for _, r := range []struct {
		result string
		n      *atomic.Uint64
	}{{"ok", &c.ok}, {"failed", &c.failed}} {
		n := r.n
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "lineaged_config_reloads_total",
			Help:        "SIGHUP reloads of the configuration, by result; a failed one changed nothing.",
			ConstLabels: prometheus.Labels{"result": r.result},
		}, func() float64 { return float64(n.Load()) })); err != nil {
			return err
		}
	}
	return nil
}

// reloadKeys are the keys SIGHUP puts in force without a restart: the rule
// file (re-read on every SIGHUP, changed or not), the redaction, the
// humans, the trust keys and the posture checks (not their interval or
// root). A change to any other key is logged and waits for a restart.
var reloadKeys = []string{"policy.rules", "redact", "humans", "trust",
	"posture.checks", "posture.required", "posture.endpoint_protection", "posture.updates", "posture.managed_settings"}

func reloadable(key string) bool {
	for _, k := range reloadKeys {
		if key == k || strings.HasPrefix(key, k+".") {
			return true
		}
	}
	return false
}

// changedKeys lists the keys whose values differ between a and b.
func changedKeys(a, b *Config) []string {
	ra, rb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	var out []string
	for _, cf := range configFields() {
		if !reflect.DeepEqual(fieldValue(ra, cf.Key).Interface(), fieldValue(rb, cf.Key).Interface()) {
			out = append(out, cf.Key)
		}
	}
	return out
}

// reloadConfig reads the configuration again and puts its reloadable part
// in force: all of it or, when anything is refused, none of it. It logs
// the outcome and counts it.
func (p *pipeline) reloadConfig() {
	next, err := p.cfg.load()
	if err != nil {
		p.creloads.failed.Add(1)
		p.log.Error("configuration not reloaded: the running configuration stays in force", "err", err)
		return
	}
	changed := changedKeys(p.cfg, next)
	var restart []string
	for _, k := range changed {
		if !reloadable(k) {
			restart = append(restart, k)
		}
	}
	// Build everything first; apply only when all of it is good.
	rules, err := loadRules(next, p.log.With("component", "policy"))
	if err != nil {
		p.creloads.failed.Add(1)
		p.reloads.failed.Add(1)
		in := 0
		if cur := p.policy.Rules(); cur != nil {
			in = cur.Len()
		}
		p.log.Error("rules not reloaded: the previous rules stay in force", "rules", next.Policy.Rules, "in_force", in, "err", err)
		return
	}
	rc := p.cfg.Redact
	if p.agents != nil {
		rc.IsAgent = p.agents.IsAgent
	}
	rc.Patterns, rc.KeepPrompt = next.Redact.Patterns, next.Redact.KeepPrompt
	if _, err := redact.New(rc); err != nil {
		p.creloads.failed.Add(1)
		p.log.Error("configuration not reloaded: the running configuration stays in force", "err", err)
		return
	}
	trust, err := loadTrust(next, changed)
	if err != nil {
		p.creloads.failed.Add(1)
		p.log.Error("configuration not reloaded: the running configuration stays in force", "err", err)
		return
	}
	pc, postureChanged := p.postureConfig(next, changed)
	p.policy.SetRules(rules)
	p.reloads.ok.Add(1)
	if slices.ContainsFunc(changed, func(k string) bool { return strings.HasPrefix(k, "redact.") }) {
		_ = p.policy.SetRedaction(rc) // built above
		p.cfg.Redact.Patterns, p.cfg.Redact.KeepPrompt = rc.Patterns, rc.KeepPrompt
	}
	if slices.Contains(changed, "humans") && p.engine != nil {
		p.engine.SetHumans(humansOf(next))
		p.cfg.Humans = next.Humans
	}
	if trust != nil && p.inspect != nil {
		p.inspect.SetTrustPolicy(trust)
		p.cfg.Trust.TrustedKeys, p.cfg.Trust.SignatureDir = next.Trust.TrustedKeys, next.Trust.SignatureDir
	}
	if postureChanged {
		if err := p.posture.SetChecks(pc); err != nil { // validated with next
			p.log.Error("posture checks not reloaded", "err", err)
		} else {
			root, interval := p.cfg.Posture.Root, p.cfg.Posture.Interval
			p.cfg.Posture = next.Posture
			p.cfg.Posture.Root, p.cfg.Posture.Interval = root, interval
		}
	}
	p.cfg.Policy.Rules = next.Policy.Rules
	p.creloads.ok.Add(1)
	n := 0
	if rules != nil {
		n = rules.Len()
	}
	p.log.Info("rules reloaded", "rules", next.Policy.Rules, "count", n)
	applied := slices.DeleteFunc(slices.Clone(changed), func(k string) bool { return !reloadable(k) })
	p.log.Info("configuration reloaded", "applied", applied)
	if len(restart) > 0 {
		p.log.Warn("configuration changes wait for a restart", "keys", restart)
	}
}

// humansOf is the humans section as lineage takes it.
func humansOf(cfg *Config) map[string]event.Human {
	m := make(map[string]event.Human, len(cfg.Humans))
	for user, h := range cfg.Humans {
		m[user] = event.Human{Name: h.Name, Email: h.Email}
	}
	return m
}

// loadTrust loads next's trust keys when they changed (nil when not). At
// start a key that does not load only makes verdicts error; on a reload it
// refuses the reload, so the keys in force stay whole.
func loadTrust(next *Config, changed []string) (*binid.TrustPolicy, error) {
	if !slices.ContainsFunc(changed, func(k string) bool { return strings.HasPrefix(k, "trust.") }) {
		return nil, nil
	}
	pol, err := binid.LoadTrustPolicy(next.Trust.TrustedKeys, next.Trust.SignatureDir)
	if dir := next.Trust.SignatureDir; dir != "" {
		if st, serr := os.Stat(dir); serr != nil || !st.IsDir() {
			err = errors.Join(err, fmt.Errorf("trust.signature_dir: %s is not a readable directory", dir))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("trust.keys: %w", err)
	}
	return pol, nil
}

// postureConfig is the sampler's configuration from next, with the root
// and interval in force (those wait for a restart) and the facts only the
// loaded sensor has; false when no reloadable posture key changed.
func (p *pipeline) postureConfig(next *Config, changed []string) (posture.Config, bool) {
	pc := next.Posture
	if p.posture == nil || !slices.ContainsFunc(changed, func(k string) bool { return strings.HasPrefix(k, "posture.") && reloadable(k) }) {
		return pc, false
	}
	pc.Root, pc.Interval = p.cfg.Posture.Root, p.cfg.Posture.Interval
	if p.sensor != nil {
		pc.Attached = p.sensor.AttachedPrograms
		pc.InSession = p.sensor.InSession
		pc.SelfCheck = p.sensor.SelfCheckProblem
	}
	return pc, true
}
