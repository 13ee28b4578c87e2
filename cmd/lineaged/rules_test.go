package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sink/native"
	"github.com/lineaged/lineaged/tests/testutil"
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

const markerRule = `rules:
  - id: %s
    description: the marker ran
    severity: info
    condition: kind == "process.exec" && process.argv.exists(a, a.startsWith("%s"))
    actions: [alert]
`

// A live sensor reloads its rules on SIGHUP: a broken set is refused and
// the old rule keeps firing; a good set replaces it from then on. Every
// alert names an event of the stream, and the stream has no seq gap.
func TestRunReloadsRulesOnSIGHUP(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	out := filepath.Join(dir, "events.jsonl")
	rules := filepath.Join(dir, "rules.yaml")
	writeRule := func(body string) {
		t.Helper()
		if err := os.WriteFile(rules, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeRule(fmt.Sprintf(markerRule, "marker-one", "lineaged-rule-one"))
	cfg := filepath.Join(dir, "lineaged.yaml")
	if err := os.WriteFile(cfg, []byte("scope: all\noutput: "+out+"\npolicy:\n  rules: "+rules+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "--config", cfg)
	// Its own sequence state: seq from 1, whatever ran before.
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir())
	stderr := &testutil.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	marker := filepath.Join(dir, "marker-true")
	if err := os.Symlink("/bin/true", marker); err != nil {
		t.Fatal(err)
	}

	type line struct {
		EventID string `json:"event_id"`
		Seq     uint64 `json:"seq"`
		Kind    string `json:"kind"`
		Process struct {
			Argv []string `json:"argv"`
		} `json:"process"`
		Alert struct {
			Rule    string `json:"rule"`
			Trigger string `json:"trigger_event_id"`
		} `json:"alert"`
	}
	read := func() []line {
		b, _ := os.ReadFile(out)
		var ls []line
		for _, l := range bytes.Split(b, []byte("\n")) {
			var x line
			if json.Unmarshal(l, &x) == nil {
				ls = append(ls, x)
			}
		}
		return ls
	}
	// alerted reports whether rule fired on the exec of arg.
	alerted := func(rule, arg string) bool {
		ls := read()
		ids := map[string]bool{}
		for _, l := range ls {
			if l.Kind == "process.exec" && slices.Contains(l.Process.Argv, arg) {
				ids[l.EventID] = true
			}
		}
		for _, l := range ls {
			if l.Kind == "policy.alert" && l.Alert.Rule == rule && ids[l.Alert.Trigger] {
				return true
			}
		}
		return false
	}
	// fire runs the marker with arg until rule has fired on it.
	fire := func(rule, arg string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err := exec.Command(marker, arg).Run(); err != nil {
				t.Fatal(err)
			}
			if alerted(rule, arg) {
				return
			}
		}
		t.Fatalf("%s never fired on %s; stderr:\n%s", rule, arg, stderr.String())
	}
	waitLog := func(msg string, n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if strings.Count(stderr.String(), msg) >= n {
				return
			}
		}
		t.Fatalf("no %q in the log:\n%s", msg, stderr.String())
	}

	fire("marker-one", "lineaged-rule-one-a")

	writeRule(fmt.Sprintf(markerRule, "marker-two", "lineaged-rule-two") + "    exceptions: [\"process.argv +\"]\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("rules not reloaded: the previous rules stay in force", 1)
	if !strings.Contains(stderr.String(), rules+": rule marker-two: exception 1: ERROR:") {
		t.Errorf("the refused reload does not say why:\n%s", stderr.String())
	}
	fire("marker-one", "lineaged-rule-one-b")

	writeRule(fmt.Sprintf(markerRule, "marker-two", "lineaged-rule-two"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("rules reloaded", 1)
	fire("marker-two", "lineaged-rule-two-a")
	if err := exec.Command(marker, "lineaged-rule-one-c").Run(); err != nil {
		t.Fatal(err)
	}
	fire("marker-two", "lineaged-rule-two-b") // one-c ran before two-b

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run did not exit cleanly: %v\n%s", err, stderr.String())
	}
	if alerted("marker-one", "lineaged-rule-one-c") {
		t.Error("the replaced rule fired after the reload")
	}
	ls := read()
	seen := map[string]bool{}
	for i, l := range ls {
		if l.Seq != uint64(i+1) || seen[l.EventID] {
			t.Fatalf("event %d: seq %d, id %s repeated=%v", i, l.Seq, l.EventID, seen[l.EventID])
		}
		seen[l.EventID] = true
	}
}

// decodeNative never panics, whatever the input.
func FuzzDecodeNative(f *testing.F) {
	golden, err := os.ReadFile("../../sink/native/testdata/golden.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range bytes.SplitN(golden, []byte("\n"), 4)[:3] {
		f.Add(l)
	}
	f.Add([]byte(`{"schema":"lineaged/v1","kind":"file.open","file":{"path":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = decodeNative(bytes.NewReader(b), func(int, *event.Event) error { return nil })
	})
}

// The default rules path may be missing; any other configured path may not.
func TestLoadRulesDefaultPath(t *testing.T) {
	if _, err := os.Stat(DefaultRulesPath); err == nil {
		t.Skipf("%s exists on this host", DefaultRulesPath)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if rs, err := loadRules(&Config{Policy: PolicyConfig{Rules: DefaultRulesPath}}, log); err != nil || rs != nil {
		t.Fatalf("missing default path: %v %v", rs, err)
	}
	missing := filepath.Join(t.TempDir(), "rules")
	if _, err := loadRules(&Config{Policy: PolicyConfig{Rules: missing}}, log); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing configured path: %v", err)
	}
}
