package redact

import (
	"path"
	"strings"
)

// An agent started through another program leaves its prompt in that
// program's argv too: a wrapper that forks it (timeout 600 claude -p X,
// sudo claude -p X) stays its ancestor, one that execs it (nohup, env)
// becomes its previous image, and a shell keeps the whole command line
// (bash -c 'claude -p X'). Argv finds the agent in such an argv and hides
// its prompt as AgentArgv would.

// agentNames are the command names of the agent CLIs the table recognises,
// as typed on a command line (the kernel recognises the resolved binary,
// which a command name does not show).
var agentNames = map[string]bool{
	"claude": true, "claude.exe": true, "codex": true, "gemini": true, "cursor-agent": true, "aider": true,
	"@anthropic-ai/claude-code": true, "@openai/codex": true, "@google/gemini-cli": true,
}

// wrappers run the command that follows their own options and operands.
var wrappers = map[string]bool{
	"timeout": true, "sudo": true, "doas": true, "nohup": true, "env": true, "nice": true, "ionice": true,
	"stdbuf": true, "setsid": true, "time": true, "chrt": true, "taskset": true, "runuser": true,
	"unbuffer": true, "xargs": true, "flock": true, "systemd-run": true, "firejail": true, "bwrap": true,
	"strace": true, "ltrace": true, "watch": true, "script": true, "su": true, "npx": true, "bunx": true,
	"pnpx": true, "exec": true, "command": true, "builtin": true, "numactl": true, "cgexec": true,
	"unshare": true, "nsenter": true, "chroot": true, "setpriv": true, "sg": true, "eval": true,
	"ssh": true, "tmux": true, "screen": true, "expect": true, "caffeinate": true, "catchsegv": true,
}

// agentHints are substrings one of which an argv element naming an agent
// holds; an element with none is not searched.
var agentHints = []string{"claude", "codex", "gemini", "cursor-agent", "aider"}

// isAgentWord reports whether a command word names an agent CLI: its base
// name, or an npm package spec with an optional @version.
func (r *Redactor) isAgentWord(w string, rest []string) bool {
	if agentNames[path.Base(w)] {
		return true
	}
	if strings.HasPrefix(w, "@") {
		if i := strings.LastIndexByte(w, '@'); i > 0 && agentNames[w[:i]] {
			return true
		}
	} else if i := strings.IndexByte(w, '@'); i > 0 && agentNames[w[:i]] {
		return true
	}
	return strings.HasPrefix(w, "/") && r.isAgent != nil && r.isAgent(w, rest)
}

// hasAgentHint reports whether s mentions an agent name as a word or a
// path's last component ("claude", "/bin/claude", "'codex'"), not as part
// of a longer name (~/.claude/..., claude-notes).
func hasAgentHint(s string) bool {
	for _, h := range agentHints {
		for off := 0; ; {
			i := strings.Index(s[off:], h)
			if i < 0 {
				break
			}
			i += off
			end := i + len(h)
			if (i == 0 || strings.IndexByte(" \t\n'\"/;&|(`=", s[i-1]) >= 0) &&
				(end == len(s) || strings.IndexByte(" \t\n'\";&|)`@.", s[end]) >= 0 || strings.HasPrefix(s[end:], "-code")) {
				return true
			}
			off = end
		}
	}
	return false
}

// embeddedPrompts hides, in out (the redacted copy of argv), the prompt of
// an agent that argv starts after a wrapper (argv[0] or a wrapper it
// starts). An element that is a shell command line String has already
// handled.
func (r *Redactor) embeddedPrompts(argv, out []string) {
	if len(argv) < 2 {
		return
	}
	wrapped := wrappers[path.Base(argv[0])]
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if !hasAgentHint(a) {
			continue
		}
		if wrapped && r.isAgentWord(a, argv[i:]) {
			masked := make([]string, len(argv)-i)
			copy(masked, out[i:])
			maskPrompts(argv[i:], masked)
			copy(out[i:], masked)
			return
		}
	}
}

// maxShellDepth bounds the nesting of quoted command lines searched
// (eval 'bash -c "claude -p X"').
const maxShellDepth = 4

