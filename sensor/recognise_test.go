//go:build linux

package sensor

import (
	"strings"
	"testing"
)

func TestRecogniseInstallForms(t *testing.T) {
	home := "/home/dev"
	nm := "/usr/lib/node_modules"
	for _, c := range []struct {
		name string
		exe  string
		argv []string
		want AgentKind
	}{
		{"native", home + "/.local/share/claude/versions/2.1.332", []string{"claude", "-p", "hi"}, AgentClaudeCode},
		{"native deleted after upgrade", home + "/.local/share/claude/versions/2.1.300 (deleted)", []string{"claude"}, AgentClaudeCode},
		{"npm claude.exe", nm + "/@anthropic-ai/claude-code/bin/claude.exe", []string{nm + "/.bin/claude"}, AgentClaudeCode},
		{"npm in a project", "/srv/app/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"claude"}, AgentClaudeCode},
		{"platform x64", nm + "/@anthropic-ai/claude-code-linux-x64/claude", []string{"claude"}, AgentClaudeCode},
		{"platform arm64 musl", nm + "/@anthropic-ai/claude-code-linux-arm64-musl/claude", []string{"claude"}, AgentClaudeCode},
		{"agent sdk platform", "/app/node_modules/@anthropic-ai/claude-agent-sdk-linux-x64/claude", []string{"claude"}, AgentClaudeCode},
		{"python sdk bundled", "/venv/lib/python3.12/site-packages/claude_agent_sdk/_bundled/claude", []string{"claude"}, AgentClaudeCode},
		{"vscode", home + "/.vscode/extensions/anthropic.claude-code-2.0.1-linux-x64/resources/native-binary/claude", []string{"claude"}, AgentClaudeCode},
		{"vscode server", home + "/.vscode-server/extensions/anthropic.claude-code-2.0.1/resources/native-binary/claude", []string{"claude"}, AgentClaudeCode},
		{"legacy cli.js", "/usr/bin/node", []string{"node", nm + "/@anthropic-ai/claude-code/cli.js", "-p"}, AgentClaudeCode},
		{"legacy cli.js with node flags", "/usr/bin/node", []string{"node", "--no-warnings", "--enable-source-maps", nm + "/@anthropic-ai/claude-code/cli.js"}, AgentClaudeCode},
		{"npm bin link via node", home + "/.nvm/versions/node/v22.1.0/bin/node", []string{"node", home + "/.nvm/versions/node/v22.1.0/bin/claude"}, AgentClaudeCode},
		{"agent sdk cli.js", "/usr/bin/node", []string{"node", "/app/node_modules/@anthropic-ai/claude-agent-sdk/cli.js"}, AgentClaudeCode},
		{"cli.js via bun", home + "/.bun/bin/bun", []string{"bun", nm + "/@anthropic-ai/claude-code/cli.js"}, AgentClaudeCode},
		{"codex js", "/usr/bin/node", []string{"node", nm + "/@openai/codex/bin/codex.js"}, AgentCodex},
		{"codex native", nm + "/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex", []string{"codex"}, AgentCodex},
		{"codex platform native", nm + "/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/codex/codex", []string{"codex"}, AgentCodex},
		{"codex bin link", "/usr/bin/node", []string{"node", "/usr/bin/codex", "exec"}, AgentCodex},
		{"gemini dist", "/usr/bin/node", []string{"node", nm + "/@google/gemini-cli/dist/index.js"}, AgentGemini},
		{"gemini bundle", "/usr/bin/node", []string{"node", nm + "/@google/gemini-cli/bundle/gemini.js"}, AgentGemini},
		{"gemini bin link", "/usr/bin/node", []string{"node", "/usr/local/bin/gemini"}, AgentGemini},

		// Not agents.
		{"comm alone", "/usr/bin/python3", []string{"claude"}, AgentNone},
		{"versions dir elsewhere", "/opt/claude/versions/2.1", []string{"claude"}, AgentNone},
		{"cat of cli.js", "/usr/bin/cat", []string{"cat", nm + "/@anthropic-ai/claude-code/cli.js"}, AgentNone},
		{"node other script", "/usr/bin/node", []string{"node", "/srv/app/server.js"}, AgentNone},
		{"node with no script", "/usr/bin/node", []string{"node"}, AgentNone},
		{"node -e", "/usr/bin/node", []string{"node", "-e", "1"}, AgentNone},
		{"node script in 5th arg", "/usr/bin/node", []string{"node", "-a", "-b", "-c", nm + "/@anthropic-ai/claude-code/cli.js"}, AgentNone},
		{"ripgrep vendored", nm + "/@anthropic-ai/claude-code/vendor/ripgrep/x64-linux/rg", []string{"rg"}, AgentNone},
		{"claude.exe as ugrep", nm + "/@anthropic-ai/claude-code/bin/claude.exe", []string{"ugrep", "-G"}, AgentNone},
		{"native as rg", home + "/.local/share/claude/versions/2.1.332", []string{"rg", "--files"}, AgentNone},
		{"empty", "", nil, AgentNone},
	} {
		if got := Recognise(c.exe, c.argv); got != c.want {
			t.Errorf("%s: Recognise(%q, %q) = %v, want %v", c.name, c.exe, c.argv, got, c.want)
		}
	}
}

func TestRecogniseLongArgv0StopsScriptSearch(t *testing.T) {
	// The kernel reads argv strings with a bounded string read and cannot
	// find the next one after a string that fills it; Go agrees.
	argv := []string{strings.Repeat("n", scriptArgMax), "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"}
	if got := Recognise("/usr/bin/node", argv); got != AgentNone {
		t.Errorf("got %v", got)
	}
}

func TestValidateRecogniserErrors(t *testing.T) {
	ok := Matcher{Op: Equals, Level: 0, Text: "claude"}
	for name, c := range map[string]struct {
		r    Recogniser
		want string
	}{
		"no agent":       {Recogniser{Name: "x", Exe: []Matcher{ok}}, "no agent"},
		"no exe":         {Recogniser{Name: "x", Agent: AgentCodex, Script: "/a.js"}, "exe matchers"},
		"too many":       {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{ok, ok, ok, ok, ok, ok, ok}}, "exe matchers"},
		"bad op":         {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{{Op: 9, Text: "a"}}}, "unknown op"},
		"deep level":     {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{{Op: Equals, Level: 8, Text: "a"}}}, "level 8"},
		"long text":      {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{{Op: Equals, Text: strings.Repeat("a", 33)}}}, "1 to 32"},
		"slash":          {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{{Op: Equals, Text: "a/b"}}}, "'/'"},
		"script no /":    {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{ok}, Script: "cli.js"}, "start with '/'"},
		"long veto":      {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{ok}, NotArgv0: []string{strings.Repeat("v", 32)}}, "veto"},
		"too many vetos": {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{ok}, NotArgv0: []string{"a", "b", "c", "d", "e", "f", "g"}}, "vetoes"},
	} {
		err := c.r.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to mention %q", name, err, c.want)
		}
	}
	big := make([]Recogniser, MaxRecognisers+1)
	if err := ValidateRecognisers(big); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversized table: %v", err)
	}
}
