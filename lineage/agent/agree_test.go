package agent

import (
	"errors"
	"testing"

	"github.com/lineaged/lineaged/sensor"
)

// The kernel decides session membership with sensor's recognisers; this
// package names the agent and its version with its own table. They must
// agree on what is an agent, or a session would be tracked but unnamed (or
// named but never tracked).
func TestRecognisersAgreeWithSensor(t *testing.T) {
	const home = "/home/u"
	const nm = "/usr/lib/node_modules"
	cases := []struct {
		exe  string
		argv []string
	}{
		{home + "/.local/share/claude/versions/2.1.332", []string{"claude", "-p", "hi"}},
		{nm + "/@anthropic-ai/claude-code/bin/claude.exe", []string{nm + "/.bin/claude"}},
		{"/srv/app/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"claude"}},
		{nm + "/@anthropic-ai/claude-code-linux-x64/claude", []string{"claude"}},
		{nm + "/@anthropic-ai/claude-code-linux-arm64-musl/claude", []string{"claude"}},
		{"/app/node_modules/@anthropic-ai/claude-agent-sdk-linux-x64/claude", []string{"claude"}},
		{"/venv/lib/python3.12/site-packages/claude_agent_sdk/_bundled/claude", []string{"claude"}},
		{home + "/.vscode/extensions/anthropic.claude-code-2.0.1-linux-x64/resources/native-binary/claude", []string{"claude"}},
		{home + "/.vscode-server/extensions/anthropic.claude-code-2.0.1/resources/native-binary/claude", []string{"claude"}},
		{"/usr/bin/node", []string{"node", nm + "/@anthropic-ai/claude-code/cli.js", "-p"}},
		{"/usr/bin/node", []string{"node", "/app/node_modules/@anthropic-ai/claude-agent-sdk/cli.js"}},
		{"/usr/bin/node", []string{"node", nm + "/@openai/codex/bin/codex.js"}},
		{nm + "/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex", []string{"codex"}},
		{"/usr/bin/node", []string{"node", nm + "/@google/gemini-cli/dist/index.js"}},
		{"/usr/bin/node", []string{"node", nm + "/@google/gemini-cli/bundle/gemini.js"}},
		// Not agents, for either table.
		{"/usr/bin/python3", []string{"claude"}},
		{"/usr/bin/cat", []string{"cat", nm + "/@anthropic-ai/claude-code/cli.js"}},
		{nm + "/@anthropic-ai/claude-code/bin/claude.exe", []string{"ugrep", "-G"}},
		{home + "/.local/share/claude/versions/2.1.332", []string{"rg", "--files"}},
	}
	noFiles := func(string) ([]byte, error) { return nil, errors.New("no package.json in this test") }
	for _, c := range cases {
		kernel := sensor.Recognise(c.exe, c.argv)
		m, ok := Identify(Recognisers(), c.exe, c.argv, noFiles)
		if !ok {
			m.Kind = sensor.AgentNone
		}
		if kernel != m.Kind {
			t.Errorf("%s %q: sensor says %q, agent says %q", c.exe, c.argv, kernel, m.Kind)
		}
	}
}