// shellPrompts hides the prompts of the agents a shell command line s
// starts: at a command's start, after assignments and wrappers, or inside
// a quoted word that is itself a command line (eval '...', sh -c "...").
func (r *Redactor) shellPrompts(s string, depth int) string {
	if depth > maxShellDepth || !hasAgentHint(s) {
		return s
	}
	words := lexShell(s)
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !w.cmdStart && !w.afterWrapper {
			// Not in command position: a quoted word may still be a
			// command line of its own.
			if w.quoted && hasAgentHint(w.value) {
				if m := r.shellPrompts(w.value, depth+1); m != w.value {
					edits = append(edits, edit{w.start, w.end, shellQuote(m)})
				}
			}
			continue
		}
		if !r.isAgentWord(w.value, nil) {
			if w.quoted && hasAgentHint(w.value) {
				if m := r.shellPrompts(w.value, depth+1); m != w.value {
					edits = append(edits, edit{w.start, w.end, shellQuote(m)})
				}
			}
			continue
		}
		// The agent's command: its words up to the command's end.
		j := i + 1
		for j < len(words) && !words[j].cmdStart {
			j++
		}
		argv := make([]string, 0, j-i)
		for _, x := range words[i:j] {
			argv = append(argv, x.value)
		}
		masked := append([]string(nil), argv...)
		maskPrompts(argv, masked)
		for k := 1; k < len(argv); k++ {
			if masked[k] != argv[k] {
				x := words[i+k]
				edits = append(edits, edit{x.start, x.end, masked[k]})
			}
		}
		i = j - 1
	}
	if len(edits) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, e := range edits {
		b.WriteString(s[last:e.start])
		b.WriteString(e.text)
		last = e.end
	}
	b.WriteString(s[last:])
	return b.String()
}

// shellQuote quotes s as one single-quoted shell word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// shellWord is one word of a command line: its span in the line, its value
// with quotes and escapes removed, and where it stands.
type shellWord struct {
	start, end int
	value      string
	quoted     bool
	// cmdStart: the first word of a command (after ; & | ( ) newline
	// or the line's start, and after NAME=value assignments).
	cmdStart bool
	// afterWrapper: in a command whose words so far are wrappers and
	// their options (sudo -u x, timeout 60, env A=b).
	afterWrapper bool
}

// lexShell splits a command line into words the way a POSIX shell would,
// closely enough to find commands and their arguments: quotes, backslash
// escapes, and the operators that end a command. An unterminated quote
// runs to the end of the line.
func lexShell(s string) []shellWord {
	var words []shellWord
	cmdStart, wrapper := true, false
	i := 0
	for i < len(s) {
		c := s[i]
		switch c {
		case ' ', '\t':
			i++
			continue
		case '\n', ';', '&', '|', '(', ')', '`', '<', '>', '{', '}':
			cmdStart, wrapper = true, false
			i++
			continue
		}
		start := i
		var v strings.Builder
		quoted := false
	word:
		for i < len(s) {
			c := s[i]
			switch c {
			case ' ', '\t', '\n', ';', '&', '|', '(', ')', '`', '<', '>':
				break word
			case '\\':
				if i+1 < len(s) {
					v.WriteByte(s[i+1])
					i += 2
				} else {
					i++
				}
			case '\'':
				quoted = true
				end := strings.IndexByte(s[i+1:], '\'')
				if end < 0 {
					v.WriteString(s[i+1:])
					i = len(s)
				} else {
					v.WriteString(s[i+1 : i+1+end])
					i += end + 2
				}
			case '"':
				quoted = true
				i++
				for i < len(s) && s[i] != '"' {
					if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
						i++
					}
					v.WriteByte(s[i])
					i++
				}
				i++
			default:
				v.WriteByte(c)
				i++
			}
		}
		if i > len(s) {
			i = len(s)
		}
		w := shellWord{start: start, end: i, value: v.String(), quoted: quoted, cmdStart: cmdStart, afterWrapper: wrapper}
		words = append(words, w)
		switch {
		case cmdStart && !quoted && isAssignment(w.value):
			// NAME=value before a command: the command is still to come.
		case cmdStart || wrapper:
			wrapper = wrappers[path.Base(w.value)] || wrapper && strings.HasPrefix(w.value, "-") || wrapper && !cmdStart
			cmdStart = false
		}
	}
	return words
}

func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i, c := range []byte(name) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
