//go:build linux

package sensor

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestRecogniseInstallForms(t *testing.T) {
	home := "/home/dev"
	nm := "/usr/lib/node_modules"
	for _, c := range []struct {
		name string
		exe  string
		argv []string
		want AgentKind
	}{
		{"native", home + "/.local/share/claude/versions/2.1.332", []string{"claude", "-p", "hi"}, AgentClaudeCode},
		{"native deleted after upgrade", home + "/.local/share/claude/versions/2.1.300 (deleted)", []string{"claude"}, AgentClaudeCode},
		{"npm claude.exe", nm + "/@anthropic-ai/claude-code/bin/claude.exe", []string{nm + "/.bin/claude"}, AgentClaudeCode},
		{"npm in a project", "/srv/app/node_modules/@anthropic-ai/claude-code/bin/claude.exe", []string{"claude"}, AgentClaudeCode},
		{"platform x64", nm + "/@anthropic-ai/claude-code-linux-x64/claude", []string{"claude"}, AgentClaudeCode},
		{"platform arm64 musl", nm + "/@anthropic-ai/claude-code-linux-arm64-musl/claude", []string{"claude"}, AgentClaudeCode},
		{"agent sdk platform", "/app/node_modules/@anthropic-ai/claude-agent-sdk-linux-x64/claude", []string{"claude"}, AgentClaudeCode},
		{"python sdk bundled", "/venv/lib/python3.12/site-packages/claude_agent_sdk/_bundled/claude", []string{"claude"}, AgentClaudeCode},
		{"vscode", home + "/.vscode/extensions/anthropic.claude-code-2.0.1-linux-x64/resources/native-binary/claude", []string{"claude"}, AgentClaudeCode},
		{"vscode server", home + "/.vscode-server/extensions/anthropic.claude-code-2.0.1/resources/native-binary/claude", []string{"claude"}, AgentClaudeCode},
		{"legacy cli.js", "/usr/bin/node", []string{"node", nm + "/@anthropic-ai/claude-code/cli.js", "-p"}, AgentClaudeCode},
		{"legacy cli.js with node flags", "/usr/bin/node", []string{"node", "--no-warnings", "--enable-source-maps", nm + "/@anthropic-ai/claude-code/cli.js"}, AgentClaudeCode},
		{"npm bin link via node", home + "/.nvm/versions/node/v22.1.0/bin/node", []string{"node", home + "/.nvm/versions/node/v22.1.0/bin/claude"}, AgentClaudeCode},
		{"agent sdk cli.js", "/usr/bin/node", []string{"node", "/app/node_modules/@anthropic-ai/claude-agent-sdk/cli.js"}, AgentClaudeCode},
		{"cli.js via bun", home + "/.bun/bin/bun", []string{"bun", nm + "/@anthropic-ai/claude-code/cli.js"}, AgentClaudeCode},
		{"codex js", "/usr/bin/node", []string{"node", nm + "/@openai/codex/bin/codex.js"}, AgentCodex},
		{"codex native", nm + "/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex", []string{"codex"}, AgentCodex},
		{"codex platform native", nm + "/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/codex/codex", []string{"codex"}, AgentCodex},
		{"codex bin link", "/usr/bin/node", []string{"node", "/usr/bin/codex", "exec"}, AgentCodex},
		{"gemini dist", "/usr/bin/node", []string{"node", nm + "/@google/gemini-cli/dist/index.js"}, AgentGemini},
		{"gemini bundle", "/usr/bin/node", []string{"node", nm + "/@google/gemini-cli/bundle/gemini.js"}, AgentGemini},
		{"gemini bin link", "/usr/bin/node", []string{"node", "/usr/local/bin/gemini"}, AgentGemini},

		// Not agents.
		{"comm alone", "/usr/bin/python3", []string{"claude"}, AgentNone},
		{"versions dir elsewhere", "/opt/claude/versions/2.1", []string{"claude"}, AgentNone},
		{"cat of cli.js", "/usr/bin/cat", []string{"cat", nm + "/@anthropic-ai/claude-code/cli.js"}, AgentNone},
		{"node other script", "/usr/bin/node", []string{"node", "/srv/app/server.js"}, AgentNone},
		{"node with no script", "/usr/bin/node", []string{"node"}, AgentNone},
		{"node -e", "/usr/bin/node", []string{"node", "-e", "1"}, AgentNone},
		{"node script in 5th arg", "/usr/bin/node", []string{"node", "-a", "-b", "-c", nm + "/@anthropic-ai/claude-code/cli.js"}, AgentNone},
		{"ripgrep vendored", nm + "/@anthropic-ai/claude-code/vendor/ripgrep/x64-linux/rg", []string{"rg"}, AgentNone},
		{"claude.exe as ugrep", nm + "/@anthropic-ai/claude-code/bin/claude.exe", []string{"ugrep", "-G"}, AgentNone},
		{"native as rg", home + "/.local/share/claude/versions/2.1.332", []string{"rg", "--files"}, AgentNone},
		{"empty", "", nil, AgentNone},
	} {
		if got := Recognise(c.exe, c.argv); got != c.want {
			t.Errorf("%s: Recognise(%q, %q) = %v, want %v", c.name, c.exe, c.argv, got, c.want)
		}
	}
}

