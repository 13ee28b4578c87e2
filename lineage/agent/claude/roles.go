package claude

import (
	"strconv"
	"strings"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
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

// directChild decides the role of a direct child of the agent process:
// this is where roles are decided, everything below inherits. o.mu is held.
func (o *Observer) directChild(s *session, x *agent.Exec, a *event.Agent) agent.Result {
	argv := x.Proc.Argv
	a.ToolUse = nil
	switch {
	case s.match.Kind == sensor.AgentClaudeCode && isBashTool(argv):
		a.Role = event.RoleTool
		return o.bindTool(s, x.Proc, a, false)
	case s.cfg.isMCP(argv):
		a.Role = event.RoleMCPServer
	case s.cfg.isHook(argv):
		a.Role = event.RoleHook
	default:
		a.Role = roleFromEnv(x, s.rootPID)
	}
	if a.SessionID == "" {
		return agent.Result{Agent: a, Resolve: o.resolveSession(s)}
	}
	return agent.Result{Agent: a}
}
