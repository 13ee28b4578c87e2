package claude

import (
	"strconv"
	"strings"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
)

// isBashTool reports the Claude Code Bash tool's process shape.
func isBashTool(argv []string) bool {
	if _, ok := BashToolPayload(argv); !ok {
		return false
	}
	// The tool's script always sources the session's shell snapshot or
	// records the working directory afterwards; a user's own `bash -c
	// "eval ..."` run by the agent process is not a tool call.
	return strings.Contains(argv[2], "/shell-snapshots/snapshot-") || strings.Contains(argv[2], "pwd -P >| ")
}

// roleFromEnv classifies a child of Claude Code that matched no argv rule
// by the variables Claude Code sets for it (observed on 2.1.x): tool
// processes get AI_AGENT=claude-code_<v>_agent, MCP servers get
// CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS, hooks get AI_AGENT=..._harness with
// CLAUDE_PID. Its own helpers (environment probe, shell snapshot) get none
// of the latter and are descendants.
func roleFromEnv(x *agent.Exec, rootPID uint32) string {
	if x.Env == nil {
		return event.RoleDescendant
	}
	if _, ok := x.Env("CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS"); ok {
		return event.RoleMCPServer
	}
	ai, _ := x.Env("AI_AGENT")
	// CLAUDE_PID must name this agent: a nested agent's helpers inherit
	// the outer agent's.
	pid, hasPID := x.Env("CLAUDE_PID")
	hasPID = hasPID && (rootPID == 0 || pid == strconv.FormatUint(uint64(rootPID), 10))
	switch {
	case strings.HasSuffix(ai, "_agent") && hasPID:
		return event.RoleTool
	case strings.HasSuffix(ai, "_harness") && hasPID:
		return event.RoleHook
	}
	return event.RoleDescendant
}
