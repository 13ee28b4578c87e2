//go:build linux

package kernel

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/sensor"
)

// testRecognisers is the table the kernel tests load: a few real install
// forms in the rule format, covering both ops, vetoes and script rules. The
// product's table, and the test that the kernel agrees with it on every
// install form, are lineage/agent's; sensor/kernel knows only the format.
func testRecognisers() []sensor.Recogniser {
	eq := func(l int, s string) sensor.Matcher { return sensor.Matcher{Op: sensor.Equals, Level: l, Text: s} }
	pre := func(l int, s string) sensor.Matcher { return sensor.Matcher{Op: sensor.HasPrefix, Level: l, Text: s} }
	veto := []string{"ugrep", "rg", "bfs", "grep", "find"}
	t := []sensor.Recogniser{
		{Name: "native", Agent: sensor.AgentClaudeCode, NotArgv0: veto, Exe: []sensor.Matcher{
			eq(1, "versions"), eq(2, "claude"), eq(3, "share"), eq(4, ".local")}},
		{Name: "npm", Agent: sensor.AgentClaudeCode, NotArgv0: veto, Exe: []sensor.Matcher{
			eq(0, "claude.exe"), eq(1, "bin"), eq(2, "claude-code"), eq(3, "@anthropic-ai")}},
		{Name: "platform", Agent: sensor.AgentClaudeCode, NotArgv0: veto, Exe: []sensor.Matcher{
			eq(0, "claude"), pre(1, "claude-code-linux-"), eq(2, "@anthropic-ai")}},
		{Name: "vscode", Agent: sensor.AgentClaudeCode, NotArgv0: veto, Exe: []sensor.Matcher{
			eq(0, "claude"), eq(1, "native-binary"), eq(2, "resources"), pre(3, "anthropic.claude-code-")}},
		{Name: "codex native", Agent: sensor.AgentCodex, Exe: []sensor.Matcher{
			eq(0, "codex"), eq(1, "codex"), eq(3, "vendor"), pre(4, "codex"), eq(5, "@openai")}},
	}
	for _, l := range []struct {
		agent  sensor.AgentKind
		script string
	}{
		{sensor.AgentClaudeCode, "/@anthropic-ai/claude-code/cli.js"},
		{sensor.AgentClaudeCode, "/bin/claude"},
		{sensor.AgentCodex, "/@openai/codex/bin/codex.js"},
		{sensor.AgentGemini, "/@google/gemini-cli/bundle/gemini.js"},
	} {
		t = append(t, sensor.Recogniser{Name: l.script, Agent: l.agent, Exe: []sensor.Matcher{pre(0, "node")}, Script: l.script})
	}
	return t
}

func TestRecognisersEncoding(t *testing.T) {
	table := testRecognisers()
	k, err := kernelRecognisers(table)
	if err != nil {
		t.Fatal(err)
	}
	// Spot-check the encoding the program compares against.
	native := k[0]
	if native.Agent != uint8(sensor.AgentClaudeCode) || native.M[0].Level != 1 || native.M[0].Len != 8 || native.M[0].LenEq != 0 {
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

func TestConfigDefaultsAndErrors(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionMapSize != DefaultSessionMapSize || c.RingBufferSize != DefaultRingBufferSize ||
		c.QueueSize != DefaultQueueSize || c.LossInterval != DefaultLossInterval || len(c.Recognisers) != 0 ||
		c.FlushInterval != DefaultFlushInterval || c.WakeupBytes != DefaultRingBufferSize/8 {
		t.Errorf("defaults %+v", c)
	}
	for name, bad := range map[string]Config{
		"ring not power of two": {RingBufferSize: 3 << 20},
		"negative queue":        {QueueSize: -1},
		"bad scope":             {Scope: 7},
		"bad recogniser":        {Recognisers: []sensor.Recogniser{{Name: "x"}}},
		"wakeup beyond ring":    {RingBufferSize: 1 << 20, WakeupBytes: 2 << 20},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if s, err := ParseScope("all"); err != nil || s != ScopeAll {
		t.Errorf("ParseScope(all) = %v, %v", s, err)
	}
	for _, v := range []string{"", "agents", "sessions", "session"} {
		if s, err := ParseScope(v); err != nil || s != ScopeAgents {
			t.Errorf("ParseScope(%q) = %v, %v; want agents", v, s, err)
		}
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
