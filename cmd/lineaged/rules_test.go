package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sink/native"
)

// The rules tooling reads lineaged's own output: every event of the native
// golden file (every kind, every field set) decodes and encodes back to
// the same bytes. Lines with invalid UTF-8 are left out: those bytes read
// back as U+FFFD, as decodeNative documents.
func TestDecodeNativeRoundTrips(t *testing.T) {
	golden, err := os.ReadFile("../../sink/native/testdata/golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimRight(golden, "\n"), []byte("\n"))
	n := 0
	err = decodeNative(bytes.NewReader(golden), func(line int, ev *event.Event) error {
		want := lines[line-1]
		if bytes.Contains(want, []byte(`"invalid_utf8"`)) {
			return nil
		}
		got, err := native.Encoder{}.Append(nil, ev)
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("line %d does not round-trip:\nwant %s\ngot  %s", line, want, got)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 30 {
		t.Fatalf("only %d lines compared", n)
	}
}

const testRuleFile = `rules:
  - id: curl-in-session
    description: an agent session ran curl
    severity: low
    condition: kind == "process.exec" && has(agent.root_exec_id) && binary.path.endsWith("/curl")
    actions: [alert]
`

// writeEvents encodes evs as the sensor would (numbered, native JSON lines).
func writeEvents(t *testing.T, path string, evs ...*event.Event) {
	t.Helper()
	seq := policy.NewSequencer("test")
	var b []byte
	for _, ev := range evs {
		ev.Schema = event.Schema
		seq.Stamp(ev)
		var err error
		if b, err = (native.Encoder{}).Append(b, ev); err != nil {
			t.Fatal(err)
		}
		b = append(b, '\n')
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func execEvent(session bool, path string) *event.Event {
	ev := &event.Event{Kind: event.KindProcessExec, Time: time.Date(2026, 12, 2, 20, 0, 0, 0, time.UTC),
		Process: &event.Process{ExecID: "x" + path, Exe: path, Argv: []string{path}, Binary: &event.Binary{Path: path, Verdict: "unsigned"}}}
	if session {
		ev.Agent = &event.Agent{Name: "claude-code", RootExecID: "root", Role: event.RoleTool}
	}
	return ev
}

func TestRulesCheckAndTest(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(testRuleFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runBinary(t, nil, "rules", "check", rules); r.code != 0 || !strings.Contains(r.stdout, "1 rules OK") {
		t.Fatalf("check of a good file: %+v", r)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(testRuleFile+`  - id: broken
    description: x
    severity: high
    condition: process.nope
    actions: [alert]
  - id: broken-too
    description: x
    severity: high
    condition: "true"
    actions: [kill-everything]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, nil, "rules", "check", bad)
	if r.code != 1 || !strings.Contains(r.stderr, bad+": rule broken: condition: ERROR:") ||
		!strings.Contains(r.stderr, "undefined field 'nope'") ||
		!strings.Contains(r.stderr, bad+`: rule broken-too: unknown action "kill-everything"`) {
		t.Fatalf("check of a bad file: %+v", r)
	}

	events := filepath.Join(dir, "events.jsonl")
	trig := execEvent(true, "/usr/bin/curl")
	writeEvents(t, events, execEvent(false, "/usr/bin/curl"), execEvent(true, "/usr/bin/ls"), trig)
	r = runBinary(t, nil, "rules", "test", rules, events)
	want := `{"rule":"curl-in-session","trigger_event_id":"` + trig.EventID + `","severity":"low"}` + "\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("rules test: %+v\nwant stdout %s", r, want)
	}
	expect := filepath.Join(dir, "expected.jsonl")
	// Field order does not matter.
	if err := os.WriteFile(expect, []byte(`{"severity":"low","rule":"curl-in-session","trigger_event_id":"`+trig.EventID+`"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runBinary(t, nil, "rules", "test", rules, events, "--expect", expect); r.code != 0 {
		t.Fatalf("rules test --expect, same alerts: %+v", r)
	}
	wrong := `{"rule":"curl-in-session","trigger_event_id":"00000000-0000-7000-8000-000000000000","severity":"low"}`
	if err := os.WriteFile(expect, []byte(wrong+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runBinary(t, nil, "rules", "test", rules, events, "--expect", expect)
	if r.code != 1 || !strings.Contains(r.stderr, "- "+wrong) || !strings.Contains(r.stderr, "+ "+strings.TrimSpace(want)) ||
		!strings.Contains(r.stderr, "alerts differ from "+expect) {
		t.Fatalf("rules test --expect, different alerts: %+v", r)
	}
}

func TestDiffFirings(t *testing.T) {
	if d := diffFirings([]string{"a", "b"}, []string{"a", "b"}); d != "" {
		t.Errorf("same: %q", d)
	}
	if d := diffFirings([]string{"a", "c", "d"}, []string{"a", "b", "d"}); d != "- b\n+ c\n" {
		t.Errorf("one changed: %q", d)
	}
}

// A SIGHUP reload that fails keeps the rules in force and says why; a good
// one replaces them.
func TestReloadRules(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(testRuleFile), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Policy: PolicyConfig{Rules: path}}
	rs, err := loadRules(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := policy.New(policy.Config{Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{cfg: cfg, policy: st}
	if err := os.WriteFile(path, []byte(strings.Replace(testRuleFile, `"/curl"`, `"/curl"+`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	err = p.reloadRules()
	if err == nil || !strings.Contains(err.Error(), path+": rule curl-in-session: condition") {
		t.Fatalf("bad reload: %v", err)
	}
	if st.Rules() != rs || p.reloads.failed.Load() != 1 {
		t.Fatal("a bad reload replaced the rules in force")
	}
	if out := st.Process(execEvent(true, "/usr/bin/curl")); len(out) != 2 {
		t.Fatalf("after a bad reload the old rule does not fire: %d events", len(out))
	}
	if err := os.WriteFile(path, []byte(strings.Replace(testRuleFile, "/curl", "/wget", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.reloadRules(); err != nil {
		t.Fatal(err)
	}
	if out := st.Process(execEvent(true, "/usr/bin/curl")); len(out) != 1 {
		t.Fatalf("the old rule still fires after a good reload")
	}
	if out := st.Process(execEvent(true, "/usr/bin/wget")); len(out) != 2 || p.reloads.ok.Load() != 1 {
		t.Fatalf("the new rule does not fire after a good reload")
	}
}
