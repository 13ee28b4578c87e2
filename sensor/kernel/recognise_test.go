//go:build linux

package kernel

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

func TestDefaultRecognisersFitTheKernel(t *testing.T) {
	table := sensor.DefaultRecognisers()
	if err := sensor.ValidateRecognisers(table); err != nil {
		t.Fatal(err)
	}
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

func TestSessionsFromProcs(t *testing.T) {
	agentKey := sensor.ProcKey{PID: 10, StartNs: 1_000_000_000}
	inner := sensor.ProcKey{PID: 30, StartNs: 3_000_000_000}
	procs := []*procfs.Proc{
		{Key: sensor.ProcKey{PID: 1}, PPID: 0, Exe: "/usr/lib/systemd/systemd"},
		{Key: sensor.ProcKey{PID: 5}, PPID: 1, Exe: "/usr/bin/bash"},
		{Key: agentKey, PPID: 5, Exe: "/home/u/.local/share/claude/versions/2.1.332", Argv: []string{"claude"}},
		{Key: sensor.ProcKey{PID: 20}, PPID: 10, Exe: "/usr/bin/bash"},
		{Key: sensor.ProcKey{PID: 21}, PPID: 20, Exe: "/usr/bin/sleep"},
		{Key: inner, PPID: 21, Exe: "/usr/bin/node", Argv: []string{"node", "/x/node_modules/@openai/codex/bin/codex.js"}},
		{Key: sensor.ProcKey{PID: 31}, PPID: 30, Exe: "/usr/bin/git"},
		{Key: sensor.ProcKey{PID: 40}, PPID: 1, Exe: "/usr/bin/sshd"},
		{Key: sensor.ProcKey{PID: 50}, PPID: 999, Exe: "/usr/bin/orphan"}, // parent not in the scan
	}
	got := SessionsFromProcs(procs, nil)
	claude := sensor.SessionRef{Root: agentKey, Agent: sensor.AgentClaudeCode}
	codex := sensor.SessionRef{Root: inner, Agent: sensor.AgentCodex}
	want := map[uint32]sensor.SessionRef{10: claude, 20: claude, 21: claude, 30: codex, 31: codex}
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
	procs := []*procfs.Proc{{Key: sensor.ProcKey{PID: 2}, PPID: 3}, {Key: sensor.ProcKey{PID: 3}, PPID: 2}}
	if got := SessionsFromProcs(procs, nil); len(got) != 0 {
		t.Errorf("got %+v", got)
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
