//go:build linux

package sensor

import (
	"strings"
	"testing"
)

// testTable exercises every part of the format: exe matchers of both ops,
// vetoes, and script suffixes behind an interpreter rule. The real table
// and its install forms are lineage/agent's, tested there.
func testTable() []Recogniser {
	eq := func(l int, s string) Matcher { return Matcher{Op: Equals, Level: l, Text: s} }
	pre := func(l int, s string) Matcher { return Matcher{Op: HasPrefix, Level: l, Text: s} }
	return []Recogniser{
		{Name: "native", Agent: AgentClaudeCode, Exe: []Matcher{eq(1, "versions"), eq(2, "claude")}, NotArgv0: []string{"rg"}},
		{Name: "platform", Agent: AgentClaudeCode, Exe: []Matcher{eq(0, "claude"), pre(1, "claude-code-linux-")}},
		{Name: "codex js", Agent: AgentCodex, Exe: []Matcher{pre(0, "node")}, Script: "/codex/bin/codex.js"},
		{Name: "gemini js", Agent: AgentGemini, Exe: []Matcher{pre(0, "node")}, Script: "/bin/gemini"},
	}
}

func TestDecide(t *testing.T) {
	table := testTable()
	for _, c := range []struct {
		name   string
		exe    string
		argv   []string
		rule   int
		vetoed bool
	}{
		{"exe rule", "/h/claude/versions/2.1", []string{"claude"}, 0, false},
		{"deleted suffix", "/h/claude/versions/2.1 (deleted)", []string{"claude"}, 0, false},
		{"prefix op", "/nm/claude-code-linux-x64/claude", nil, 1, false},
		{"veto", "/h/claude/versions/2.1", []string{"rg", "x"}, 0, true},
		{"script", "/usr/bin/node", []string{"node", "--flag", "/nm/codex/bin/codex.js"}, 2, false},
		{"second script", "/usr/bin/nodejs", []string{"node", "/usr/bin/gemini"}, 3, false},
		{"script in 5th arg", "/usr/bin/node", []string{"node", "-a", "-b", "-c", "/nm/codex/bin/codex.js"}, -1, false},
		{"no script", "/usr/bin/node", []string{"node"}, -1, false},
		{"other script", "/usr/bin/node", []string{"node", "/srv/server.js"}, -1, false},
		{"script without interpreter", "/usr/bin/cat", []string{"cat", "/nm/codex/bin/codex.js"}, -1, false},
		{"path too short", "/claude", []string{"claude"}, -1, false},
		{"empty", "", nil, -1, false},
	} {
		rule, vetoed := Decide(table, c.exe, c.argv)
		if rule != c.rule || vetoed != c.vetoed {
			t.Errorf("%s: Decide = %d, %v; want %d, %v", c.name, rule, vetoed, c.rule, c.vetoed)
		}
		want := AgentNone
		if c.rule >= 0 && !c.vetoed {
			want = table[c.rule].Agent
		}
		if got := RecogniseWith(table, c.exe, c.argv); got != want {
			t.Errorf("%s: RecogniseWith = %v, want %v", c.name, got, want)
		}
	}
}

func TestRecogniseLongArgv0StopsScriptSearch(t *testing.T) {
	// The kernel reads argv strings with a bounded string read and cannot
	// find the next one after a string that fills it; Go agrees.
	argv := []string{strings.Repeat("n", scriptArgMax), "/nm/codex/bin/codex.js"}
	if got := RecogniseWith(testTable(), "/usr/bin/node", argv); got != AgentNone {
		t.Errorf("got %v", got)
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
