package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/lineaged/lineaged/sensor"
)

// Rule is one row of the agent table: one install form of one agent. The
// embedded sensor.Recogniser is what the kernel matches at exec (exe path
// components, the script suffix of an interpreter, argv[0] vetoes); Form
// and Version are what lineage adds once the kernel has matched.
type Rule struct {
	sensor.Recogniser
	// Form names the install form in attribution: "native", "npm",
	// "npm-platform", "sdk", "vscode", "node-cli".
	Form string
	// Version says where the form keeps its version; the zero value
	// reads none.
	Version Version
}

// Version is where an install form keeps its version: a component of the
// executable's path, or a package.json near the executable (or near the
// script, for an interpreter rule).
type Version struct {
	// Component reads the version from the exe path component at Level
	// (0 the file name), with Prefix removed and cut at the first Cut.
	Component bool
	Level     int
	Prefix    string
	Cut       string
	// PackageJSON, when set, is the path of a package.json relative to
	// the directory of the executable, or of the script for a rule with a
	// Script; its "version" is read, and its "name" must equal Package
	// when Package is set.
	PackageJSON string
	Package     string
}

// fromComponent reads the version from exe path component level.
func fromComponent(level int, prefix, cut string) Version {
	return Version{Component: true, Level: level, Prefix: prefix, Cut: cut}
}

// fromPackage reads the version from a package.json at rel.
func fromPackage(rel, name string) Version { return Version{PackageJSON: rel, Package: name} }

// Match is what the table learned from an exec: which agent, which version,
// and how it was installed.
type Match struct {
	Kind    sensor.AgentKind
	Name    string // event.Agent.Name: "claude-code", "codex", "gemini-cli"
	Version string // "" when the install form does not say
	Form    string // Rule.Form
	Rule    string // Rule.Name, e.g. "claude-code npm"
}

// Table is the agent table, validated: the one set of rules the kernel
// loads (Kernel) and lineage evaluates (Identify), so the two agree by
// construction. A Table is immutable and safe for concurrent use.
type Table struct {
	rules  []Rule
	kernel []sensor.Recogniser
}

// NewTable validates rules and returns them as a table. The order is the
// kernel's: rules without a Script are tried first, in order, then those
// with one; the first that holds decides.
func NewTable(rules []Rule) (*Table, error) {
	t := &Table{rules: append([]Rule(nil), rules...), kernel: make([]sensor.Recogniser, len(rules))}
	var errs []error
	for i, r := range t.rules {
		t.kernel[i] = r.Recogniser
		if r.Agent.String() == "" {
			errs = append(errs, fmt.Errorf("agent rule %q: agent %d has no name", r.Name, r.Agent))
		}
		if r.Form == "" {
			errs = append(errs, fmt.Errorf("agent rule %q: no install form", r.Name))
		}
		if v := r.Version; v.Component && (v.Level < 0 || v.Level > sensor.MaxMatchLevel) {
			errs = append(errs, fmt.Errorf("agent rule %q: version level %d outside 0..%d", r.Name, v.Level, sensor.MaxMatchLevel))
		}
	}
	errs = append(errs, sensor.ValidateRecognisers(t.kernel))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// DefaultTable is the built-in table, DefaultRules. It panics only if those
// rules are invalid, which the package's tests rule out.
func DefaultTable() *Table {
	t, err := NewTable(DefaultRules())
	if err != nil {
		panic(fmt.Sprintf("lineage/agent: built-in agent table: %v", err))
	}
	return t
}

// Rules returns a copy of the table's rows.
func (t *Table) Rules() []Rule { return append([]Rule(nil), t.rules...) }

// Kernel returns the table compiled for the kernel recogniser map
// (kernel.Config.Recognisers): the rules' matchers, in order.
func (t *Table) Kernel() []sensor.Recogniser { return append([]sensor.Recogniser(nil), t.kernel...) }

// Recognise reports the agent an exec starts, exactly as the kernel would:
// AgentNone when no rule holds or argv[0] vetoes the rule that does.
func (t *Table) Recognise(exe string, argv []string) sensor.AgentKind {
	return sensor.RecogniseWith(t.kernel, exe, argv)
}

// IsAgent reports whether exe/argv start an agent, without reading any
// file: for the redactor, which hides agent prompts wherever an agent
// appears (redact.Config.IsAgent).
func (t *Table) IsAgent(exe string, argv []string) bool {
	return t.Recognise(exe, argv) != sensor.AgentNone
}

// Vetoed reports an exec that a rule's matchers take for an agent but whose
// argv[0] vetoes it: the agent's binary re-executed as one of its embedded
// tools (Claude Code's executable as "ugrep").
func (t *Table) Vetoed(exe string, argv []string) bool {
	i, vetoed := sensor.Decide(t.kernel, exe, argv)
	return i >= 0 && vetoed
}

// Identify names the agent an exec starts, with its install form and, when
// read can load it, its version. It holds exactly when Recognise does.
func (t *Table) Identify(exe string, argv []string, read ReadFileFunc) (Match, bool) {
	i, vetoed := sensor.Decide(t.kernel, exe, argv)
	if i < 0 || vetoed {
		return Match{}, false
	}
	r := &t.rules[i]
	m := Match{Kind: r.Agent, Name: r.Agent.String(), Form: r.Form, Rule: r.Name}
	m.Version = r.version(strings.TrimSuffix(exe, " (deleted)"), argv, read)
	return m, true
}

// version reads the version the rule's install form keeps; "" when it
// keeps none, or what it keeps does not look like a version.
func (r *Rule) version(exe string, argv []string, read ReadFileFunc) string {
	v := r.Version
	switch {
	case v.Component:
		p := exe
		for range v.Level {
			p = filepath.Dir(p)
		}
		c := strings.TrimPrefix(filepath.Base(p), v.Prefix)
		if v.Cut != "" {
			c, _, _ = strings.Cut(c, v.Cut)
		}
		return cleanVersion(c)
	case v.PackageJSON != "":
		dir := filepath.Dir(exe)
		if r.Script != "" {
			script, ok := sensor.ScriptArg(argv)
			if !ok {
				return ""
			}
			dir = filepath.Dir(script)
		}
		return cleanVersion(packageVersion(read, filepath.Join(dir, v.PackageJSON), v.Package))
	}
	return ""
}

// cleanVersion keeps a version only if it looks like one: a digit, then
// letters, digits and ".+-", at most 64 bytes. Paths and package.json
// files are user-controlled, and the version goes into every event.
func cleanVersion(v string) string {
	if v == "" || len(v) > 64 || v[0] < '0' || v[0] > '9' {
		return ""
	}
	for _, c := range []byte(v) {
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '+' || c == '-'
		if !ok {
			return ""
		}
	}
	return v
}

// packageVersion reads "version" from a package.json, checking its name
// when want is set. Any failure yields "": the version is best effort.
func packageVersion(read ReadFileFunc, path, want string) string {
	if read == nil {
		return ""
	}
	b, err := read(path)
	if err != nil {
		return ""
	}
	var p struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &p) != nil || (want != "" && p.Name != want) {
		return ""
	}
	return p.Version
}

// KindOf returns the agent named name (event.Agent.Name) in the table,
// AgentNone when no row names it.
func (t *Table) KindOf(name string) sensor.AgentKind {
	for _, r := range t.rules {
		if r.Agent.String() == name {
			return r.Agent
		}
	}
	return sensor.AgentNone
}
