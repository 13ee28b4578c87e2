package ocsf

import "github.com/lineaged/lineaged/sink/internal/jsonw"

// The command line keeps argument boundaries: each argument is written as
// a POSIX shell word, bare when it holds only characters no shell treats
// specially, otherwise in single quotes with each ' as '\'' (an empty
// argument is ''). Splitting cmd_line as a shell does (Python's
// shlex.split) gives back argv, up to where a bound cut it.

// shellSafe marks the bytes an argument may hold and still be written bare.
var shellSafe = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_@%+=:,./-" {
		t[c] = true
	}
	return t
}()

func needsQuotes(a string) bool {
	if a == "" {
		return true
	}
	for i := 0; i < len(a); i++ {
		if !shellSafe[a[i]] {
			return true
		}
	}
	return false
}

// appendBody writes a part of an argument: JSON-escaped into the literal,
// or raw for the exact bytes of a value that held invalid UTF-8.
type appendBody func(dst []byte, s string) ([]byte, bool)

func rawBody(dst []byte, s string) ([]byte, bool) { return append(dst, s...), false }

// appendArgs writes argv as shell words joined by spaces, within limit bytes
// of arguments when limit is positive (the argument that crosses it is cut
// on a rune boundary, the rest left out). quoteEsc is how a ' inside a
// quoted argument is written (JSON needs its backslash escaped).
func appendArgs(dst []byte, argv []string, limit int, body appendBody, quoteEsc string) ([]byte, bool) {
	invalid := false
	total := 0
	for i, a := range argv {
		if limit > 0 {
			if total >= limit {
				break
			}
			if total+len(a) > limit {
				a = jsonw.TruncateUTF8(a, limit-total)
			}
			total += len(a)
		}
		if i > 0 {
			dst = append(dst, ' ')
		}
		var bad bool
		if !needsQuotes(a) {
			dst, bad = body(dst, a)
			invalid = invalid || bad
			continue
		}
		dst = append(dst, '\'')
		start := 0
		for j := 0; j < len(a); j++ {
			if a[j] == '\'' {
				dst, bad = body(dst, a[start:j])
				invalid = invalid || bad
				dst = append(dst, quoteEsc...)
				start = j + 1
			}
		}
		dst, bad = body(dst, a[start:])
		invalid = invalid || bad
		dst = append(dst, '\'')
	}
	return dst, invalid
}

// cmdLine writes argv as one command line (a JSON string) within the argv
// bounds and, when limit is positive, within limit bytes of arguments; the
// cut is flagged in unmapped. When an argument held invalid UTF-8 it also
// returns the command line's exact bytes, for invalid_utf8_base64.
func (e Encoder) cmdLine(dst []byte, argv []string, limit int) ([]byte, string, bool) {
	argv = e.boundArgv(argv)
	dst = append(dst, '"')
	dst, bad := appendArgs(dst, argv, limit, jsonw.AppendStringBody, `'\\''`)
	dst = append(dst, '"')
	if !bad {
		return dst, "", false
	}
	raw, _ := appendArgs(nil, argv, limit, rawBody, `'\''`)
	return dst, string(raw), true
}
