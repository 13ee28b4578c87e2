package agent

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/lineaged/lineaged/sensor"
)

// Match is what a recogniser learned from an exec: which agent, which
// version, and how it was installed.
type Match struct {
	Kind    sensor.AgentKind
	Name    string // event.Agent.Name: "claude-code", "codex", "gemini-cli"
	Version string // "" when the install form does not say
	Form    string // install form, e.g. "native", "npm", "npm-platform", "vscode", "sdk", "node-cli"
}

// ReadFileFunc reads a small file (a package.json beside an agent binary).
// Implementations must bound what they read.
type ReadFileFunc func(path string) ([]byte, error)

// Recogniser tells one agent's executables from everything else, by
// executable path and argv, never by comm alone.
type Recogniser struct {
	Kind sensor.AgentKind
	Name string
	// Match reports the install form when exe/argv are this agent.
	Match func(exe string, argv []string, read ReadFileFunc) (form, version string, ok bool)
}

// Recognisers is the table consulted, in order, for every exec that may
// start a session. Other agents fit in by adding a row.
func Recognisers() []Recogniser {
	return []Recogniser{
		{Kind: sensor.AgentClaudeCode, Name: "claude-code", Match: matchClaude},
		{Kind: sensor.AgentCodex, Name: "codex", Match: matchCodex},
		{Kind: sensor.AgentGemini, Name: "gemini-cli", Match: matchGemini},
	}
}

// Identify runs the recogniser table on one exec.
func Identify(table []Recogniser, exe string, argv []string, read ReadFileFunc) (Match, bool) {
	for _, r := range table {
		if form, v, ok := r.Match(exe, argv, read); ok {
			return Match{Kind: r.Kind, Name: r.Name, Version: v, Form: form}, true
		}
	}
	return Match{}, false
}

var (
	// ~/.local/share/claude/versions/2.1.332 (the native installer keeps
	// one file per version and points ~/.local/bin/claude at it).
	reClaudeNative = regexp.MustCompile(`/claude/versions/([0-9][0-9A-Za-z.+-]*)$`)
	// ~/.vscode/extensions/anthropic.claude-code-2.1.332-linux-x64/resources/native-binary/claude
	// (also .vscode-server, .cursor, .windsurf...).
	reClaudeVSCode = regexp.MustCompile(`/anthropic\.claude-code-([0-9][0-9A-Za-z.+]*?)(?:-(?:linux|darwin|win32|alpine)-[a-z0-9]+)?/`)
	// Platform packages: @anthropic-ai/claude-code-linux-x64/claude.
	reClaudePlatform = regexp.MustCompile(`/@anthropic-ai/claude-code-[a-z0-9-]+/claude$`)
	// SDK-bundled: the Python claude-agent-sdk ships _bundled/claude; the
	// TypeScript SDK ships its own platform packages.
	reClaudeSDK = regexp.MustCompile(`(/claude_agent_sdk/_bundled/claude$)|(/@anthropic-ai/claude-agent-sdk[a-z0-9-]*/(?:.*/)?claude(?:\.exe)?$)`)
)

// claudeHelperArgv0 are names Claude Code re-executes its own binary under
// to get an embedded tool: the Bash tool's grep runs
// ".../claude.exe" with argv[0] "ugrep". Such an exec is a tool helper, not
// a new agent session.
var claudeHelperArgv0 = map[string]bool{"ugrep": true, "rg": true, "bfs": true, "grep": true, "find": true}

