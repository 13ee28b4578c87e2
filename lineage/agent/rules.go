package agent

import "github.com/lineaged/lineaged/sensor"

// DefaultRules is the built-in agent table: every Claude Code install form,
// OpenAI Codex CLI and Gemini CLI. It returns a fresh slice each call.
//
// Adding an agent, or a new install form of one, is adding rows here: the
// kernel then starts a session at its exec, the /proc seed finds it running,
// and lineage names it with its form and version. Nothing else needs to
// know. A new agent (rather than a new form of one) also takes a
// sensor.AgentKind, the byte the kernel tags its sessions with. An agent
// whose roles or tool calls lineage should learn (as Claude Code's from its
// transcript) also gets an integration package beside lineage/agent/claude,
// implementing Integration, registered with the Router in cmd/lineaged.
//
// All agents' rows live in this one list, not in their integration
// packages: they share the kernel map's MaxRecognisers slots and its
// first-match order (exe rules, then script rules), which only the whole
// list shows, and agents without an integration need rows too.
func DefaultRules() []Rule {
	const nm = "@anthropic-ai"
	// Claude Code runs its own executable as its embedded search tools
	// (argv[0] "ugrep", "rg", ...) inside tool calls: not a new session.
	claudeHelpers := []string{"ugrep", "rg", "bfs", "grep", "find"}
	claude := func(name, form string, v Version, exe ...sensor.Matcher) Rule {
		return Rule{
			Recogniser: sensor.Recogniser{Name: name, Agent: sensor.AgentClaudeCode, Exe: exe, NotArgv0: claudeHelpers},
			Form:       form, Version: v,
		}
	}
	t := []Rule{
		// ~/.local/share/claude/versions/<version> (the native installer;
		// ~/.local/bin/claude is a symlink to it, resolved by the kernel).
		claude("claude-code native", "native", fromComponent(0, "", ""),
			eq(1, "versions"), eq(2, "claude"), eq(3, "share"), eq(4, ".local")),
		// npm i -g @anthropic-ai/claude-code: the package's native binary
		// (a hard link of the platform package's), its package.json one up.
		claude("claude-code npm", "npm", fromPackage("../package.json", nm+"/claude-code"),
			eq(0, "claude.exe"), eq(1, "bin"), eq(2, "claude-code"), eq(3, nm)),
		claude("claude-code npm bin", "npm", fromPackage("../package.json", nm+"/claude-code"),
			eq(0, "claude"), eq(1, "bin"), eq(2, "claude-code"), eq(3, nm)),
		// Platform packages: @anthropic-ai/claude-code-linux-{x64,arm64}[-musl]/claude.
		claude("claude-code platform package", "npm-platform", fromPackage("package.json", ""),
			eq(0, "claude"), prefix(1, "claude-code-linux-"), eq(2, nm)),
		// Agent SDK: its platform packages and the Python SDK's bundled CLI.
		claude("claude-agent-sdk platform package", "sdk", fromPackage("package.json", ""),
			eq(0, "claude"), prefix(1, "claude-agent-sdk-linux-"), eq(2, nm)),
		claude("claude-agent-sdk python bundled", "sdk", fromPackage("package.json", ""),
			eq(0, "claude"), eq(1, "_bundled"), eq(2, "claude_agent_sdk")),
		// VS Code (and forks, remote servers) extension:
		// .vscode*/extensions/anthropic.claude-code-<v>[-<platform>]/resources/native-binary/claude.
		claude("claude-code vscode extension", "vscode", fromComponent(3, "anthropic.claude-code-", "-"),
			eq(0, "claude"), eq(1, "native-binary"), eq(2, "resources"), prefix(3, "anthropic.claude-code-")),
		// Codex's native binary: @openai/codex[-linux-*]/vendor/<triple>/codex/codex.
		{Recogniser: sensor.Recogniser{Name: "codex native", Agent: sensor.AgentCodex, Exe: []sensor.Matcher{
			eq(0, "codex"), eq(1, "codex"), eq(3, "vendor"), prefix(4, "codex"), eq(5, "@openai")}},
			Form: "npm", Version: fromPackage("../../../package.json", "")},
	}
	// Script launchers, for each JavaScript runtime. A #! script's exec
	// ends with the interpreter as the image, and argv carries the script
	// path as invoked: the package path, or the npm bin symlink (bin/claude)
	// which the kernel cannot resolve from a string, so its version is
	// unknown.
	for _, rt := range []string{"node", "bun"} {
		exe := []sensor.Matcher{prefix(0, rt)}
		for _, l := range []struct {
			name   string
			agent  sensor.AgentKind
			script string
			form   string
			v      Version
		}{
			{"claude-code cli.js", sensor.AgentClaudeCode, "/" + nm + "/claude-code/cli.js", "node-cli", fromPackage("package.json", "")},
			{"claude-agent-sdk cli.js", sensor.AgentClaudeCode, "/" + nm + "/claude-agent-sdk/cli.js", "sdk", fromPackage("package.json", "")},
			{"claude-code npm bin link", sensor.AgentClaudeCode, "/bin/claude", "npm", Version{}},
			{"codex codex.js", sensor.AgentCodex, "/@openai/codex/bin/codex.js", "npm", fromPackage("../package.json", "")},
			{"codex npm bin link", sensor.AgentCodex, "/bin/codex", "npm", Version{}},
			{"gemini-cli dist", sensor.AgentGemini, "/@google/gemini-cli/dist/index.js", "npm", fromPackage("../package.json", "")},
			{"gemini-cli bundle", sensor.AgentGemini, "/@google/gemini-cli/bundle/gemini.js", "npm", fromPackage("../package.json", "")},
			{"gemini-cli npm bin link", sensor.AgentGemini, "/bin/gemini", "npm", Version{}},
		} {
			t = append(t, Rule{
				Recogniser: sensor.Recogniser{Name: l.name + " via " + rt, Agent: l.agent, Exe: exe, Script: l.script},
				Form:       l.form, Version: l.v,
			})
		}
	}
	return t
}

func eq(level int, text string) sensor.Matcher {
	return sensor.Matcher{Op: sensor.Equals, Level: level, Text: text}
}

func prefix(level int, text string) sensor.Matcher {
	return sensor.Matcher{Op: sensor.HasPrefix, Level: level, Text: text}
}
