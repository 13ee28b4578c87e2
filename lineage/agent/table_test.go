package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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

func TestDefaultTableFitsTheKernel(t *testing.T) {
	tab, err := NewTable(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tab.Kernel()); n == 0 || n > sensor.MaxRecognisers {
		t.Errorf("%d kernel rules", n)
	}
	if err := sensor.ValidateRecognisers(tab.Kernel()); err != nil {
		t.Error(err)
	}
}

func TestInstallForms(t *testing.T) {
	const home = "/home/dev"
	const nm = "/usr/lib/node_modules"
	fs := fakeFS{
		nm + "/@anthropic-ai/claude-code/package.json":                    `{"name":"@anthropic-ai/claude-code","version":"2.1.332"}`,
		nm + "/@anthropic-ai/claude-code-linux-x64/package.json":          `{"name":"@anthropic-ai/claude-code-linux-x64","version":"2.1.331"}`,
		"/opt/legacy/node_modules/@anthropic-ai/claude-code/package.json": `{"name":"@anthropic-ai/claude-code","version":"1.0.128"}`,
		"/app/node_modules/@anthropic-ai/claude-agent-sdk/package.json":   `{"name":"@anthropic-ai/claude-agent-sdk","version":"0.1.9"}`,
		nm + "/@openai/codex/package.json":                                `{"name":"@openai/codex","version":"0.58.0"}`,
		nm + "/@google/gemini-cli/package.json":                           `{"name":"@google/gemini-cli","version":"0.15.1"}`,
		"/evil/node_modules/@anthropic-ai/claude-code/package.json":       `{"name":"@anthropic-ai/claude-code","version":"` + strings.Repeat("9", 100) + `"}`,
		"/wrong/node_modules/@anthropic-ai/claude-code/package.json":      `{"name":"left-pad","version":"1.0.0"}`,
		"/odd/node_modules/@anthropic-ai/claude-code/package.json":        `{"name":"@anthropic-ai/claude-code","version":"1.0\n\"x"}`,
	}
	claude, codex, gemini := sensor.AgentClaudeCode, sensor.AgentCodex, sensor.AgentGemini
	for _, c := range []struct {
		name    string
		exe     string
		argv    []string
		kind    sensor.AgentKind
		form    string
		version string
	}{
		{"native", home + "/.local/share/claude/versions/2.1.332", []string{"claude", "-p", "hi"}, claude, "native", "2.1.332"},
		{"native deleted after upgrade", home + "/.local/share/claude/versions/2.1.300 (deleted)", []string{"claude"}, claude, "native", "2.1.300"},
		// npm: the bin shim symlinks to claude.exe, a hard link of the
		// platform package's binary (observed: argv[0] is the shim path).
		{"npm claude.exe", nm + "/@anthropic-ai/claude-code/bin/claude.exe", []string{nm + "/.bin/claude", "-p", "x"}, claude, "npm", "2.1.332"},
		{"npm bin", nm + "/@anthropic-ai/claude-code/bin/claude", []string{"claude"}, claude, "npm", "2.1.332"},
		{"npm in a project", "/srv/app/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"claude"}, claude, "npm", ""},
		{"npm hostile version", "/evil/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"claude"}, claude, "npm", ""},
		{"npm foreign package.json", "/wrong/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"claude"}, claude, "npm", ""},
		{"npm odd version", "/odd/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"claude"}, claude, "npm", ""},
		{"platform x64", nm + "/@anthropic-ai/claude-code-linux-x64/claude", []string{"claude"}, claude, "npm-platform", "2.1.331"},
		{"platform arm64 musl", nm + "/@anthropic-ai/claude-code-linux-arm64-musl/claude", []string{"claude"}, claude, "npm-platform", ""},
		{"agent sdk platform", "/app/node_modules/@anthropic-ai/claude-agent-sdk-linux-x64/claude", []string{"claude"}, claude, "sdk", ""},
		{"python sdk bundled", "/venv/lib/python3.12/site-packages/claude_agent_sdk/_bundled/claude", []string{"claude"}, claude, "sdk", ""},
		{"vscode", home + "/.vscode/extensions/anthropic.claude-code-2.1.330-linux-x64/resources/native-binary/claude", []string{"claude"}, claude, "vscode", "2.1.330"},
		{"vscode server", home + "/.vscode-server/extensions/anthropic.claude-code-2.0.1/resources/native-binary/claude", []string{"claude"}, claude, "vscode", "2.0.1"},
		{"legacy cli.js", "/usr/bin/node", []string{"node", "/opt/legacy/node_modules/@anthropic-ai/claude-code/cli.js", "-p"}, claude, "node-cli", "1.0.128"},
		{"legacy cli.js with node flags", "/usr/bin/node", []string{"node", "--no-warnings", "--enable-source-maps", nm + "/@anthropic-ai/claude-code/cli.js"}, claude, "node-cli", "2.1.332"},
		{"npm bin link via node", home + "/.nvm/versions/node/v22.1.0/bin/node", []string{"node", home + "/.nvm/versions/node/v22.1.0/bin/claude"}, claude, "npm", ""},
		{"agent sdk cli.js", "/usr/bin/node", []string{"node", "/app/node_modules/@anthropic-ai/claude-agent-sdk/cli.js"}, claude, "sdk", "0.1.9"},
		{"cli.js via bun", home + "/.bun/bin/bun", []string{"bun", nm + "/@anthropic-ai/claude-code/cli.js"}, claude, "node-cli", "2.1.332"},
		{"codex js", "/usr/bin/node", []string{"node", nm + "/@openai/codex/bin/codex.js", "exec", "x"}, codex, "npm", "0.58.0"},
		{"codex native", nm + "/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex", []string{"codex"}, codex, "npm", "0.58.0"},
		{"codex platform native", nm + "/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/codex/codex", []string{"codex"}, codex, "npm", ""},
		{"codex bin link", "/usr/bin/node", []string{"node", "/usr/bin/codex", "exec"}, codex, "npm", ""},
		{"gemini dist", "/usr/bin/node", []string{"node", nm + "/@google/gemini-cli/dist/index.js", "-p", "x"}, gemini, "npm", "0.15.1"},
		{"gemini bundle", "/usr/bin/node", []string{"node", nm + "/@google/gemini-cli/bundle/gemini.js"}, gemini, "npm", "0.15.1"},
		{"gemini bin link", "/usr/bin/node", []string{"node", "/usr/local/bin/gemini"}, gemini, "npm", ""},
	} {
		m, ok := DefaultTable().Identify(c.exe, c.argv, fs.read)
		if !ok {
			t.Errorf("%s: %s %q not recognised", c.name, c.exe, c.argv)
			continue
		}
		if m.Kind != c.kind || m.Name != c.kind.String() || m.Form != c.form || m.Version != c.version {
			t.Errorf("%s: got %+v, want %v form %s version %q", c.name, m, c.kind, c.form, c.version)
		}
	}
}

func TestNotAgents(t *testing.T) {
	const nm = "/usr/lib/node_modules"
	never := func(string) ([]byte, error) { return nil, errors.New("no package.json in this test") }
	for _, c := range []struct {
		name string
		exe  string
		argv []string
	}{
		{"comm alone", "/usr/bin/python3", []string{"claude"}},
		{"name alone", "/tmp/claude", []string{"claude", "-p", "x"}},
		{"versions dir elsewhere", "/opt/claude/versions/2.1", []string{"claude"}},
		{"cat of cli.js", "/usr/bin/cat", []string{"cat", nm + "/@anthropic-ai/claude-code/cli.js"}},
		{"python of cli.js", "/usr/bin/python3", []string{"python3", nm + "/@anthropic-ai/claude-code/cli.js"}},
		{"node other script", "/usr/bin/node", []string{"node", "/srv/app/server.js"}},
		{"node with no script", "/usr/bin/node", []string{"node"}},
		{"node -e", "/usr/bin/node", []string{"node", "-e", "1"}},
		{"node script in 5th arg", "/usr/bin/node", []string{"node", "-a", "-b", "-c", nm + "/@anthropic-ai/claude-code/cli.js"}},
		{"bash -c claude", "/bin/bash", []string{"bash", "-c", "claude"}},
		{"ripgrep vendored", nm + "/@anthropic-ai/claude-code/vendor/ripgrep/x64-linux/rg", []string{"rg"}},
		// Claude Code re-executes itself as its embedded grep (observed in
		// a Bash tool running grep): a helper, not a new session.
		{"claude.exe as ugrep", nm + "/@anthropic-ai/claude-code/bin/claude.exe", []string{"ugrep", "-G"}},
		{"native as rg", "/root/.local/share/claude/versions/2.1.332", []string{"rg", "--files"}},
		{"long argv[0] hides the script", "/usr/bin/node", []string{strings.Repeat("n", 300), nm + "/@anthropic-ai/claude-code/cli.js"}},
		{"empty", "", nil},
	} {
		tab := DefaultTable()
		if m, ok := tab.Identify(c.exe, c.argv, never); ok {
			t.Errorf("%s: recognised as %+v", c.name, m)
		}
		if tab.Recognise(c.exe, c.argv) != sensor.AgentNone || tab.IsAgent(c.exe, c.argv) {
			t.Errorf("%s: Recognise says agent", c.name)
		}
	}
}

// The kernel decides session membership with the compiled rules; lineage
// names the agent with Identify. They must agree on what is an agent, or a
// session would be tracked but unnamed (or named but never tracked). For
// every row, an exec built from its own matchers is recognised by both as
// that row's agent, and each of its argv[0] vetoes stops both.
func TestEveryRuleAgreesWithKernelRules(t *testing.T) {
	tab := DefaultTable()
	kernel := tab.Kernel()
	for _, r := range tab.Rules() {
		exe, argv := execFor(r)
		k := sensor.RecogniseWith(kernel, exe, argv)
		m, ok := tab.Identify(exe, argv, nil)
		if k != r.Agent || !ok || m.Kind != k {
			t.Errorf("%s: %s %q: kernel rules %v, Identify %+v %v", r.Name, exe, argv, k, m, ok)
		}
		for _, v := range r.NotArgv0 {
			vargv := append([]string{v}, argv[1:]...)
			if k := sensor.RecogniseWith(kernel, exe, vargv); k != sensor.AgentNone {
				t.Errorf("%s: veto %q: kernel rules say %v", r.Name, v, k)
			}
			if m, ok := tab.Identify(exe, vargv, nil); ok {
				t.Errorf("%s: veto %q: Identify says %+v", r.Name, v, m)
			}
			if !tab.Vetoed(exe, vargv) || tab.IsAgent(exe, vargv) {
				t.Errorf("%s: veto %q not reported", r.Name, v)
			}
		}
	}
}

// execFor builds an exec that a rule's matchers hold for: an executable
// path with each matched component in place, and for a script rule, the
// script as argv[1].
func execFor(r Rule) (string, []string) {
	depth := 0
	for _, m := range r.Exe {
		depth = max(depth, m.Level+1)
	}
	comps := make([]string, depth)
	for i := range comps {
		comps[i] = "d"
	}
	for _, m := range r.Exe {
		comps[m.Level] = m.Text
		if m.Op == sensor.HasPrefix {
			comps[m.Level] += "x"
		}
	}
	var b strings.Builder
	for i := depth - 1; i >= 0; i-- {
		b.WriteString("/" + comps[i])
	}
	argv := []string{comps[0]}
	if r.Script != "" {
		argv = append(argv, "/srv"+r.Script)
	}
	return b.String(), argv
}

// The real npm layout, as `npm install @anthropic-ai/claude-code` leaves
// it: version read from the package.json beside the binary.
func TestIdentifyNpmTree(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "node_modules", "@anthropic-ai", "claude-code")
	if err := os.MkdirAll(filepath.Join(pkg, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "package.json"), []byte(`{"name":"@anthropic-ai/claude-code","version":"2.1.332"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(pkg, "bin", "claude.exe")
	m, ok := DefaultTable().Identify(exe, []string{filepath.Join(dir, "node_modules", ".bin", "claude")}, ReadSmallFile)
	if !ok || m.Version != "2.1.332" || m.Form != "npm" || m.Rule != "claude-code npm" {
		t.Fatalf("got %+v %v", m, ok)
	}
}

func TestNewTableErrors(t *testing.T) {
	ok := sensor.Recogniser{Name: "x", Agent: sensor.AgentCodex, Exe: []sensor.Matcher{eq(0, "x")}}
	for name, c := range map[string]struct {
		rules []Rule
		want  string
	}{
		"no form":        {[]Rule{{Recogniser: ok}}, "no install form"},
		"unnamed agent":  {[]Rule{{Recogniser: sensor.Recogniser{Name: "x", Agent: 9, Exe: ok.Exe}, Form: "f"}}, "no name"},
		"bad matcher":    {[]Rule{{Recogniser: sensor.Recogniser{Name: "x", Agent: sensor.AgentCodex}, Form: "f"}}, "exe matchers"},
		"version level":  {[]Rule{{Recogniser: ok, Form: "f", Version: fromComponent(9, "", "")}}, "version level"},
		"too many rules": {make([]Rule, sensor.MaxRecognisers+1), "at most"},
	} {
		_, err := NewTable(c.rules)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to mention %q", name, err, c.want)
		}
	}
}

func TestKindOf(t *testing.T) {
	tab := DefaultTable()
	if tab.KindOf("claude-code") != sensor.AgentClaudeCode || tab.KindOf("gemini-cli") != sensor.AgentGemini || tab.KindOf("x") != sensor.AgentNone {
		t.Error("KindOf")
	}
}
