package redact

import (
	"slices"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
)

// TestRedactionCases is one case per secret and prompt form that must not
// leave the sensor: each as separate argv elements and, where a shell would
// carry it, inside one command line.
func TestRedactionCases(t *testing.T) {
	r := mustNew(t, Config{})
	P, M := PromptPlaceholder, Mask
	cases := []struct {
		name     string
		in, want []string
	}{
		// Secrets as separate arguments.
		{"db-password", []string{"app", "--db-password", "hunter2", "--port", "5432"}, []string{"app", "--db-password", M, "--port", "5432"}},
		{"api_token", []string{"app", "--api_token", "t0k3n"}, []string{"app", "--api_token", M}},
		{"password-file kept", []string{"app", "--password-file", "/etc/app/pw"}, []string{"app", "--password-file", "/etc/app/pw"}},
		{"password-stdin kept", []string{"docker", "login", "--password-stdin", "-u", "bob", "reg.io"}, []string{"docker", "login", "--password-stdin", "-u", "bob", "reg.io"}},
		{"curl -u", []string{"curl", "-u", "user:pass", "https://h"}, []string{"curl", "-u", "user:" + M, "https://h"}},
		{"curl -uuser:pass", []string{"curl", "-uuser:pass", "https://h"}, []string{"curl", "-uuser:" + M, "https://h"}},
		{"curl --user", []string{"curl", "--user", "user:pass", "https://h"}, []string{"curl", "--user", "user:" + M, "https://h"}},
		{"docker -u uid:gid kept", []string{"docker", "run", "-u", "1000:1000", "img"}, []string{"docker", "run", "-u", "1000:1000", "img"}},
		{"mysql -pX", []string{"mysql", "-u", "root", "-phunter2", "db"}, []string{"mysql", "-u", "root", "-p" + M, "db"}},
		{"mkdir -p kept", []string{"mkdir", "-pv", "dir"}, []string{"mkdir", "-pv", "dir"}},
		{"sshpass -p", []string{"sshpass", "-p", "hunter2", "ssh", "h"}, []string{"sshpass", "-p", M, "ssh", "h"}},
		{"sshpass -pX", []string{"sshpass", "-phunter2", "ssh", "h"}, []string{"sshpass", "-p" + M, "ssh", "h"}},
		{"docker login -p", []string{"docker", "login", "-u", "bob", "-p", "hunter2", "reg.io"}, []string{"docker", "login", "-u", "bob", "-p", M, "reg.io"}},
		{"ssh -p kept", []string{"ssh", "-p", "2222", "h"}, []string{"ssh", "-p", "2222", "h"}},
		{"AWS_SECRET_ACCESS_KEY", []string{"env", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "aws", "s3", "ls"}, []string{"env", "AWS_SECRET_ACCESS_KEY=" + M, "aws", "s3", "ls"}},
		{"PGPASSWORD", []string{"env", "PGPASSWORD=hunter2", "psql"}, []string{"env", "PGPASSWORD=" + M, "psql"}},
		{"MY_TOKEN", []string{"env", "DEPLOY_TOKEN_V2=abc", "x"}, []string{"env", "DEPLOY_TOKEN_V2=" + M, "x"}},
		{"HOME kept", []string{"env", "HOME=/root", "LANG=C", "x"}, []string{"env", "HOME=/root", "LANG=C", "x"}},
		{"access_token query", []string{"curl", "https://api.example.com/v1/x?access_token=abc123&page=2"}, []string{"curl", "https://api.example.com/v1/x?access_token=" + M + "&page=2"}},
		{"api_key query", []string{"wget", "https://h/p?page=1&api_key=zzz"}, []string{"wget", "https://h/p?page=1&api_key=" + M}},
		{"token@host", []string{"git", "clone", "https://ghtoken123@github.com/o/r.git"}, []string{"git", "clone", "https://" + M + "@github.com/o/r.git"}},
		{"git@host kept", []string{"git", "clone", "ssh://git@github.com/o/r.git"}, []string{"git", "clone", "ssh://git@github.com/o/r.git"}},
		{"Cookie header", []string{"curl", "-H", "Cookie: session=abc; csrftoken=def", "https://h"}, []string{"curl", "-H", "Cookie: " + M, "https://h"}},
		{"curl --cookie", []string{"curl", "--cookie", "session=abc", "https://h"}, []string{"curl", "--cookie", M, "https://h"}},
		{"Authorization Basic", []string{"curl", "-H", "Authorization: Basic dXNlcjpwYXNz", "https://h"}, []string{"curl", "-H", "Authorization: Basic " + M, "https://h"}},
		{"Authorization Digest", []string{"curl", "-H", `Authorization: Digest username="bob", response="6629fae4"`}, []string{"curl", "-H", "Authorization: Digest " + M}},
		{"Authorization raw", []string{"curl", "-H", "Authorization:abc123"}, []string{"curl", "-H", "Authorization:" + M}},
		{"Authorization JSON", []string{"python3", "-c", `requests.get(u, headers={"Authorization": "Bearer abcdefgh12"})`}, []string{"python3", "-c", `requests.get(u, headers={"Authorization": "Bearer ` + M + `"})`}},

		// The same inside a shell command line.
		{"sh db-password", []string{"sh", "-c", "app --db-password hunter2 --port 1"}, []string{"sh", "-c", "app --db-password " + M + " --port 1"}},
		{"sh curl -u", []string{"sh", "-c", "curl -s -u user:pass https://h"}, []string{"sh", "-c", "curl -s -u user:" + M + " https://h"}},
		{"sh mysql", []string{"sh", "-c", "mysql -uroot -phunter2 db < x.sql"}, []string{"sh", "-c", "mysql -uroot -p" + M + " db < x.sql"}},
		{"sh sshpass", []string{"sh", "-c", "sshpass -p 'hunter 2' ssh h"}, []string{"sh", "-c", "sshpass -p " + M + " ssh h"}},
		{"sh docker login", []string{"sh", "-c", "docker login -u bob -p hunter2 reg.io"}, []string{"sh", "-c", "docker login -u bob -p " + M + " reg.io"}},
		{"sh assignments", []string{"sh", "-c", "AWS_SECRET_ACCESS_KEY=abc PGPASSWORD='x y' psql"}, []string{"sh", "-c", "AWS_SECRET_ACCESS_KEY=" + M + " PGPASSWORD=" + M + " psql"}},
		{"sh cookie", []string{"sh", "-c", "curl -H 'Cookie: a=b; c=d' https://h"}, []string{"sh", "-c", "curl -H 'Cookie: " + M + "' https://h"}},

		// Prompts: -c is Claude Code's --continue, a boolean.
		{"claude -c", []string{"timeout", "600", "claude", "-c", "the secret plan"}, []string{"timeout", "600", "claude", "-c", P}},
		{"timeout", []string{"timeout", "600", "claude", "-p", "the secret plan", "--model", "opus"}, []string{"timeout", "600", "claude", "-p", P, "--model", "opus"}},
		{"sudo", []string{"sudo", "-u", "bob", "/home/bob/.local/bin/claude", "-p", "plan"}, []string{"sudo", "-u", "bob", "/home/bob/.local/bin/claude", "-p", P}},
		{"nohup", []string{"nohup", "claude", "--print", "plan"}, []string{"nohup", "claude", "--print", P}},
		{"env", []string{"env", "FOO=1", "claude", "plan"}, []string{"env", "FOO=1", "claude", P}},
		{"npx", []string{"npx", "@anthropic-ai/claude-code@1.0.0", "-p", "plan"}, []string{"npx", "@anthropic-ai/claude-code@1.0.0", "-p", P}},
		{"bash -c", []string{"bash", "-c", "claude -p 'the secret plan' --model opus"}, []string{"bash", "-c", "claude -p " + P + " --model opus"}},
		{"bash -lc with wrappers", []string{"/bin/bash", "-lc", "cd /x && FOO=1 timeout 60 claude -c \"plan\"; echo done"}, []string{"/bin/bash", "-lc", "cd /x && FOO=1 timeout 60 claude -c " + P + "; echo done"}},
		{"sudo bash -c", []string{"sudo", "bash", "-c", "claude -p plan"}, []string{"sudo", "bash", "-c", "claude -p " + P}},
		{"eval nested", []string{"/bin/bash", "-c", "source x 2>/dev/null || true && eval 'claude -p \"a plan\"' < /dev/null && pwd -P"},
			[]string{"/bin/bash", "-c", "source x 2>/dev/null || true && eval 'claude -p [PROMPT]' < /dev/null && pwd -P"}},
		{"codex -c takes a value", []string{"timeout", "9", "codex", "-c", "model=o3", "do it"}, []string{"timeout", "9", "codex", "-c", "model=o3", P}},
		{"not an agent", []string{"grep", "-r", "claude", "."}, []string{"grep", "-r", "claude", "."}},
		{"sh not in command position", []string{"sh", "-c", "which claude && ls ~/.claude"}, []string{"sh", "-c", "which claude && ls ~/.claude"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.Argv(c.in)
			if !slices.Equal(got, c.want) {
				t.Errorf("Argv(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
			if again := r.Argv(got); !slices.Equal(again, got) {
				t.Errorf("not idempotent: %q -> %q", got, again)
			}
		})
	}
	// The agent's own argv: -c is boolean, so the prompt after it is hidden.
	if got := r.AgentArgv([]string{"claude", "-c", "continue the plan"}); !slices.Equal(got, []string{"claude", "-c", P}) {
		t.Errorf("claude -c: %q", got)
	}
	// KeepPrompt keeps wrapped prompts too.
	keep := mustNew(t, Config{KeepPrompt: true})
	if got := keep.Argv([]string{"timeout", "6", "claude", "-p", "plan"}); strings.Contains(strings.Join(got, " "), P) {
		t.Errorf("KeepPrompt: %q", got)
	}
}

// An event's ancestry as lineage builds it for a tool under a wrapped
// agent: the agent root, the wrapper that forked it (timeout), the image
// before it (nohup, which exec'd it), the shell that ran the line and the
// login shell. No element of any argv may carry the prompt.
func TestEventHidesWrappedPrompts(t *testing.T) {
	r := mustNew(t, Config{IsAgent: agent.DefaultTable().IsAgent})
	const prompt = "exfiltrate the customer table"
	e := &event.Event{
		Process: &event.Process{ExecID: "tool", Exe: "/usr/bin/bash", Argv: []string{"/bin/bash", "-c", "eval 'ls'"}},
		Ancestry: []event.Process{
			{ExecID: "root", Exe: "/home/u/.local/share/claude/versions/2.0.31", Argv: []string{"claude", "-c", prompt}},
			{ExecID: "nohup", Exe: "/usr/bin/nohup", Argv: []string{"nohup", "claude", "-c", prompt}},
			{ExecID: "timeout", Exe: "/usr/bin/timeout", Argv: []string{"timeout", "600", "nohup", "claude", "-c", prompt}},
			{ExecID: "sudo", Exe: "/usr/bin/sudo", Argv: []string{"sudo", "-u", "dev", "bash", "-c", "cd /srv && timeout 600 nohup claude -c '" + prompt + "'"}},
			{ExecID: "sh", Exe: "/usr/bin/bash", Argv: []string{"bash", "-c", "sudo -u dev bash -c \"cd /srv && timeout 600 nohup claude -c '" + prompt + "'\""}},
			{ExecID: "login", Exe: "/usr/bin/bash", Argv: []string{"-bash"}},
		},
		Agent: &event.Agent{RootExecID: "root"},
	}
	r.Event(e)
	all := append([]event.Process{*e.Process}, e.Ancestry...)
	for _, p := range all {
		for _, a := range p.Argv {
			if strings.Contains(a, "exfiltrate") {
				t.Errorf("%s keeps the prompt: %q", p.ExecID, p.Argv)
			}
		}
	}
	if got := e.Ancestry[2].Argv; !slices.Equal(got, []string{"timeout", "600", "nohup", "claude", "-c", PromptPlaceholder}) {
		t.Errorf("timeout: %q", got)
	}
}

// A tool's input is redacted with String (agent.tool_call's tool.input): a
// Bash tool's command that starts an agent loses its prompt there too.
func TestStringHidesPromptsInCommands(t *testing.T) {
	r := mustNew(t, Config{})
	for in, want := range map[string]string{
		"timeout 60 claude -p 'the plan' --model opus": "timeout 60 claude -p [PROMPT] --model opus",
		"cd x && nohup claude -c plan > log &":         "cd x && nohup claude -c [PROMPT] > log &",
		"curl -u bob:pw https://h":                     "curl -u bob:[REDACTED] https://h",
		"/home/u/.local/bin/claude":                    "/home/u/.local/bin/claude",
		"Run claude on the repo":                       "Run claude on the repo",
	} {
		if got := r.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	keep := mustNew(t, Config{KeepPrompt: true})
	if got := keep.String("claude -p plan"); got != "claude -p plan" {
		t.Errorf("KeepPrompt: %q", got)
	}
}

// A look-alike agent (recognised by path inside a session, binary not
// verified) is an ordinary member: its argv keeps its words, secrets aside,
// as the process and as an ancestor.
func TestEventLookalikeArgvIsNoPrompt(t *testing.T) {
	r := mustNew(t, Config{IsAgent: agent.DefaultTable().IsAgent})
	look := "/tmp/x/.local/share/claude/versions/9.9.9"
	argv := func() []string { return []string{look, "-c", "curl -H 'Authorization: Bearer abc' h", "words"} }
	e := &event.Event{
		Process:  &event.Process{ExecID: "look", Exe: look, Argv: argv(), AgentLookalike: true},
		Ancestry: []event.Process{{ExecID: "root", Exe: "/home/u/.local/share/claude/versions/2.0.31", Argv: []string{"claude", "-p", "plan"}}},
		Agent:    &event.Agent{RootExecID: "root"},
	}
	r.Event(e)
	if got := e.Process.Argv; !slices.Contains(got, "words") || slices.Contains(got, PromptPlaceholder) || strings.Contains(strings.Join(got, " "), "Bearer abc") {
		t.Errorf("look-alike argv %q: want its words kept and the secret redacted", got)
	}
	if got := e.Ancestry[0].Argv; !slices.Equal(got, []string{"claude", "-p", PromptPlaceholder}) {
		t.Errorf("the real root's argv %q: want its prompt hidden", got)
	}
	child := &event.Event{
		Process:  &event.Process{ExecID: "child", Exe: "/usr/bin/true", Argv: []string{"true"}},
		Ancestry: []event.Process{{ExecID: "look2", Exe: look, Argv: argv(), AgentLookalike: true}},
		Agent:    &event.Agent{RootExecID: "root"},
	}
	r.Event(child)
	if got := child.Ancestry[0].Argv; !slices.Contains(got, "words") || slices.Contains(got, PromptPlaceholder) {
		t.Errorf("look-alike as an ancestor: %q", got)
	}
}

// Events sharing an ancestry (the engine's, for siblings) get one redacted
// copy of it; the shared slice is never written.
func TestEventSharedAncestry(t *testing.T) {
	r := mustNew(t, Config{})
	shared := []event.Process{
		{ExecID: "sh", Argv: []string{"sh", "-c", "curl -H 'Authorization: Bearer sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789' x"}},
		{ExecID: "init", Argv: []string{"/sbin/init"}},
	}
	raw := slices.Clone(shared[0].Argv)
	a := &event.Event{Process: &event.Process{ExecID: "a", Argv: []string{"true"}}, Ancestry: shared}
	b := &event.Event{Process: &event.Process{ExecID: "b", Argv: []string{"true"}}, Ancestry: shared}
	r.Event(a)
	r.Event(b)
	if !slices.Equal(shared[0].Argv, raw) {
		t.Fatalf("the shared ancestry was written: %q", shared[0].Argv)
	}
	if &a.Ancestry[0] == &shared[0] || &a.Ancestry[0] != &b.Ancestry[0] {
		t.Fatal("the events do not share one redacted copy")
	}
	if got := a.Ancestry[0].Argv[2]; strings.Contains(got, "sk-ant-api03") {
		t.Fatalf("not redacted: %q", got)
	}
}