func TestRecogniseLongArgv0StopsScriptSearch(t *testing.T) {
	// The kernel reads argv strings with a bounded string read and cannot
	// find the next one after a string that fills it; Go agrees.
	argv := []string{strings.Repeat("n", scriptArgMax), "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"}
	if got := Recognise("/usr/bin/node", argv); got != AgentNone {
		t.Errorf("got %v", got)
	}
}

func TestDefaultRecognisersFitTheKernel(t *testing.T) {
	table := DefaultRecognisers()
	if err := ValidateRecognisers(table); err != nil {
		t.Fatal(err)
	}
	k, err := kernelRecognisers(table)
	if err != nil {
		t.Fatal(err)
	}
	// Spot-check the encoding the program compares against.
	native := k[0]
	if native.Agent != uint8(AgentClaudeCode) || native.M[0].Level != 1 || native.M[0].Len != 8 || native.M[0].LenEq != 0 {
		t.Errorf("native rule: %+v", native.M[0])
	}
	var text [8]byte
	binary.LittleEndian.PutUint64(text[:], native.M[0].Text[0])
	if string(text[:]) != "versions" || native.M[0].Mask[0] != ^uint64(0) || native.M[0].Mask[1] != 0 {
		t.Errorf("native rule text %q mask %#x", text, native.M[0].Mask)
	}
	if native.M[4].Op != 0 || native.M[4].Len != 0 || native.M[4].Mask != [4]uint64{} {
		t.Errorf("unused matcher slot must always hold: %+v", native.M[4])
	}
	if native.DenyN != 5 {
		t.Errorf("claude veto count %d", native.DenyN)
	}
	var script *processRecogniser
	for i, r := range table {
		if r.Script == "/@anthropic-ai/claude-code/cli.js" {
			script = &k[i]
			break
		}
	}
	if script == nil || int(script.ScriptLen) != len("/@anthropic-ai/claude-code/cli.js") {
		t.Fatalf("script rule: %+v", script)
	}
	var tail [64]byte
	for w := range 8 {
		binary.LittleEndian.PutUint64(tail[w*8:], script.ScriptText[w])
	}
	if !strings.HasSuffix(string(tail[:]), "/@anthropic-ai/claude-code/cli.js") || tail[0] != 0 {
		t.Errorf("script suffix not right-aligned: %q", tail)
	}
}

func TestValidateRecogniserErrors(t *testing.T) {
	ok := Matcher{Op: Equals, Level: 0, Text: "claude"}
	for name, c := range map[string]struct {
		r    Recogniser
		want string
	}{
		"no agent":       {Recogniser{Name: "x", Exe: []Matcher{ok}}, "no agent"},
		"no exe":         {Recogniser{Name: "x", Agent: AgentCodex, Script: "/a.js"}, "exe matchers"},
		"too many":       {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{ok, ok, ok, ok, ok, ok, ok}}, "exe matchers"},
		"bad op":         {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{{Op: 9, Text: "a"}}}, "unknown op"},
		"deep level":     {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{{Op: Equals, Level: 8, Text: "a"}}}, "level 8"},
		"long text":      {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{{Op: Equals, Text: strings.Repeat("a", 33)}}}, "1 to 32"},
		"slash":          {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{{Op: Equals, Text: "a/b"}}}, "'/'"},
		"script no /":    {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{ok}, Script: "cli.js"}, "start with '/'"},
		"long veto":      {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{ok}, NotArgv0: []string{strings.Repeat("v", 32)}}, "veto"},
		"too many vetos": {Recogniser{Name: "x", Agent: AgentCodex, Exe: []Matcher{ok}, NotArgv0: []string{"a", "b", "c", "d", "e", "f", "g"}}, "vetoes"},
	} {
		err := c.r.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to mention %q", name, err, c.want)
		}
	}
	big := make([]Recogniser, MaxRecognisers+1)
	if err := ValidateRecognisers(big); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversized table: %v", err)
	}
}

