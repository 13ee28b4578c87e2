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

// Recogniser is one rule of the agent table. It holds when all Exe
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

func eq(level int, text string) Matcher     { return Matcher{Op: Equals, Level: level, Text: text} }
func prefix(level int, text string) Matcher { return Matcher{Op: HasPrefix, Level: level, Text: text} }

// DefaultRecognisers is the built-in table: every Claude Code install form,
// OpenAI Codex CLI and Gemini CLI. It returns a fresh slice each call.
func DefaultRecognisers() []Recogniser {
	t := []Recogniser{
		// ~/.local/share/claude/versions/<version> (the native installer;
		// ~/.local/bin/claude is a symlink to it, resolved by the kernel).
		{Name: "claude-code native", Agent: AgentClaudeCode, Exe: []Matcher{
			eq(1, "versions"), eq(2, "claude"), eq(3, "share"), eq(4, ".local")}},
		// npm i -g @anthropic-ai/claude-code: the package's native binary.
		{Name: "claude-code npm", Agent: AgentClaudeCode, Exe: []Matcher{
			eq(0, "claude.exe"), eq(1, "bin"), eq(2, "claude-code"), eq(3, "@anthropic-ai")}},
		{Name: "claude-code npm bin", Agent: AgentClaudeCode, Exe: []Matcher{
			eq(0, "claude"), eq(1, "bin"), eq(2, "claude-code"), eq(3, "@anthropic-ai")}},
		// Platform packages: @anthropic-ai/claude-code-linux-{x64,arm64}[-musl]/claude.
		{Name: "claude-code platform package", Agent: AgentClaudeCode, Exe: []Matcher{
			eq(0, "claude"), prefix(1, "claude-code-linux-"), eq(2, "@anthropic-ai")}},
		// Agent SDK: its platform packages and the Python SDK's bundled CLI.
		{Name: "claude-agent-sdk platform package", Agent: AgentClaudeCode, Exe: []Matcher{
			eq(0, "claude"), prefix(1, "claude-agent-sdk-linux-"), eq(2, "@anthropic-ai")}},
		{Name: "claude-agent-sdk python bundled", Agent: AgentClaudeCode, Exe: []Matcher{
			eq(0, "claude"), eq(1, "_bundled"), eq(2, "claude_agent_sdk")}},
		// VS Code (and forks, remote servers) extension:
		// .vscode*/extensions/anthropic.claude-code-<v>[-<platform>]/resources/native-binary/claude.
		{Name: "claude-code vscode extension", Agent: AgentClaudeCode, Exe: []Matcher{
			eq(0, "claude"), eq(1, "native-binary"), eq(2, "resources"), prefix(3, "anthropic.claude-code-")}},
		// Codex's native binary: @openai/codex[-linux-*]/vendor/<triple>/codex/codex.
		{Name: "codex native", Agent: AgentCodex, Exe: []Matcher{
			eq(0, "codex"), eq(1, "codex"), eq(3, "vendor"), prefix(4, "codex"), eq(5, "@openai")}},
	}
	// Claude Code runs its own executable as its embedded search tools
	// (argv[0] "ugrep", "rg", ...) inside tool calls: not a new session.
	for i := range t {
		if t[i].Agent == AgentClaudeCode {
			t[i].NotArgv0 = []string{"ugrep", "rg", "bfs", "grep", "find"}
		}
	}
	// Script launchers, for each JavaScript runtime. A #! script's exec
	// ends with the interpreter as the image, and argv carries the script
	// path as invoked: the package path, or the npm bin symlink (bin/claude)
	// which the kernel cannot resolve from a string.
	for _, rt := range []string{"node", "bun"} {
		exe := []Matcher{prefix(0, rt)}
		for _, l := range []struct {
			name   string
			agent  AgentKind
			script string
		}{
			{"claude-code cli.js", AgentClaudeCode, "/@anthropic-ai/claude-code/cli.js"},
			{"claude-agent-sdk cli.js", AgentClaudeCode, "/@anthropic-ai/claude-agent-sdk/cli.js"},
			{"claude-code npm bin link", AgentClaudeCode, "/bin/claude"},
			{"codex codex.js", AgentCodex, "/@openai/codex/bin/codex.js"},
			{"codex npm bin link", AgentCodex, "/bin/codex"},
			{"gemini-cli dist", AgentGemini, "/@google/gemini-cli/dist/index.js"},
			{"gemini-cli bundle", AgentGemini, "/@google/gemini-cli/bundle/gemini.js"},
			{"gemini-cli npm bin link", AgentGemini, "/bin/gemini"},
		} {
			t = append(t, Recogniser{Name: l.name + " via " + rt, Agent: l.agent, Exe: exe, Script: l.script})
		}
	}
	return t
}

// Recognise reports which agent, if any, an exec of exe with argv starts,
// using the default table: the same rules the kernel applies at exec, so a
// /proc seed and the live sensor agree. exe is the resolved absolute path
// (a " (deleted)" suffix from /proc/<pid>/exe is ignored).
func Recognise(exe string, argv []string) AgentKind {
	return RecogniseWith(DefaultRecognisers(), exe, argv)
}

// RecogniseWith is Recognise with an explicit table (Config.Recognisers).
func RecogniseWith(table []Recogniser, exe string, argv []string) AgentKind {
	comps := components(strings.TrimSuffix(exe, " (deleted)"))
	for _, r := range table {
		if r.Script == "" && r.exeHolds(comps) {
			return r.vetoed(argv)
		}
	}
	script, found := "", false
	for _, r := range table {
		if r.Script == "" || !r.exeHolds(comps) {
			continue
		}
		if !found {
			if script, found = scriptArg(argv); !found {
				return AgentNone
			}
		}
		if strings.HasSuffix(script, r.Script) {
			return r.vetoed(argv)
		}
	}
	return AgentNone
}

// vetoed returns the rule's agent unless argv[0] is one of its vetoes. As
// in the kernel, a veto ends the search: the exec starts no session.
func (r Recogniser) vetoed(argv []string) AgentKind {
	if len(argv) > 0 && slices.Contains(r.NotArgv0, argv[0]) {
		return AgentNone
	}
	return r.Agent
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

// scriptArg mirrors the kernel: the first of argv[1..3] that is non-empty
// and does not start with '-'. A string of scriptArgMax bytes or more among
// argv[0..3] before it ends the search.
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
