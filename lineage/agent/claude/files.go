package claude

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// File attributes a file event of a session member.
func (o *Observer) File(x agent.File) agent.Result {
	if x.Agent == nil || x.File == nil || x.Proc == nil {
		return agent.Result{}
	}
	a := *x.Agent
	o.mu.Lock()
	defer o.mu.Unlock()
	if h := o.helpers[a.RootExecID]; h != nil {
		a = *h
	}
	s := o.session(&a, x.Proc, nil, nil)
	if a.Version == "" {
		a.Version = s.match.Version
	}
	if s.uuid != "" {
		s.stamp(&a)
	}
	if x.Proc.ExecID != s.rootExecID {
		o.foreignWrite(x.File, x.Proc)
	}
	if x.Proc.ExecID == s.rootExecID {
		if !s.hasUID {
			s.rootUID, s.hasUID = x.Proc.EUID, true
		}
		if uuid, ok := TranscriptSession(x.File.Path); ok && (x.File.Mode != event.ModeRead || s.uuid == "" || s.uuid == uuid) {
			// The agent appends to its own transcript (opened for write on
			// every append); it reads others only for --resume or listings.
			if x.File.Mode != event.ModeRead || s.transcript == nil {
				o.setUUID(s, uuid, x.File.Mode != event.ModeRead)
				if s.transcript == nil || s.transcript.Path() != x.File.Path {
					if s.transcript != nil {
						s.transcript.Close()
					}
					s.transcript = o.newTranscript(s, x.File.Path)
				}
			}
			s.stamp(&a)
			return agent.Result{Agent: &a}
		}
		if s.match.Kind == sensor.AgentClaudeCode {
			if h := o.hookFile(s, x.File.Path, x.File.NewPath); h != nil {
				a.ToolUse = &event.ToolUse{ID: h.ToolUseID, Name: h.ToolName, Attribution: event.AttributionExact}
				o.stats.FilesBound++
				return agent.Result{Agent: &a}
			}
			if housekeeping(s, x.File) {
				o.stats.FilesHousekeeping++
				return agent.Result{Agent: &a}
			}
			return agent.Result{Agent: &a, Resolve: o.resolveFile(s, x.File)}
		}
	}
	if a.Role == event.RoleDescendant && a.ToolUse == nil && x.Proc.ParentExecID == s.rootExecID && x.Proc.PID != s.rootPID {
		// A direct child of the agent the observer never saw exec (an MCP
		// server or hook running before the sensor started).
		switch {
		case s.cfg.isMCP(x.Proc.Argv):
			a.Role = event.RoleMCPServer
		case s.cfg.isHook(x.Proc.Argv):
			a.Role = event.RoleHook
		}
	}
	if agent.Reparented(x.Proc, nil) && a.Role != event.RoleRoot {
		a.Role = event.RoleDescendant
	}
	if a.ToolUse == nil && a.Role != event.RoleRoot && isBashTool(x.Proc.Argv) {
		// A Bash tool process seeded from /proc (running before the
		// sensor started), e.g. its own redirections, or a forked copy of
		// it that has not exec'd yet (a redirection opened for a child).
		if !agent.Reparented(x.Proc, nil) {
			a.Role = event.RoleTool
		}
		return o.bindTool(s, x.Proc, &a, true)
	}
	if r := o.inherit(s, &a); r != nil {
		return agent.Result{Agent: &a, Resolve: r}
	}
	return agent.Result{Agent: &a}
}

// oDirectory is open(2)'s O_DIRECTORY on Linux.
const oDirectory = 0o200000

