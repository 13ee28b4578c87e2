package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lineaged/lineaged/sensor"
)

// fakeFS serves package.json files by path.
type fakeFS map[string]string

func (f fakeFS) read(p string) ([]byte, error) {
	if s, ok := f[p]; ok {
		return []byte(s), nil
	}
	return nil, os.ErrNotExist
}

func TestRecognisers(t *testing.T) {
	fs := fakeFS{
		"/usr/lib/node_modules/@anthropic-ai/claude-code/package.json":           `{"name":"@anthropic-ai/claude-code","version":"2.1.332"}`,
		"/usr/lib/node_modules/@anthropic-ai/claude-code-linux-x64/package.json": `{"name":"@anthropic-ai/claude-code-linux-x64","version":"2.1.332"}`,
		"/opt/legacy/node_modules/@anthropic-ai/claude-code/package.json":        `{"name":"@anthropic-ai/claude-code","version":"1.0.128"}`,
		"/app/node_modules/@anthropic-ai/claude-agent-sdk/package.json":          `{"name":"@anthropic-ai/claude-agent-sdk","version":"0.1.9"}`,
		"/usr/lib/node_modules/@openai/codex/package.json":                       `{"name":"@openai/codex","version":"0.58.0"}`,
		"/usr/lib/node_modules/@google/gemini-cli/package.json":                  `{"name":"@google/gemini-cli","version":"0.15.1"}`,
		"/evil/node_modules/@anthropic-ai/claude-code/package.json":              `{"name":"@anthropic-ai/claude-code","version":"` + string(make([]byte, 100)) + `"}`,
	}
	cases := []struct {
		exe     string
		argv    []string
		kind    sensor.AgentKind
		form    string
		version string
	}{
		{"/root/.local/share/claude/versions/2.1.332", []string{"claude"}, sensor.AgentClaudeCode, "native", "2.1.332"},
		// npm: the bin shim symlinks to claude.exe, a hard link of the
		// platform package's binary (observed: argv[0] is the shim path).
		{"/usr/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"/usr/bin/claude", "-p", "x"}, sensor.AgentClaudeCode, "npm", "2.1.332"},
		{"/usr/lib/node_modules/@anthropic-ai/claude-code-linux-x64/claude", []string{"claude"}, sensor.AgentClaudeCode, "npm-platform", "2.1.332"},
		{"/home/u/.vscode/extensions/anthropic.claude-code-2.1.330-linux-x64/resources/native-binary/claude", []string{"claude"}, sensor.AgentClaudeCode, "vscode", "2.1.330"},
		{"/home/u/.vscode-server/extensions/anthropic.claude-code-2.0.1/resources/claude-code/claude", []string{"claude"}, sensor.AgentClaudeCode, "vscode", "2.0.1"},
		{"/usr/lib/python3/site-packages/claude_agent_sdk/_bundled/claude", []string{"claude"}, sensor.AgentClaudeCode, "sdk", ""},
		{"/usr/bin/node", []string{"node", "--no-warnings", "/opt/legacy/node_modules/@anthropic-ai/claude-code/cli.js", "-p", "x"}, sensor.AgentClaudeCode, "node-cli", "1.0.128"},
		{"/usr/bin/node", []string{"node", "/app/node_modules/@anthropic-ai/claude-agent-sdk/cli.js"}, sensor.AgentClaudeCode, "sdk", "0.1.9"},
		{"/evil/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"claude"}, sensor.AgentClaudeCode, "npm", ""},
		{"/usr/lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex", []string{"codex"}, sensor.AgentCodex, "npm", "0.58.0"},
		{"/usr/bin/node", []string{"node", "/usr/lib/node_modules/@openai/codex/bin/codex.js", "exec", "x"}, sensor.AgentCodex, "npm", "0.58.0"},
		{"/usr/local/bin/codex", []string{"codex"}, sensor.AgentCodex, "native", ""},
		{"/usr/bin/node", []string{"node", "/usr/lib/node_modules/@google/gemini-cli/dist/index.js", "-p", "x"}, sensor.AgentGemini, "npm", "0.15.1"},
	}
	for _, c := range cases {
		m, ok := Identify(Recognisers(), c.exe, c.argv, fs.read)
		if !ok {
			t.Errorf("%s %q not recognised", c.exe, c.argv)
			continue
		}
		if m.Kind != c.kind || m.Form != c.form || m.Version != c.version || m.Name != c.kind.String() {
			t.Errorf("%s: got %+v, want kind %v form %s version %q", c.exe, m, c.kind, c.form, c.version)
		}
	}
}

func TestRecognisersReject(t *testing.T) {
	never := func(string) ([]byte, error) { return nil, errors.New("no") }
	for _, c := range []struct {
		exe  string
		argv []string
	}{
		// Claude Code re-executes itself as its embedded grep (observed in
		// a Bash tool running grep): a helper, not a new session.
		{"/tmp/cc/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"ugrep", "-G", "x"}},
		{"/root/.local/share/claude/versions/2.1.332", []string{"rg", "--files"}},
		// Names alone are not enough.
		{"/usr/local/bin/claude-helper", []string{"claude"}},
		{"/tmp/claude", []string{"claude", "-p", "x"}},
		{"/usr/bin/node", []string{"node", "/tmp/cli.js"}},
		{"/usr/bin/node", []string{"node"}},
		{"/usr/bin/python3", []string{"python3", "/x/@anthropic-ai/claude-code/cli.js"}},
		{"/bin/bash", []string{"bash", "-c", "claude"}},
		{"", nil},
	} {
		if m, ok := Identify(Recognisers(), c.exe, c.argv, never); ok {
			t.Errorf("%s %q recognised as %+v", c.exe, c.argv, m)
		}
	}
}

// The real npm layout, as `npm install @anthropic-ai/claude-code` leaves
// it: version read from the package.json beside the binary.
func TestRecogniseNpmTree(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "node_modules", "@anthropic-ai", "claude-code")
	os.MkdirAll(filepath.Join(pkg, "bin"), 0o755)
	os.WriteFile(filepath.Join(pkg, "package.json"), []byte(`{"name":"@anthropic-ai/claude-code","version":"2.1.332"}`), 0o644)
	exe := filepath.Join(pkg, "bin", "claude.exe")
	m, ok := Identify(Recognisers(), exe, []string{filepath.Join(dir, "node_modules", ".bin", "claude")}, ReadSmallFile)
	if !ok || m.Version != "2.1.332" || m.Form != "npm" {
		t.Fatalf("got %+v %v", m, ok)
	}
	if !IsAgentExec(exe, []string{"claude"}) || IsAgentExec(exe, []string{"ugrep"}) {
		t.Error("IsAgentExec")
	}
}
