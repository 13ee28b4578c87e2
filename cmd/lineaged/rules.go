package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
)

const rulesUsage = `Usage:
  lineaged rules check RULES
      validate a rule file or directory: exit 0, or 1 with every error
  lineaged rules test RULES EVENTS.jsonl [--expect EXPECTED.jsonl]
      run the rules over lineaged's own output (lineaged/v2 or v1 JSON lines) and
      print one JSON line per alert that would have fired; with --expect,
      exit 1 on any difference from EXPECTED.jsonl, printing the difference

RULES is a YAML file or a directory of *.yaml and *.yml files (docs/rules.md).
`

// cmdRules is the detection engineer's tooling: rules check and rules test.
func cmdRules(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rulesUsage)
		return &exitError{exitUsage, errors.New("rules: want check or test")}
	}
	switch args[0] {
	case "check":
		return rulesCheck(args[1:], stdout)
	case "test":
		return rulesTest(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, rulesUsage)
		return nil
	}
	fmt.Fprint(stderr, rulesUsage)
	return &exitError{exitUsage, fmt.Errorf("rules: unknown subcommand %q", args[0])}
}

// ruleErrors prints every error of a failed load on its own line, after a
// count; the one-line error of realMain then says what failed.
func ruleErrors(err error) error {
	return &exitError{exitRuntime, fmt.Errorf("rules refused:\n%w", err)}
}

func rulesCheck(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return &exitError{exitUsage, errors.New("rules check takes one file or directory")}
	}
	rs, err := policy.LoadRules(args[0])
	if err != nil {
		return ruleErrors(err)
	}
	fmt.Fprintf(stdout, "%s: %d rules OK (%s)\n", args[0], rs.Len(), strings.Join(rs.Sources, ", "))
	return nil
}

// firing is one line of rules test output: an alert that would have fired.
type firing struct {
	Rule           string `json:"rule"`
	TriggerEventID string `json:"trigger_event_id"`
	Severity       string `json:"severity"`
}