func base(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// IsClaudeHelper reports an exec of the Claude Code binary as one of its
// embedded helpers (argv[0] "ugrep", "rg"...).
func IsClaudeHelper(argv []string) bool {
	return len(argv) > 0 && claudeHelperArgv0[base(argv[0])]
}

func matchClaude(exe string, argv []string, read ReadFileFunc) (string, string, bool) {
	if IsClaudeHelper(argv) {
		return "", "", false
	}
	switch {
	case strings.HasSuffix(exe, "/@anthropic-ai/claude-code/bin/claude.exe"),
		strings.HasSuffix(exe, "/@anthropic-ai/claude-code/bin/claude"):
		return "npm", packageVersion(read, filepath.Join(filepath.Dir(filepath.Dir(exe)), "package.json"), "@anthropic-ai/claude-code"), true
	case reClaudePlatform.MatchString(exe):
		return "npm-platform", packageVersion(read, filepath.Join(filepath.Dir(exe), "package.json"), ""), true
	case reClaudeSDK.MatchString(exe):
		return "sdk", packageVersion(read, filepath.Join(filepath.Dir(exe), "package.json"), ""), true
	}
	if m := reClaudeNative.FindStringSubmatch(exe); m != nil {
		return "native", m[1], true
	}
	if m := reClaudeVSCode.FindStringSubmatch(exe); m != nil && base(exe) == "claude" {
		return "vscode", m[1], true
	}
	if script, ok := nodeScript(exe, argv); ok {
		// Legacy JavaScript CLI: node .../@anthropic-ai/claude-code/cli.js
		// (also the SDK's bundled cli.js).
		for _, pkg := range []string{"/@anthropic-ai/claude-code/", "/@anthropic-ai/claude-agent-sdk/"} {
			if i := strings.LastIndex(script, pkg); i >= 0 && strings.HasSuffix(script, "/cli.js") {
				root := script[:i+len(pkg)]
				form := "node-cli"
				if strings.Contains(pkg, "sdk") {
					form = "sdk"
				}
				return form, packageVersion(read, filepath.Join(root, "package.json"), ""), true
			}
		}
	}
	return "", "", false
}

func matchCodex(exe string, argv []string, read ReadFileFunc) (string, string, bool) {
	// npm: node .../@openai/codex/bin/codex.js, which execs the native
	// .../@openai/codex[-<platform>]/vendor/<triple>/codex/codex.
	if i := strings.LastIndex(exe, "/@openai/codex"); i >= 0 && base(exe) == "codex" {
		root := exe[:i+len("/@openai/codex")]
		return "npm", packageVersion(read, filepath.Join(root, "package.json"), ""), true
	}
	if script, ok := nodeScript(exe, argv); ok && strings.HasSuffix(script, "/@openai/codex/bin/codex.js") {
		return "npm", packageVersion(read, filepath.Join(filepath.Dir(filepath.Dir(script)), "package.json"), ""), true
	}
	// Standalone release binary (/usr/local/bin/codex, ~/.cargo/bin/codex).
	if base(exe) == "codex" && strings.HasSuffix(exe, "/bin/codex") {
		return "native", "", true
	}
	return "", "", false
}

func matchGemini(exe string, argv []string, read ReadFileFunc) (string, string, bool) {
	script, ok := nodeScript(exe, argv)
	if !ok {
		return "", "", false
	}
	const pkg = "/@google/gemini-cli/"
	if i := strings.LastIndex(script, pkg); i >= 0 {
		return "npm", packageVersion(read, filepath.Join(script[:i+len(pkg)], "package.json"), ""), true
	}
	return "", "", false
}

// nodeScript returns the script a Node.js (or Bun) process runs: the first
// argv element after node's own options.
func nodeScript(exe string, argv []string) (string, bool) {
	switch base(exe) {
	case "node", "nodejs", "bun":
	default:
		return "", false
	}
	for _, a := range argv[min(1, len(argv)):] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		return a, true
	}
	return "", false
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
	if len(p.Version) > 64 {
		return ""
	}
	return p.Version
}

// IsAgentExec reports whether exe/argv start an agent recognised by the
// default table (without reading any file): for the redactor, which hides
// agent prompts wherever an agent appears.
func IsAgentExec(exe string, argv []string) bool {
	_, ok := Identify(Recognisers(), exe, argv, nil)
	return ok
}
