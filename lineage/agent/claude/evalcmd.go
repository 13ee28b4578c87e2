package claude

import (
	"strings"
)

// maxShellWord bounds the shell word the eval payload parser reads: argv is
// attacker-influenced and already bounded by the kernel, but the parser must
// not depend on that.
const maxShellWord = 1 << 20

// BashToolPayload returns the command a Claude Code Bash tool process was
// asked to run. Claude Code starts the tool as
//
//	/bin/bash -c 'source <snapshot> ... && eval '\''<command>'\'' < /dev/null && pwd -P >| /tmp/claude-XXXX-cwd'
//
// (argv[2] holds the whole script; the command inside it is one shell word,
// single-quoted with every ' written as '"'"'). The payload, unescaped, is
// byte-for-byte the tool_use input.command of the transcript. ok is false
// when argv does not have that shape.
func BashToolPayload(argv []string) (payload string, ok bool) {
	if len(argv) < 3 || argv[1] != "-c" {
		return "", false
	}
	if !isShell(argv[0]) {
		return "", false
	}
	script := argv[2]
	// The payload follows Claude Code's fixed preamble (source the shell
	// snapshot, reset aliases), which holds no "&& eval ": the first one is
	// the tool's. The command itself may contain more.
	i := strings.Index(script, "&& eval ")
	if i < 0 {
		if !strings.HasPrefix(script, "eval ") {
			return "", false
		}
		i = 0
	} else {
		i += len("&& ")
	}
	word, rest, ok := ShellWord(script[i+len("eval "):])
	if !ok {
		return "", false
	}
	_ = rest
	return word, true
}

func isShell(argv0 string) bool {
	b := argv0
	if j := strings.LastIndexByte(b, '/'); j >= 0 {
		b = b[j+1:]
	}
	switch b {
	case "bash", "sh", "zsh", "dash":
		return true
	}
	return false
}

// ShellWord parses one POSIX shell word at the start of s made of
// single-quoted, double-quoted and bare segments (the forms Claude Code's
// quoting produces), and returns it unescaped with the rest of s after it.
// ok is false for an unterminated quote, an empty word or a word longer than
// maxShellWord.
func ShellWord(s string) (word, rest string, ok bool) {
	var b strings.Builder
	i := 0
	for i < len(s) {
		if b.Len() > maxShellWord {
			return "", "", false
		}
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", "", false
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 2
		case c == '"':
			i++
			closed := false
			for i < len(s) {
				d := s[i]
				if d == '"' {
					i++
					closed = true
					break
				}
				if d == '\\' && i+1 < len(s) {
					switch s[i+1] {
					case '$', '`', '"', '\\':
						b.WriteByte(s[i+1])
						i += 2
						continue
					case '\n':
						i += 2
						continue
					}
				}
				b.WriteByte(d)
				i++
			}
			if !closed {
				return "", "", false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			if s[i+1] != '\n' {
				b.WriteByte(s[i+1])
			}
			i += 2
		case c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '&' || c == '|' || c == '<' || c == '>':
			if i == 0 {
				return "", "", false
			}
			return b.String(), s[i:], true
		default:
			b.WriteByte(c)
			i++
		}
	}
	if i == 0 {
		return "", "", false
	}
	return b.String(), "", true
}

// shellQuote quotes s the way Claude Code does for eval ('...' with every '
// written as '"'"'); used by tests and the fuzzer to check the round trip.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
