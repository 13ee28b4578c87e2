package sensor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Bounds of the kernel recogniser table (bpf/lineaged.h RECOG_*).
const (
	MaxRecognisers  = 32
	MaxMatchers     = 6
	MaxMatchLevel   = 7
	MaxMatchText    = 32
	MaxScriptSuffix = 64
	MaxNotArgv0     = 6
	// An argv[0..3] string of this many bytes or more ends the kernel's
	// search for the script argument (it reads each with a bounded
	// string read and cannot know where the next one starts).
	scriptArgMax = 255
)

// MatchOp is how a Matcher compares a path component.
type MatchOp uint8

// Match operations (values are ABI: bpf/lineaged.h enum recog_op).
const (
	Equals     MatchOp = 1
	HasPrefix  MatchOp = 2
	opsCeiling MatchOp = 3
)

// Matcher tests one component of the executable's resolved path, counted
// from the leaf: Level 0 is the file name, 1 its directory, and so on.
// Components, not substrings, keep the kernel side to a few masked 64-bit
// compares per rule.
type Matcher struct {
	Op    MatchOp
	Level int
	Text  string
}

// Recogniser is one rule of the agent table, in the format the kernel
// loads (the table itself, with what lineage knows about each install form,
// is lineage/agent's). It holds when all Exe
// matchers hold and, if Script is set, when the script argument of the
// interpreter (the first of argv[1..3] that is non-empty and does not start
// with '-') ends with Script. Rules without Script are tried first, in
// order, then rules with Script, in order; the first that holds names the
// agent.
type Recogniser struct {
	// Name documents the install form ("claude-code native").
	Name  string
	Agent AgentKind
	Exe   []Matcher
	// Script is a suffix of the script argument starting with '/', so it
	// matches at a component boundary: "/@anthropic-ai/claude-code/cli.js".
	Script string
	// NotArgv0 vetoes a match when argv[0] is exactly one of these: the
	// agent's binary re-executed as one of its embedded tools.
	NotArgv0 []string
}

// Validate reports the first problem that would stop the rule from loading
// into the kernel table.
func (r Recogniser) Validate() error {
	if r.Agent == AgentNone {
		return fmt.Errorf("recogniser %q: no agent", r.Name)
	}
	// A rule on argv alone would let `cat .../cli.js` start a session.
	if len(r.Exe) == 0 || len(r.Exe) > MaxMatchers {
		return fmt.Errorf("recogniser %q: %d exe matchers, need 1 to %d", r.Name, len(r.Exe), MaxMatchers)
	}
	for i, m := range r.Exe {
		switch {
		case m.Op == 0 || m.Op >= opsCeiling:
			return fmt.Errorf("recogniser %q matcher %d: unknown op %d", r.Name, i, m.Op)
		case m.Level < 0 || m.Level > MaxMatchLevel:
			return fmt.Errorf("recogniser %q matcher %d: level %d outside 0..%d", r.Name, i, m.Level, MaxMatchLevel)
		case m.Text == "" || len(m.Text) > MaxMatchText:
			return fmt.Errorf("recogniser %q matcher %d: text %q must be 1 to %d bytes", r.Name, i, m.Text, MaxMatchText)
		case strings.ContainsAny(m.Text, "/\x00"):
			return fmt.Errorf("recogniser %q matcher %d: text %q holds '/' or NUL; match one component", r.Name, i, m.Text)
		}
	}
	if len(r.NotArgv0) > MaxNotArgv0 {
		return fmt.Errorf("recogniser %q: %d argv[0] vetoes, at most %d", r.Name, len(r.NotArgv0), MaxNotArgv0)
	}
	for _, a := range r.NotArgv0 {
		if a == "" || len(a) >= MaxMatchText || strings.Contains(a, "\x00") {
			return fmt.Errorf("recogniser %q: argv[0] veto %q must be 1 to %d bytes without NUL", r.Name, a, MaxMatchText-1)
		}
	}
	if r.Script != "" {
		if len(r.Script) > MaxScriptSuffix || r.Script[0] != '/' || strings.Contains(r.Script, "\x00") {
			return fmt.Errorf("recogniser %q: script suffix %q must start with '/', be at most %d bytes and hold no NUL",
				r.Name, r.Script, MaxScriptSuffix)
		}
	}
	return nil
}

// ValidateRecognisers checks a whole table.
func ValidateRecognisers(table []Recogniser) error {
	if len(table) > MaxRecognisers {
		return fmt.Errorf("recogniser table: %d rules, at most %d fit the kernel table", len(table), MaxRecognisers)
	}
	var errs []error
	for _, r := range table {
		errs = append(errs, r.Validate())
	}
	return errors.Join(errs...)
}

// RecogniseWith reports which agent, if any, an exec of exe with argv
// starts under table: the same rules, in the same order, the kernel applies
// at exec, so a /proc seed and the live sensor agree. exe is the resolved
// absolute path (a " (deleted)" suffix from /proc/<pid>/exe is ignored).
func RecogniseWith(table []Recogniser, exe string, argv []string) AgentKind {
	i, vetoed := Decide(table, exe, argv)
	if i < 0 || vetoed {
		return AgentNone
	}
	return table[i].Agent
}

// Decide returns the index of the rule of table that decides an exec of exe
// with argv, as the kernel does, or -1 when no rule holds. vetoed reports
// that the deciding rule holds but argv[0] is one of its vetoes: as in the
// kernel, a veto ends the search and the exec starts no session.
func Decide(table []Recogniser, exe string, argv []string) (rule int, vetoed bool) {
	comps := components(strings.TrimSuffix(exe, " (deleted)"))
	for i, r := range table {
		if r.Script == "" && r.exeHolds(comps) {
			return i, r.vetoed(argv)
		}
	}
	script, found := "", false
	for i, r := range table {
		if r.Script == "" || !r.exeHolds(comps) {
			continue
		}
		if !found {
			if script, found = scriptArg(argv); !found {
				return -1, false
			}
		}
		if strings.HasSuffix(script, r.Script) {
			return i, r.vetoed(argv)
		}
	}
	return -1, false
}

// vetoed reports argv[0] as one of the rule's vetoes.
func (r Recogniser) vetoed(argv []string) bool {
	return len(argv) > 0 && slices.Contains(r.NotArgv0, argv[0])
}

func (r Recogniser) exeHolds(comps []string) bool {
	for _, m := range r.Exe {
		if m.Level >= len(comps) {
			return false
		}
		c := comps[m.Level]
		switch m.Op {
		case Equals:
			if c != m.Text {
				return false
			}
		case HasPrefix:
			if !strings.HasPrefix(c, m.Text) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// components splits a path leaf first, skipping empty components, as the
// kernel's dentry walk yields them.
func components(p string) []string {
	parts := strings.Split(p, "/")
	out := make([]string, 0, len(parts))
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] != "" {
			out = append(out, parts[i])
		}
	}
	return out
}

// ScriptArg returns the argument a Script rule matches, as the kernel finds
// it: the first of argv[1..3] that is non-empty and does not start with '-'.
// A string of scriptArgMax bytes or more among argv[0..3] before it ends the
// search.
func ScriptArg(argv []string) (string, bool) { return scriptArg(argv) }

func scriptArg(argv []string) (string, bool) {
	for i, a := range argv {
		if i > 3 || len(a) >= scriptArgMax {
			return "", false
		}
		if i > 0 && a != "" && a[0] != '-' {
			return a, true
		}
	}
	return "", false
}
