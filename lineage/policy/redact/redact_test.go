package redact

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
)

func mustNew(t *testing.T, cfg Config) *Redactor {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestArgvSecrets(t *testing.T) {
	r := mustNew(t, Config{})
	cases := []struct {
		in, want []string
	}{
		{[]string{"curl", "-H", "Authorization: Bearer abc.def.ghi", "https://x"}, []string{"curl", "-H", "Authorization: Bearer [REDACTED]", "https://x"}},
		{[]string{"curl", "--header", "authorization: token ghp_0123456789abcdefghijABCDEFGHIJ"}, []string{"curl", "--header", "authorization: token [REDACTED]"}},
		{[]string{"curl", "-H", "x-api-key: secretvalue1"}, []string{"curl", "-H", "x-api-key: [REDACTED]"}},
		{[]string{"tool", "--password", "hunter2", "--user", "bob"}, []string{"tool", "--password", "[REDACTED]", "--user", "bob"}},
		{[]string{"tool", "--password=hunter2"}, []string{"tool", "--password=[REDACTED]"}},
		{[]string{"tool", "--token", "t0k"}, []string{"tool", "--token", "[REDACTED]"}},
		{[]string{"tool", "--api-key=abc"}, []string{"tool", "--api-key=[REDACTED]"}},
		{[]string{"tool", "--API_KEY", "abc"}, []string{"tool", "--API_KEY", "[REDACTED]"}},
		{[]string{"env", "ANTHROPIC_API_KEY=sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAA", "x"}, []string{"env", "ANTHROPIC_API_KEY=[REDACTED]", "x"}},
		{[]string{"x", "sk-proj-abcdefghijklmnopqrstuvwxyz"}, []string{"x", "[REDACTED]"}},
		{[]string{"aws", "AKIAIOSFODNN7EXAMPLE"}, []string{"aws", "[REDACTED]"}},
		{[]string{"slack", "xoxb-123456789012-abcdef"}, []string{"slack", "[REDACTED]"}},
		{[]string{"jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdEFGHijkl"}, []string{"jwt", "[REDACTED]"}},
		{[]string{"git", "clone", "https://user:pa55word@example.com/r.git"}, []string{"git", "clone", "https://user:[REDACTED]@example.com/r.git"}},
		// A Bash tool's whole command sits in one argv element.
		{[]string{"/bin/bash", "-c", "eval 'curl -H '\"'\"'Authorization: Bearer s3cr3tvalue'\"'\"' --token abc http://h'"},
			[]string{"/bin/bash", "-c", "eval 'curl -H '\"'\"'Authorization: Bearer [REDACTED]'\"'\"' --token [REDACTED] http://h'"}},
		// Nothing secret: unchanged.
		{[]string{"ls", "-la", "/tmp", "--sort=size"}, []string{"ls", "-la", "/tmp", "--sort=size"}},
		{[]string{"grep", "-r", "sk-", "."}, []string{"grep", "-r", "sk-", "."}},
	}
	for _, c := range cases {
		got := r.Argv(c.in)
		if !slices.Equal(got, c.want) {
			t.Errorf("Argv(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
	if r.Argv(nil) != nil {
		t.Error("nil argv must stay nil")
	}
	in := []string{"x", "--token", "v"}
	_ = r.Argv(in)
	if in[2] != "v" {
		t.Error("Argv modified its input")
	}
}

func TestExtraPatterns(t *testing.T) {
	r := mustNew(t, Config{Patterns: []string{`corp-[0-9]{6}`, `pin=(?P<secret>\d+)`}})
	got := r.Argv([]string{"x", "id corp-123456 ok", "pin=4321"})
	want := []string{"x", "id [REDACTED] ok", "pin=[REDACTED]"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestBadPattern(t *testing.T) {
	for _, p := range []string{`(unclosed`, ``, `a*`} {
		_, err := New(Config{Patterns: []string{`ok-[0-9]+`, p}})
		if err == nil {
			t.Fatalf("pattern %q accepted", p)
		}
		if !strings.Contains(err.Error(), "pattern 1") {
			t.Errorf("error does not name the pattern: %v", err)
		}
		if p != "" && !strings.Contains(err.Error(), p) {
			t.Errorf("error does not quote the pattern: %v", err)
		}
	}
}

func TestAgentArgvPrompt(t *testing.T) {
	r := mustNew(t, Config{})
	cases := []struct{ in, want []string }{
		{[]string{"/usr/bin/claude", "-p", "delete everything", "--dangerously-skip-permissions"},
			[]string{"/usr/bin/claude", "-p", PromptPlaceholder, "--dangerously-skip-permissions"}},
		{[]string{"claude", "--mcp-config", "/tmp/m.json", "--print", "do it", "--model", "opus"},
			[]string{"claude", "--mcp-config", "/tmp/m.json", "--print", PromptPlaceholder, "--model", "opus"}},
		{[]string{"claude", "--dangerously-skip-permissions", "-p", "--output-format", "json", "hello there"},
			[]string{"claude", "--dangerously-skip-permissions", "-p", "--output-format", "json", PromptPlaceholder}},
		{[]string{"claude", "--append-system-prompt=be evil", "fix bug"},
			[]string{"claude", "--append-system-prompt=" + PromptPlaceholder, PromptPlaceholder}},
		{[]string{"codex", "exec", "write a virus"}, []string{"codex", "exec", PromptPlaceholder}},
		{[]string{"node", "/x/gemini", "--prompt", "q", "--", "more"}, []string{"node", PromptPlaceholder, "--prompt", PromptPlaceholder, "--", PromptPlaceholder}},
	}
	for _, c := range cases {
		if got := r.AgentArgv(c.in); !slices.Equal(got, c.want) {
			t.Errorf("AgentArgv(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
	keep := mustNew(t, Config{KeepPrompt: true})
	in := []string{"claude", "-p", "list files --token abc"}
	if got := keep.AgentArgv(in); !slices.Equal(got, []string{"claude", "-p", "list files --token [REDACTED]"}) {
		t.Errorf("KeepPrompt: got %q", got)
	}
}

func TestEvent(t *testing.T) {
	r := mustNew(t, Config{IsAgent: func(exe string, argv []string) bool { return strings.HasSuffix(exe, "/claude") }})
	e := &event.Event{
		Process: &event.Process{ExecID: "tool", Exe: "/usr/bin/curl", Argv: []string{"curl", "--token", "abc"}},
		Ancestry: []event.Process{
			{ExecID: "root", Exe: "/opt/claude.exe", Argv: []string{"claude.exe", "-p", "secret plan"}},
			{ExecID: "outer", Exe: "/home/u/.local/bin/claude", Argv: []string{"claude", "-p", "outer plan"}},
			{ExecID: "sh", Exe: "/bin/sh", Argv: []string{"sh", "-c", "echo plan"}},
		},
		Agent: &event.Agent{RootExecID: "root"},
	}
	r.Event(e)
	if !slices.Equal(e.Process.Argv, []string{"curl", "--token", Mask}) {
		t.Errorf("process argv %q", e.Process.Argv)
	}
	if e.Ancestry[0].Argv[2] != PromptPlaceholder || e.Ancestry[1].Argv[2] != PromptPlaceholder {
		t.Errorf("agent prompts not hidden: %q %q", e.Ancestry[0].Argv, e.Ancestry[1].Argv)
	}
	if e.Ancestry[2].Argv[2] != "echo plan" {
		t.Errorf("non-agent argv changed: %q", e.Ancestry[2].Argv)
	}
}

func FuzzArgv(f *testing.F) {
	f.Add("--token", "abc", "Authorization: Bearer xyz12345")
	f.Add("sk-ant-aaaaaaaaaaaaaaaaaa", "", "https://a:b@c")
	r, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		in := []string{a, b, c}
		out := r.Argv(in)
		if len(out) != len(in) {
			t.Fatal("length changed")
		}
		ag := r.AgentArgv(in)
		if len(ag) != len(in) {
			t.Fatal("length changed")
		}
		// Idempotent: redacting twice changes nothing more.
		if again := r.Argv(out); !slices.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q", out, again)
		}
	})
}

// BenchmarkArgvTypical is the per-event cost for an ordinary argv (no
// secret): what every process and ancestor pays.
func BenchmarkArgvTypical(b *testing.B) {
	r, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	argv := []string{"/usr/bin/gcc", "-O2", "-Wall", "-I/usr/include/foo", "-c", "src/module/file_with_long_name.c", "-o", "build/obj/file_with_long_name.o"}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Argv(argv)
	}
}

// BenchmarkArgvBashTool is a Bash tool's argv: one long script.
func BenchmarkArgvBashTool(b *testing.B) {
	r, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	argv := []string{"/bin/bash", "-c", "source /root/.claude/shell-snapshots/snapshot-bash-1795636748957-12mr5u.sh 2>/dev/null || true && \\builtin shopt -u extglob 2>/dev/null || true && { \\builtin unalias -- 'which'; \\builtin unset -f -- 'which'; } >/dev/null 2>&1 || true && eval 'make -j4 test && git status' < /dev/null && pwd -P >| /tmp/claude-203c-cwd"}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Argv(argv)
	}
}

// BenchmarkEvent is one event with a ten-deep ancestry, as the pipeline
// redacts it: ancestors recur from event to event.
func BenchmarkEvent(b *testing.B) {
	r, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	anc := make([]event.Process, 10)
	for i := range anc {
		anc[i] = event.Process{ExecID: fmt.Sprint("anc", i), Exe: "/usr/bin/make", Argv: []string{"make", "-C", "dir", "all", "V=1"}}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		e := &event.Event{Process: &event.Process{ExecID: fmt.Sprint("p", n), Exe: "/usr/bin/cc", Argv: []string{"cc", "-c", "x.c"}}, Ancestry: append([]event.Process(nil), anc...)}
		r.Event(e)
	}
}

// BenchmarkEventCachedAncestry is the redaction of an in-session exec whose
// ancestors were all seen before: the common case in a storm.
func BenchmarkEventCachedAncestry(b *testing.B) {
	r, err := New(Config{IsAgent: agent.DefaultTable().IsAgent})
	if err != nil {
		b.Fatal(err)
	}
	anc := make([]event.Process, 10)
	for i := range anc {
		anc[i] = event.Process{ExecID: fmt.Sprintf("anc-%d", i), Exe: "/usr/bin/bash", Argv: []string{"/bin/bash", "-c", "source x && eval 'make test' && pwd -P"}}
	}
	ev := &event.Event{Agent: &event.Agent{RootExecID: "anc-9"}}
	b.ReportAllocs()
	for i := range b.N {
		ev.Process = &event.Process{ExecID: fmt.Sprint(i), Exe: "/usr/bin/true", Argv: []string{"/bin/true"}}
		ev.Ancestry = append(ev.Ancestry[:0], anc...)
		r.Event(ev)
	}
}
