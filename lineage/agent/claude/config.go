package claude

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lineaged/lineaged/lineage/agent"
)

// claudeConfig is what the observer learns from a Claude Code root's argv
// and config files: the stdio MCP servers it will spawn and the hook
// commands it will run, so their processes get their roles.
type claudeConfig struct {
	mcp   [][]string // command + args of each stdio MCP server
	hooks []string   // hook command strings (run as /bin/sh -c <command>)
	// sessionID from --session-id / --resume / -r, provisional.
	sessionID string
}

// valueFlags are Claude Code options that take a value: the value is not a
// prompt. "--mcp-config" takes one or more.
var valueFlags = map[string]bool{
	"--model": true, "--output-format": true, "--input-format": true, "--settings": true,
	"--session-id": true, "--permission-mode": true, "--add-dir": true, "--allowedTools": true,
	"--allowed-tools": true, "--disallowedTools": true, "--disallowed-tools": true,
	"--append-system-prompt": true, "--system-prompt": true, "--fallback-model": true,
	"--max-turns": true, "--agents": true, "--setting-sources": true, "--plugin-dir": true,
	"--tools": true, "--agent": true, "--json-schema": true, "--max-budget-usd": true,
	"--betas": true, "--permission-prompt-tool": true, "--mcp-config": true,
	"--system-prompt-file": true, "--append-system-prompt-file": true,
}

// parseClaudeArgv reads the options that matter for roles and sessions.
// read loads --mcp-config / --settings files; home, configDir (~/.claude
// or $CLAUDE_CONFIG_DIR) and cwd locate the default settings and MCP files.
// Unreadable or malformed files are skipped: the roles then fall back to the
// environment of the children.
func parseClaudeArgv(argv []string, cwd, home, configDir string, read agent.ReadFileFunc) claudeConfig {
	c, mcpArgs, settingsArgs := scanClaudeArgv(argv)
	c.loadFiles(mcpArgs, settingsArgs, cwd, home, configDir, read)
	return c
}

// scanClaudeArgv reads the session id, and the --mcp-config and --settings
// values (JSON or file names), from a Claude Code argv.
func scanClaudeArgv(argv []string) (c claudeConfig, mcpArgs, settingsArgs []string) {
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		name, val, hasVal := strings.Cut(a, "=")
		if !strings.HasPrefix(a, "--") {
			hasVal = false
			name = a
		}
		next := func() (string, bool) {
			if hasVal {
				return val, true
			}
			if i+1 < len(argv) {
				i++
				return argv[i], true
			}
			return "", false
		}
		switch name {
		case "--session-id", "--resume", "-r":
			if name != "--session-id" && !hasVal && (i+1 >= len(argv) || !isUUID(argv[i+1])) {
				continue // --resume without a value opens a picker
			}
			if v, ok := next(); ok && isUUID(v) {
				c.sessionID = v
			}
		case "--mcp-config":
			for {
				v, ok := next()
				if !ok {
					break
				}
				mcpArgs = append(mcpArgs, v)
				hasVal = false
				if i+1 >= len(argv) || strings.HasPrefix(argv[i+1], "-") || !looksLikeConfig(argv[i+1]) {
					break
				}
			}
		case "--settings":
			if v, ok := next(); ok {
				settingsArgs = append(settingsArgs, v)
			}
		}
	}
	return c, mcpArgs, settingsArgs
}

// loadFiles collects the MCP servers and hook commands from the files and
// JSON given on the command line and from the default config locations.
func (c *claudeConfig) loadFiles(mcpArgs, settingsArgs []string, cwd, home, configDir string, read agent.ReadFileFunc) {
	load := func(v string) []byte {
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "{") {
			return []byte(v)
		}
		if !filepath.IsAbs(v) && cwd != "" {
			v = filepath.Join(cwd, v)
		}
		b, err := read(v)
		if err != nil {
			return nil
		}
		return b
	}
	for _, v := range mcpArgs {
		c.mcp = append(c.mcp, mcpServers(load(v))...)
	}
	if cwd != "" {
		c.mcp = append(c.mcp, mcpServers(load(filepath.Join(cwd, ".mcp.json")))...)
	}
	// ~/.claude.json, or .claude.json inside $CLAUDE_CONFIG_DIR.
	global := ""
	if home != "" && configDir == filepath.Join(home, ".claude") {
		global = filepath.Join(home, ".claude.json")
	} else if configDir != "" {
		global = filepath.Join(configDir, ".claude.json")
	}
	if global != "" {
		b := load(global)
		c.mcp = append(c.mcp, mcpServers(b)...)
		var g struct {
			Projects map[string]json.RawMessage `json:"projects"`
		}
		if json.Unmarshal(b, &g) == nil && cwd != "" {
			c.mcp = append(c.mcp, mcpServers(g.Projects[cwd])...)
		}
	}
	if configDir != "" {
		settingsArgs = append(settingsArgs, filepath.Join(configDir, "settings.json"))
	}
	if cwd != "" {
		settingsArgs = append(settingsArgs, filepath.Join(cwd, ".claude", "settings.json"), filepath.Join(cwd, ".claude", "settings.local.json"))
	}
	for _, v := range settingsArgs {
		c.hooks = append(c.hooks, hookCommands(load(v))...)
	}
}