func rulesTest(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("rules test", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	expect := fs.String("expect", "", "fail unless the alerts are exactly those of this JSON-lines file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	if fs.NArg() != 2 {
		return &exitError{exitUsage, errors.New("rules test takes RULES EVENTS.jsonl [--expect EXPECTED.jsonl]")}
	}
	rs, err := policy.LoadRules(fs.Arg(0))
	if err != nil {
		return ruleErrors(err)
	}
	in, err := os.Open(fs.Arg(1))
	if err != nil {
		return err
	}
	defer in.Close()
	got, err := testRules(rs, in, fs.Arg(1))
	if err != nil {
		return err
	}
	lines := make([]string, len(got))
	for i, f := range got {
		b, _ := json.Marshal(f)
		lines[i] = string(b)
		fmt.Fprintln(stdout, lines[i])
	}
	if *expect == "" {
		return nil
	}
	want, err := readFirings(*expect)
	if err != nil {
		return err
	}
	if d := diffFirings(lines, want); d != "" {
		fmt.Fprint(stderr, d)
		return &exitError{exitRuntime, fmt.Errorf("rules test: alerts differ from %s", *expect)}
	}
	return nil
}

// testRules runs rs through the policy stage, as the sensor would, over
// the events in r (lineaged/v2 or v1 JSON lines; name names it in errors), and
// returns the alerts the rules raised, in order. Policy events already in
// the input (alerts and actions of the run that wrote it) are not judged.
func testRules(rs *policy.Rules, r io.Reader, name string) ([]firing, error) {
	st, err := policy.New(policy.Config{Rules: rs})
	if err != nil {
		return nil, err
	}
	var out []firing
	err = decodeNative(r, func(line int, ev *event.Event) error {
		if ev.EventID == "" {
			return fmt.Errorf("%s:%d: event has no event_id", name, line)
		}
		for _, o := range st.Process(ev) {
			if a := o.Alert; o.Kind == event.KindPolicyAlert && a != nil && a.Trigger != nil {
				out = append(out, firing{Rule: a.Rule, TriggerEventID: a.Trigger.EventID, Severity: a.Severity})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// decodeNative reads lineaged/v2 or v1 JSON lines (the native encoder's
// output) back into events and hands each to fn with its line number. The
// events hold what the output kept: in v2, compact ancestors and posture
// checks only on posture events (docs/rules.md, "Testing rules"). The
// lineage/event structs carry the contract's JSON names, so encoding/json
// reads them back; the encoder's own bookkeeping (argc, invalid_utf8) is
// ignored, and a byte that was not valid UTF-8 (written as \udcXX) reads
// back as U+FFFD. Blank lines are skipped; any other line that is not an
// event is an error naming its line.
func decodeNative(r io.Reader, fn func(line int, ev *event.Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		ev := new(event.Event)
		if err := json.Unmarshal(b, ev); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if ev.Schema != event.Schema && ev.Schema != event.SchemaV1 {
			return fmt.Errorf("line %d: schema %q, want %q or %q (rules test reads the native format)", n, ev.Schema, event.Schema, event.SchemaV1)
		}
		if err := fn(n, ev); err != nil {
			return err
		}
	}
	return sc.Err()
}

// readFirings reads an --expect file, normalising each line through the
// firing type so field order and spacing do not matter.
func readFirings(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		var fr firing
		if err := dec.Decode(&fr); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		b, _ := json.Marshal(fr)
		out = append(out, string(b))
	}
	return out, sc.Err()
}

// diffFirings lists, in order, the expected alerts that did not fire ("-")
// and the alerts that fired unexpectedly ("+"); "" when they are the same
// sequence.
func diffFirings(got, want []string) string {
	if slices.Equal(got, want) {
		return ""
	}
	// Longest common subsequence, so one missing alert shows as one line.
	lcs := make([][]int, len(got)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(want)+1)
	}
	for i := len(got) - 1; i >= 0; i-- {
		for j := len(want) - 1; j >= 0; j-- {
			if got[i] == want[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < len(got) || j < len(want) {
		switch {
		case i < len(got) && j < len(want) && got[i] == want[j]:
			i, j = i+1, j+1
		case j < len(want) && (i == len(got) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&b, "- %s\n", want[j])
			j++
		default:
			fmt.Fprintf(&b, "+ %s\n", got[i])
			i++
		}
	}
	return b.String()
}

// ruleReloads counts SIGHUP reloads of the rules.
type ruleReloads struct {
	ok, failed atomic.Uint64
}

// reloadRules reads policy.rules again and puts the new set in force. A
// set that does not load leaves the old one in force; the error says why.
func (p *pipeline) reloadRules() error {
	path := p.cfg.Policy.Rules
	if path == "" {
		return errors.New("no policy.rules configured: nothing to reload")
	}
	rs, err := policy.LoadRules(path)
	if err != nil {
		p.reloads.failed.Add(1)
		return err
	}
	p.policy.SetRules(rs)
	p.reloads.ok.Add(1)
	return nil
}

// reloadOnHUP reloads the configuration and the rules on each SIGHUP
// until ctx ends, logging the outcome: on failure, every error and that
// the old ones stay.
func (p *pipeline) reloadOnHUP(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if p.cfg.load != nil {
				p.reloadConfig() // the whole file (config_reload.go)
				continue
			}
			if err := p.reloadRules(); err != nil {
				p.log.Error("rules not reloaded: the previous rules stay in force", "rules", p.cfg.Policy.Rules,
					"in_force", p.policy.Rules().Len(), "err", err)
				continue
			}
			p.log.Info("rules reloaded", "rules", p.cfg.Policy.Rules, "count", p.policy.Rules().Len())
			p.noteReload()
		}
	}
}

// DefaultRulesPath is where the packaged rule sets live, the default of
// policy.rules.
const DefaultRulesPath = "/etc/lineaged/rules"

// loadRules loads policy.rules for the start of a run; nil when unset, or
// when it is the default path and nothing is there (a sensor run from a
// build tree). Any other path must exist.
func loadRules(cfg *Config, log *slog.Logger) (*policy.Rules, error) {
	if cfg.Policy.Rules == "" {
		return nil, nil
	}
	if cfg.Policy.Rules == DefaultRulesPath {
		if _, err := os.Stat(DefaultRulesPath); errors.Is(err, fs.ErrNotExist) {
			log.Debug("no rules: the default rules directory does not exist", "rules", DefaultRulesPath)
			return nil, nil
		}
	}
	rs, err := policy.LoadRules(cfg.Policy.Rules)
	if err != nil {
		return nil, &exitError{exitUsage, fmt.Errorf("policy.rules:\n%w", err)}
	}
	log.Info("rules loaded", "rules", cfg.Policy.Rules, "count", rs.Len())
	return rs, nil
}

// ruleCollector exposes the rule counters at scrape time.
type ruleCollector struct {
	p                             *pipeline
	alerts, rules, errs, reloaded *prometheus.Desc
}

func newRuleCollector(p *pipeline) *ruleCollector {
	return &ruleCollector{
		p:        p,
		alerts:   prometheus.NewDesc("lineaged_policy_alerts_total", "policy.alert events raised, by rule.", []string{"rule", "severity"}, nil),
		rules:    prometheus.NewDesc("lineaged_policy_rules", "Rules in force.", nil, nil),
		errs:     prometheus.NewDesc("lineaged_policy_rule_errors_total", "Rule evaluations that failed (the rule did not fire).", nil, nil),
		reloaded: prometheus.NewDesc("lineaged_policy_reloads_total", "Rule reloads on SIGHUP, by result (ok, failed: the previous rules stayed).", []string{"result"}, nil),
	}
}

func (c *ruleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.alerts
	ch <- c.rules
	ch <- c.errs
	ch <- c.reloaded
}

func (c *ruleCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.policy.RuleStats()
	for rule, n := range st.Alerts {
		ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.CounterValue, float64(n), rule, st.Severity[rule])
	}
	ch <- prometheus.MustNewConstMetric(c.rules, prometheus.GaugeValue, float64(st.Rules))
	ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(st.EvalErrors))
	ch <- prometheus.MustNewConstMetric(c.reloaded, prometheus.CounterValue, float64(c.p.reloads.ok.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(c.reloaded, prometheus.CounterValue, float64(c.p.reloads.failed.Load()), "failed")
}
