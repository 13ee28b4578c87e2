package claude

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

type argvFixture struct {
	Argv    []string `json:"argv"`
	Command string   `json:"command"`
}

func loadArgvFixtures(t *testing.T) []argvFixture {
	t.Helper()
	b, err := os.ReadFile("testdata/bash-tool-argv.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx []argvFixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx) == 0 {
		t.Fatal("no fixtures")
	}
	return fx
}

// The argv of real Bash tool processes of Claude Code 2.1.332, captured from
// /proc and strace, yields exactly the tool_use command.
func TestBashToolPayloadCaptured(t *testing.T) {
	for _, fx := range loadArgvFixtures(t) {
		got, ok := BashToolPayload(fx.Argv)
		if !ok {
			t.Fatalf("not recognised: %q", fx.Argv)
		}
		if got != fx.Command {
			t.Errorf("payload %q, want %q", got, fx.Command)
		}
		if !isBashTool(fx.Argv) {
			t.Errorf("isBashTool false for %q", fx.Argv)
		}
	}
}

func toolArgv(cmd string) []string {
	return []string{"/bin/bash", "-c", "source /root/.claude/shell-snapshots/snapshot-bash-1-x.sh 2>/dev/null || true && eval " + shellQuote(cmd) + " < /dev/null && pwd -P >| /tmp/claude-1-cwd"}
}

func TestBashToolPayloadRoundTrip(t *testing.T) {
	for _, cmd := range []string{
		"ls", "echo 'a b'", `printf "%s\n" "$HOME" '$x' \'`, "a && eval 'nested' && b", "multi\nline\n'quoted'\n",
		"", "  spaced  ", "unicode ✓ and \x00 nul", "cat <<'EOF'\nx\nEOF",
	} {
		got, ok := BashToolPayload(toolArgv(cmd))
		if !ok || got != cmd {
			t.Errorf("round trip of %q: %q %v", cmd, got, ok)
		}
	}
}

func TestBashToolPayloadRejects(t *testing.T) {
	for _, argv := range [][]string{
		nil, {"/bin/bash"}, {"/bin/bash", "-c"}, {"/bin/bash", "-lc", "eval 'x'"},
		{"/usr/bin/python3", "-c", "eval 'x'"}, {"/bin/bash", "-c", "echo no eval here"},
		{"/bin/bash", "-c", "x && eval 'unterminated"}, {"/bin/bash", "-c", `x && eval "unterminated`},
		{"/bin/bash", "-c", "x && eval  "},
	} {
		if p, ok := BashToolPayload(argv); ok {
			t.Errorf("accepted %q -> %q", argv, p)
		}
	}
	// A user's own bash -c "eval ..." without the tool's preamble has a
	// payload but is not a tool process.
	if isBashTool([]string{"/bin/bash", "-c", "eval 'ls'"}) {
		t.Error("plain eval taken for the Bash tool")
	}
}

func TestShellWordForms(t *testing.T) {
	cases := []struct{ in, word, rest string }{
		{`'a'"'"'b' < x`, "a'b", " < x"},
		{`"a\"b\\c\$d"`, `a"b\c$d`, ""},
		{`ab\ cd;`, "ab cd", ";"},
		{`'x'&&y`, "x", "&&y"},
	}
	for _, c := range cases {
		w, r, ok := ShellWord(c.in)
		if !ok || w != c.word || r != c.rest {
			t.Errorf("ShellWord(%q) = %q %q %v, want %q %q", c.in, w, r, ok, c.word, c.rest)
		}
	}
	if _, _, ok := ShellWord(strings.Repeat("a", maxShellWord+10)); ok {
		t.Error("unbounded word accepted")
	}
}

func FuzzEvalPayload(f *testing.F) {
	for _, s := range []string{"ls", "echo 'x'", `a"b'c\d`, "\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		// Round trip: whatever the command, the quoted form Claude Code
		// builds unescapes to it.
		got, ok := BashToolPayload(toolArgv(cmd))
		if !ok || got != cmd {
			t.Fatalf("round trip of %q: %q %v", cmd, got, ok)
		}
		// Arbitrary scripts never panic and never return more than they hold.
		if p, ok := BashToolPayload([]string{"bash", "-c", cmd}); ok && len(p) > len(cmd) {
			t.Fatalf("payload longer than script")
		}
		_, _, _ = ShellWord(cmd)
	})
}
