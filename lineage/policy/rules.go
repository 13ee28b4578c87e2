package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"go.yaml.in/yaml/v3"
)

// Severities a rule can carry, lowest first.
var severities = []string{"info", "low", "medium", "high", "critical"}

// mitrePattern is an ATT&CK technique or sub-technique id.
var mitrePattern = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)

// idPattern is what a rule id may be: it names the rule in alerts, metrics
// and file names, so it stays short and plain.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,127}$`)

// ActionAlert is the action that reports a match as a policy.alert event.
const ActionAlert = "alert"

// actionParams validates the parameters of each known action. An action
// is a name and its parameters; a new action is one more entry here and
// one more case where the stage carries it out.
var actionParams = map[string]func(params map[string]any) error{
	ActionAlert:       noParams,
	ActionKillProcess: noParams,
	ActionKillSession: noParams,
	ActionDenyTool:    denyToolParams,
}

func noParams(params map[string]any) error {
	if len(params) > 0 {
		keys := make([]string, 0, len(params))
		for k := range params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return fmt.Errorf("takes no parameters, got %s", strings.Join(keys, ", "))
	}
	return nil
}

// knownActions lists the action names for error messages.
func knownActions() string {
	names := make([]string, 0, len(actionParams))
	for n := range actionParams {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// RuleFile is the YAML form of a rule file.
type RuleFile struct {
	Rules []RuleSpec `yaml:"rules"`
}

// RuleSpec is one rule as written (docs/rules.md).
type RuleSpec struct {
	ID          string   `yaml:"id"`
	Description string   `yaml:"description"`
	Severity    string   `yaml:"severity"`
	Condition   string   `yaml:"condition"`
	Actions     []Action `yaml:"actions"`
	Mitre       []string `yaml:"mitre"`
	Exceptions  []string `yaml:"exceptions"`
	// Source is the file the rule came from, for errors.
	Source string `yaml:"-"`
}

// Action is one thing a matching rule does: a name and its parameters.
// In YAML it is either the bare name ("alert") or a one-key mapping from
// the name to its parameters ("kill-process: {signal: KILL}").
type Action struct {
	Name   string
	Params map[string]any
}

// UnmarshalYAML reads either form of an action.
func (a *Action) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		a.Name = n.Value
		return nil
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return fmt.Errorf("line %d: an action is one name, or one name mapped to its parameters", n.Line)
		}
		a.Name = n.Content[0].Value
		if v := n.Content[1]; !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
			if err := v.Decode(&a.Params); err != nil {
				return fmt.Errorf("line %d: action %s parameters: %w", n.Line, a.Name, err)
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: an action is a name or a mapping", n.Line)
}

// Rule is one compiled rule.
type Rule struct {
	ID          string
	Description string
	Severity    string
	Mitre       []string
	Actions     []Action
	Source      string
	// Condition is the condition as written.
	Condition string

	cond       cel.Program
	kinds      kindSet // the event kinds cond can match
	exceptions []cel.Program
}

// Rules is a compiled rule set, immutable once built: the stage swaps a
// whole set on reload.
type Rules struct {
	rules   []*Rule
	adapter types.Adapter // the environment's, to turn event parts into CEL values
	// byKind and other index rules by the event kinds they can match
	// (kindsOf), so an event is only judged by the rules that can match it.
	byKind map[string][]*Rule
	other  []*Rule
	// Sources are the files the set was read from.
	Sources []string
}

// Len is the number of rules in the set.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.rules)
}

// List returns the rules in evaluation order (file order, files sorted).
func (r *Rules) List() []*Rule {
	if r == nil {
		return nil
	}
	return slices.Clone(r.rules)
}

// LoadRules reads and compiles the rules at path: one YAML file, or a
// directory whose *.yaml and *.yml files are read in name order. Every
// problem is reported, joined in one error: each names the file, the rule
// id and what is wrong (for a condition, CEL's own message).
func LoadRules(path string) (*Rules, error) {
	files, err := ruleFiles(path)
	if err != nil {
		return nil, err
	}
	var specs []RuleSpec
	var errs []error
	for _, f := range files {
		s, err := readRuleFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		specs = append(specs, s...)
	}
	rs, err := CompileRules(specs)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rs.Sources = files
	return rs, nil
}

func ruleFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var files []string
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if e.Type().IsRegular() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("rules: %s has no *.yaml or *.yml file", path)
	}
	return files, nil
}

// readRuleFile decodes one rule file strictly: an unknown key is an error,
// so a misspelt "exception:" is not silently ignored.
func readRuleFile(path string) ([]RuleSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f RuleFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file has no rules
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := range f.Rules {
		f.Rules[i].Source = path
	}
	return f.Rules, nil
}

// CompileRules validates and compiles specs into a rule set. Every problem
// is reported, joined in one error.
func CompileRules(specs []RuleSpec) (*Rules, error) {
	env, err := newEnv()
	if err != nil {
		return nil, err
	}
	rs := &Rules{adapter: env.CELTypeAdapter()}
	var errs []error
	seen := make(map[string]string, len(specs))
	for i := range specs {
		s := &specs[i]
		r, err := compileRule(env, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := seen[s.ID]; ok {
			errs = append(errs, fmt.Errorf("%s: rule %s: id already used in %s", s.Source, s.ID, prev))
			continue
		}
		seen[s.ID] = s.Source
		rs.rules = append(rs.rules, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rs.index()
	return rs, nil
}

func compileRule(env *cel.Env, s *RuleSpec) (*Rule, error) {
	name := s.ID
	if name == "" {
		name = "(no id)"
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: rule %s: %s", s.Source, name, fmt.Sprintf(format, args...)))
	}
	switch {
	case s.ID == "":
		bad("no id")
	case s.ID == RuleDenyExec:
		bad("id %s is the deny_exec rule (policy.deny_exec)", s.ID)
	case !idPattern.MatchString(s.ID):
		bad("id must be lower-case letters, digits, '_', '-' or '.', at most 128")
	}
	if strings.TrimSpace(s.Description) == "" {
		bad("no description")
	}
	if !slices.Contains(severities, s.Severity) {
		bad("severity %q: want one of %s", s.Severity, strings.Join(severities, ", "))
	}
	for _, m := range s.Mitre {
		if !mitrePattern.MatchString(m) {
			bad("mitre %q is not an ATT&CK technique id (T1234 or T1234.001)", m)
		}
	}
	if len(s.Actions) == 0 {
		bad("no actions")
	}
	for _, a := range s.Actions {
		check, ok := actionParams[a.Name]
		if !ok {
			bad("unknown action %q (known: %s)", a.Name, knownActions())
			continue
		}
		if err := check(a.Params); err != nil {
			bad("action %s: %v", a.Name, err)
		}
	}
	r := &Rule{
		ID:          s.ID,
		Description: strings.TrimSpace(s.Description),
		Severity:    s.Severity,
		Mitre:       slices.Clone(s.Mitre),
		Actions:     slices.Clone(s.Actions),
		Source:      s.Source,
		Condition:   s.Condition,
	}
	if strings.TrimSpace(s.Condition) == "" {
		bad("no condition")
	} else if p, a, err := compileBool(env, s.Condition); err != nil {
		bad("condition: %v", err)
	} else {
		r.cond, r.kinds = p, kindsOf(a.NativeRep().Expr())
	}
	for i, x := range s.Exceptions {
		p, _, err := compileBool(env, x)
		if err != nil {
			bad("exception %d: %v", i+1, err)
			continue
		}
		r.exceptions = append(r.exceptions, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// compileBool compiles a CEL expression that must yield a bool.
func compileBool(env *cel.Env, src string) (cel.Program, *cel.Ast, error) {
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, nil, iss.Err()
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, nil, fmt.Errorf("yields %s, want bool", ast.OutputType())
	}
	p, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	return p, ast, err
}