// housekeeping reports a file event of the agent process that is its own
// upkeep, not a Read/Write/Edit tool call's: a directory, a kernel
// pseudo-file (/proc/N/statm, polled all along), its managed settings, its
// own state (~/.claude/..., ~/.claude.json). About half of an agent's file
// events during a tool call are these; each would otherwise wait up to
// FileWait for a tool call naming it. A Read tool call of such a file is
// still tied exactly through the hook (docs/agents.md).
func housekeeping(s *session, f *event.File) bool {
	if f.NewPath != "" {
		return false
	}
	if f.Flags&oDirectory != 0 {
		return true
	}
	p := f.Path
	for _, pre := range []string{"/proc/", "/sys/", "/dev/", "/etc/claude-code/"} {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	if s.configDir != "" && (strings.HasPrefix(p, s.configDir+"/") || p == s.configDir) {
		return true
	}
	if s.configDir != "" && filepath.Base(s.configDir) == ".claude" && p == filepath.Dir(s.configDir)+"/.claude.json" {
		return true
	}
	return false
}

// bashFallbackAfter is how long a file event of the agent waits for a
// Read/Write/Edit record naming its file before a Bash call in flight
// that names it may take it (the agent's vetting opens); below FileWait.
const bashFallbackAfter = 100 * time.Millisecond

// fileTools are the tools that run inside the agent process and name one
// file in their input.
var fileTools = map[string]bool{"Read": true, "Write": true, "Edit": true, "MultiEdit": true, "NotebookEdit": true}

// resolveFile ties a file event of the agent process to the Read/Write/Edit
// call whose input names the same file, where one matches.
func (o *Observer) resolveFile(s *session, f *event.File) func(context.Context, *event.Agent) {
	path, newPath := f.Path, f.NewPath
	return func(ctx context.Context, a *event.Agent) {
		ctx, cancel := context.WithTimeout(ctx, o.cfg.FileWait)
		defer cancel()
		o.mu.Lock()
		h := o.hookFile(s, path, newPath)
		if h != nil {
			a.ToolUse = &event.ToolUse{ID: h.ToolUseID, Name: h.ToolName, Attribution: event.AttributionExact}
			if a.SessionID == "" || a.SessionIDHint {
				s.stamp(a)
			}
			o.stats.FilesBound++
		}
		o.mu.Unlock()
		if h != nil {
			return
		}
		start := time.Now()
		for {
			if t := o.transcriptOf(s); t != nil {
				_ = t.Poll(ctx)
				// A Bash call that names the path wins only once the
				// file tool's own record had time to come: the agent
				// writes a Read call's record after a Bash call's
				// result may still be missing, and the Read's open would
				// go to the Bash call.
				bashOK := time.Since(start) >= bashFallbackAfter
				c, ok := t.find(func(calls []*ToolCall) *ToolCall {
					var best *ToolCall
					for i := len(calls) - 1; i >= 0; i-- {
						c := calls[i]
						if !fileTools[c.Name] || c.Path == "" {
							continue
						}
						if pathMatches(c.Path, path) || (newPath != "" && pathMatches(c.Path, newPath)) {
							if !c.Done {
								return c
							}
							if best == nil {
								best = c
							}
						}
					}
					if best != nil {
						return best
					}
					// The agent also opens the files a Bash command names
					// while it vets the command, before and after running
					// it: tie those to the call still in flight.
					for i := len(calls) - 1; bashOK && i >= 0; i-- {
						if c := calls[i]; c.Command != "" && !c.Done && commandNames(c.Command, path) {
							return c
						}
					}
					return nil
				})
				if ok {
					o.mu.Lock()
					attr := event.AttributionPath
					if _, bad := t.Untrusted(); bad {
						attr = event.AttributionUntrusted
					}
					a.ToolUse = &event.ToolUse{ID: c.ID, Name: c.Name, Attribution: attr}
					if a.SessionID == "" || a.SessionIDHint {
						s.stamp(a)
					}
					o.stats.FilesBound++
					o.mu.Unlock()
					return
				}
			}
			if !o.wait(ctx) {
				o.resolveSession(s)(ctx, a)
				return
			}
		}
	}
}

// commandNames reports whether a shell command names path as a whole word.
func commandNames(cmd, path string) bool {
	if !filepath.IsAbs(path) || len(path) < 2 {
		return false
	}
	for i := 0; ; {
		j := strings.Index(cmd[i:], path)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(path)
		before := j == 0 || strings.ContainsRune(" \t\n'\"<>=;|&(", rune(cmd[j-1]))
		after := end == len(cmd) || strings.ContainsRune(" \t\n'\";|&)<>", rune(cmd[end]))
		if before && after {
			return true
		}
		i = j + 1
	}
}

// pathMatches compares a tool input path with a path the kernel resolved:
// equal; equal after resolving symlinks in the input (Read of
// /etc/os-release opens /usr/lib/os-release); or the temporary file the
// Write/Edit tools write before renaming it into place
// ("<path>.tmp.<pid>.<hex>", reached through /proc/self/fd/N/).
func pathMatches(input, got string) bool {
	if !filepath.IsAbs(input) {
		return false
	}
	input = filepath.Clean(input)
	if got == input || strings.HasPrefix(got, input+".tmp.") {
		return true
	}
	if strings.HasPrefix(got, "/proc/self/fd/") || strings.HasPrefix(got, "/proc/") && strings.Contains(got, "/fd/") {
		b := base(got)
		if b == base(input) || strings.HasPrefix(b, base(input)+".tmp.") {
			return true
		}
	}
	if r, err := filepath.EvalSymlinks(input); err == nil && r != input {
		return got == r || strings.HasPrefix(got, r+".tmp.")
	}
	return false
}

// base is the last component of a path, as written (no cleaning).
func base(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
