package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lineaged/lineaged/sensor/procfs"
)

// hookFacts is what the caller check reads of live processes (/proc).
type hookFacts interface {
	Proc(pid uint32) (*procfs.Proc, error)
	Env(pid uint32, key string) (string, bool, error)
}

// hookShells are the shells Claude Code runs a hook command with
// (/bin/sh -c <command>).
var hookShells = map[string]bool{"sh": true, "dash": true, "bash": true}

// verifyHookCaller checks that pid, a process the kernel files under the
// agent session rooted at rootPID, is a hook of that very session naming
// its own session: the agent process itself started it, directly or as
// `sh -c <command>` (a Bash tool's process, or anything below it, cannot
// be a child of the agent root), and the agent gave it the session's own
// ids: CLAUDE_PID naming the root and CLAUDE_CODE_SESSION_ID equal to the
// session the hook input names. A tool call's process that runs the hook
// binary itself, or a hook claiming another session's calls, is refused.
func verifyHookCaller(facts hookFacts, pid, rootPID uint32, sessionID string) error {
	p, err := facts.Proc(pid)
	if err != nil {
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	if p.PPID != rootPID {
		parent, err := facts.Proc(p.PPID)
		if err != nil {
			return fmt.Errorf("pid %d: parent %d: %w", pid, p.PPID, err)
		}
		if parent.PPID != rootPID || !isHookShell(parent.Argv) {
			return fmt.Errorf("pid %d was not started by the agent process %d (parent %d %q)", pid, rootPID, p.PPID, firstArg(parent.Argv))
		}
		// The agent runs its Bash tool calls as `bash -c <script>` too:
		// it marks what it starts for hooks AI_AGENT=..._harness, tool
		// processes ..._agent, in the shell's own environment, which
		// what runs below it cannot rewrite.
		if ai, _, err := facts.Env(parent.PID, "AI_AGENT"); err != nil || !strings.HasSuffix(ai, "_harness") {
			return fmt.Errorf("pid %d: its shell %d is not one the agent started for a hook (AI_AGENT %q)", pid, parent.PID, ai)
		}
	}
	claudePID, ok, err := facts.Env(pid, "CLAUDE_PID")
	if err != nil {
		return fmt.Errorf("pid %d: environment: %w", pid, err)
	}
	if !ok || claudePID != strconv.FormatUint(uint64(rootPID), 10) {
		return fmt.Errorf("pid %d: CLAUDE_PID %q does not name the agent process %d", pid, claudePID, rootPID)
	}
	own, ok, err := facts.Env(pid, "CLAUDE_CODE_SESSION_ID")
	if err != nil {
		return fmt.Errorf("pid %d: environment: %w", pid, err)
	}
	if !ok || own == "" {
		return fmt.Errorf("pid %d: the agent gave it no session id", pid)
	}
	if !strings.EqualFold(own, sessionID) {
		return fmt.Errorf("pid %d belongs to session %s, not to the session %s it names", pid, own, sessionID)
	}
	return nil
}

// isHookShell reports `sh -c <command>`, the shape Claude Code runs hook
// commands in, and not the Bash tool's script (which evals the command).
func isHookShell(argv []string) bool {
	return len(argv) == 3 && hookShells[filepath.Base(argv[0])] && argv[1] == "-c" && !strings.Contains(argv[2], "&& eval ")
}

func firstArg(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	return argv[0]
}