func looksLikeConfig(s string) bool {
	return strings.HasPrefix(strings.TrimSpace(s), "{") || strings.HasSuffix(s, ".json")
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// mcpServers extracts stdio servers from {"mcpServers": {name: {command, args}}}.
func mcpServers(b []byte) [][]string {
	if len(b) == 0 {
		return nil
	}
	var doc struct {
		MCPServers map[string]struct {
			Type    string   `json:"type"`
			Command string   `json:"command"`
			Args    []string `json:"args"`
		} `json:"mcpServers"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return nil
	}
	var out [][]string
	for _, s := range doc.MCPServers {
		if s.Command == "" || (s.Type != "" && s.Type != "stdio") {
			continue
		}
		out = append(out, append([]string{s.Command}, s.Args...))
	}
	return out
}

// hookCommands extracts {"hooks": {Event: [{"hooks": [{"type":"command","command":...}]}]}}.
func hookCommands(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	var doc struct {
		Hooks map[string][]struct {
			Hooks []struct {
				Type    string `json:"type"`
				Command string `json:"command"`
			} `json:"hooks"`
		} `json:"hooks"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return nil
	}
	var out []string
	for _, groups := range doc.Hooks {
		for _, g := range groups {
			for _, h := range g.Hooks {
				if h.Command != "" && (h.Type == "" || h.Type == "command") {
					out = append(out, h.Command)
				}
			}
		}
	}
	return out
}

// isMCP reports whether argv is the spawn of one of the configured servers.
// Claude Code spawns the command itself (no shell), so argv is command +
// args; the command may be given by name and resolved through PATH.
func (c *claudeConfig) isMCP(argv []string) bool {
	for _, m := range c.mcp {
		if len(m) != len(argv) || len(m) == 0 {
			continue
		}
		if m[0] != argv[0] && base(m[0]) != base(argv[0]) {
			continue
		}
		same := true
		for i := 1; i < len(m); i++ {
			if m[i] != argv[i] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// isHook reports whether argv is a hook command: Claude Code runs each as
// /bin/sh -c <command>.
func (c *claudeConfig) isHook(argv []string) bool {
	if len(argv) != 3 || argv[1] != "-c" || !isShell(argv[0]) {
		return false
	}
	for _, h := range c.hooks {
		if argv[2] == h {
			return true
		}
	}
	return false
}

// managedSettings is where Claude Code reads its managed settings on
// Linux: a file, and a drop-in directory read in name order.
const (
	managedSettingsFile = "/etc/claude-code/managed-settings.json"
	managedSettingsDir  = "/etc/claude-code/managed-settings.d"
)

// managedHooks returns the hook commands of the managed settings as the
// agent process pid sees them: through its own root (/proc/PID/root), so
// an agent in another mount namespace or container is read right. A hook
// installed there runs as `sh -c <command>` like any other; knowing the
// command makes its role certain even when the hook's environment is gone
// before the sensor reads it.
func managedHooks(procRoot string, pid uint32, read agent.ReadFileFunc) []string {
	if pid == 0 {
		return nil
	}
	root := filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "root")
	var out []string
	if b, err := read(filepath.Join(root, managedSettingsFile)); err == nil {
		out = append(out, hookCommands(b)...)
	}
	if m, err := filepath.Glob(filepath.Join(root, managedSettingsDir, "*.json")); err == nil {
		for _, f := range m {
			if b, err := read(f); err == nil {
				out = append(out, hookCommands(b)...)
			}
		}
	}
	return out
}