func TestSessionsFromProcs(t *testing.T) {
	agentKey := ProcKey{PID: 10, StartNs: 1_000_000_000}
	inner := ProcKey{PID: 30, StartNs: 3_000_000_000}
	procs := []SeedProc{
		{Key: ProcKey{PID: 1}, PPID: 0, Exe: "/usr/lib/systemd/systemd"},
		{Key: ProcKey{PID: 5}, PPID: 1, Exe: "/usr/bin/bash"},
		{Key: agentKey, PPID: 5, Exe: "/home/u/.local/share/claude/versions/2.1.332", Argv: []string{"claude"}},
		{Key: ProcKey{PID: 20}, PPID: 10, Exe: "/usr/bin/bash"},
		{Key: ProcKey{PID: 21}, PPID: 20, Exe: "/usr/bin/sleep"},
		{Key: inner, PPID: 21, Exe: "/usr/bin/node", Argv: []string{"node", "/x/node_modules/@openai/codex/bin/codex.js"}},
		{Key: ProcKey{PID: 31}, PPID: 30, Exe: "/usr/bin/git"},
		{Key: ProcKey{PID: 40}, PPID: 1, Exe: "/usr/bin/sshd"},
		{Key: ProcKey{PID: 50}, PPID: 999, Exe: "/usr/bin/orphan"}, // parent not in the scan
	}
	got := SessionsFromProcs(procs, nil)
	claude := SessionRef{Root: agentKey, Agent: AgentClaudeCode}
	codex := SessionRef{Root: inner, Agent: AgentCodex}
	want := map[uint32]SessionRef{10: claude, 20: claude, 21: claude, 30: codex, 31: codex}
	if len(got) != len(want) {
		t.Errorf("got %d members, want %d: %+v", len(got), len(want), got)
	}
	for pid, ref := range want {
		if got[pid] != ref {
			t.Errorf("pid %d: %+v, want %+v", pid, got[pid], ref)
		}
	}
}

func TestSessionsFromProcsCycleTerminates(t *testing.T) {
	// A pid-reuse race can make a scan's parent links loop.
	procs := []SeedProc{{Key: ProcKey{PID: 2}, PPID: 3}, {Key: ProcKey{PID: 3}, PPID: 2}}
	if got := SessionsFromProcs(procs, nil); len(got) != 0 {
		t.Errorf("got %+v", got)
	}
}

func TestParseStatPPIDStart(t *testing.T) {
	line := "1234 (we) ird (name)) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10 18446744073709551615\n"
	ppid, start, err := parseStatPPIDStart([]byte(line))
	if err != nil || ppid != 77 || start != 98765 {
		t.Errorf("ppid %d start %d err %v", ppid, start, err)
	}
	for _, bad := range []string{"no paren", "1 (x) S 1 2", "1 (x) S notanumber 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 1 0 5 0"} {
		if _, _, err := parseStatPPIDStart([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionMapSize != DefaultSessionMapSize || c.RingBufferSize != DefaultRingBufferSize ||
		c.QueueSize != DefaultQueueSize || c.LossInterval != DefaultLossInterval || len(c.Recognisers) == 0 ||
		c.FlushInterval != DefaultFlushInterval || c.WakeupBytes != DefaultRingBufferSize/8 {
		t.Errorf("defaults %+v", c)
	}
	for name, bad := range map[string]Config{
		"ring not power of two": {RingBufferSize: 3 << 20},
		"negative queue":        {QueueSize: -1},
		"bad scope":             {Scope: 7},
		"bad recogniser":        {Recognisers: []Recogniser{{Name: "x"}}},
		"wakeup beyond ring":    {RingBufferSize: 1 << 20, WakeupBytes: 2 << 20},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if s, err := ParseScope("all"); err != nil || s != ScopeAll {
		t.Errorf("ParseScope(all) = %v, %v", s, err)
	}
	if _, err := ParseScope("everything"); err == nil {
		t.Error("ParseScope accepted a bad value")
	}
}

func TestParseRelease(t *testing.T) {
	for rel, want := range map[string][2]int{"6.18.44-fc-v782": {6, 18}, "5.8.0": {5, 8}, "5.10": {5, 10}, "4.19.0-rc1": {4, 19}} {
		maj, min, ok := parseRelease(rel)
		if !ok || maj != want[0] || min != want[1] {
			t.Errorf("%s: %d.%d %v", rel, maj, min, ok)
		}
	}
	if _, _, ok := parseRelease("garbage"); ok {
		t.Error("parsed garbage")
	}
}

func TestReportErrNamesWhatIsMissing(t *testing.T) {
	r := Report{Checks: []Check{
		{Name: "kernel BTF", Required: true, OK: false, Detail: "no kernel BTF at /sys/kernel/btf/vmlinux"},
		{Name: "tracefs", Required: false, OK: false, Detail: "not mounted"},
		{Name: "capabilities", Required: true, OK: true},
	}}
	err := r.Err()
	if err == nil || !strings.Contains(err.Error(), "kernel BTF: no kernel BTF") || strings.Contains(err.Error(), "tracefs") {
		t.Errorf("Err() = %v", err)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "FAIL") || !strings.Contains(b.String(), "not needed") {
		t.Errorf("table:\n%s", b.String())
	}
}
