package posture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultManagedSettings is Claude Code's managed settings file on Linux,
// which users cannot override: where `lineaged hook install` puts the hook.
const DefaultManagedSettings = "/etc/claude-code/managed-settings.json"

// AgentHooks requires Claude Code's managed settings to run lineaged's
// hook before every tool call (PreToolUse, matcher "*" or empty), with
// hooks not disabled (disableAllHooks): without it the agent's tool calls
// are neither decided nor tied exactly (docs/hooks.md). The detail names
// the hook events lineaged answers and the file's SHA-256, so a sample
// shows which version of the settings was in force.
type AgentHooks struct {
	// Path is the managed settings file; empty means
	// DefaultManagedSettings.
	Path string
}

// Name implements Check.
func (AgentHooks) Name() string { return CheckAgentHooks }

// Run implements Check.
func (c AgentHooks) Run(_ context.Context, root Root) Result {
	path := c.Path
	if path == "" {
		path = DefaultManagedSettings
	}
	b, err := os.ReadFile(root.Path(path))
	if errors.Is(err, os.ErrNotExist) {
		return fail("%s does not exist: no agent hooks installed (lineaged hook install)", path)
	}
	if err != nil {
		return failErr(err)
	}
	var s struct {
		DisableAllHooks bool                   `json:"disableAllHooks"`
		Hooks           map[string][]hookMatch `json:"hooks"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return fail("%s: not valid settings JSON: %v", path, err)
	}
	sum := sha256.Sum256(b)
	short := hex.EncodeToString(sum[:6])
	if s.DisableAllHooks {
		return fail("%s (sha256 %s…) disables all hooks (disableAllHooks)", path, short)
	}
	var events []string
	for _, ev := range []string{"PreToolUse", "PostToolUse", "PostToolUseFailure"} {
		if slices.ContainsFunc(s.Hooks[ev], hookMatch.runsLineaged) {
			events = append(events, ev)
		}
	}
	if !slices.Contains(events, "PreToolUse") {
		return fail("%s (sha256 %s…) runs no lineaged hook before every tool call (PreToolUse)", path, short)
	}
	return ok("%s (sha256 %s…) runs lineaged's hook on %s", path, short, strings.Join(events, ", "))
}

// hookMatch is one entry of a settings file's hooks.<Event> list.
type hookMatch struct {
	Matcher string `json:"matcher"`
	Hooks   []struct {
		Type    string `json:"type"`
		Command string `json:"command"`
	} `json:"hooks"`
}

// runsLineaged: the entry matches every tool and runs `lineaged hook`.
func (m hookMatch) runsLineaged() bool {
	if m.Matcher != "" && m.Matcher != "*" {
		return false
	}
	for _, h := range m.Hooks {
		if h.Type == "command" && IsLineagedHook(h.Command) {
			return true
		}
	}
	return false
}

// IsLineagedHook reports a hook command that runs lineaged's hook: the
// lineaged-hook binary, or a lineaged binary whose first argument is
// "hook" (the program optionally single-quoted, as hook install writes
// it).
func IsLineagedHook(cmd string) bool {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return false
	}
	switch filepath.Base(strings.Trim(f[0], `'"`)) {
	case "lineaged-hook":
		return true
	case "lineaged":
		return len(f) >= 2 && f[1] == "hook"
	}
	return false
}
