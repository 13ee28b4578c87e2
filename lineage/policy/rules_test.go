package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
)

func writeRules(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodRule = `rules:
  - id: curl-in-session
    description: an agent session ran curl
    severity: low
    condition: kind == "process.exec" && has(agent.root_exec_id) && binary.path.endsWith("/curl")
    exceptions:
      - process.argv.exists(a, a == "--version")
    mitre: [T1105]
    actions: [alert]
`

func TestLoadRulesCompilesAFile(t *testing.T) {
	p := writeRules(t, t.TempDir(), "r.yaml", goodRule)
	rs, err := LoadRules(p)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Len() != 1 || rs.List()[0].ID != "curl-in-session" || rs.List()[0].Source != p {
		t.Fatalf("loaded %+v", rs.List())
	}
}

// Every broken rule is reported at once, each error naming the file, the
// rule and the reason (CEL's own message for a condition).
func TestLoadRulesReportsEveryBadRule(t *testing.T) {
	dir := t.TempDir()
	a := writeRules(t, dir, "a.yaml", goodRule+`  - id: bad-cel
    description: x
    severity: high
    condition: process.no_such_field == 1
    actions: [alert]
  - id: not-bool
    description: x
    severity: high
    condition: process.pid
    actions: [alert]
  - id: bad-bits
    description: x
    severity: urgent
    condition: "true"
    mitre: [T12, T1552.004]
    exceptions: ["file.path +"]
    actions: [alert, kill-everything]
`)
	b := writeRules(t, dir, "b.yml", `rules:
  - id: curl-in-session
    description: again
    severity: low
    condition: "true"
    actions: [alert]
`)
	writeRules(t, dir, "notes.txt", "not a rule file")
	_, err := LoadRules(dir)
	if err == nil {
		t.Fatal("loaded broken rules")
	}
	msg := err.Error()
	for _, want := range []string{
		a + ": rule bad-cel: condition: ERROR: <input>:1:8: undefined field 'no_such_field'",
		a + ": rule not-bool: condition: yields uint, want bool",
		a + `: rule bad-bits: severity "urgent": want one of info, low, medium, high, critical`,
		a + `: rule bad-bits: mitre "T12" is not an ATT&CK technique id`,
		a + `: rule bad-bits: unknown action "kill-everything" (known: alert, deny-tool, kill-process, kill-session)`,
		a + `: rule bad-bits: exception 1: ERROR:`,
		b + ": rule curl-in-session: id already used in " + a,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "T1552.004") {
		t.Errorf("a valid technique id was refused:\n%s", msg)
	}
}

func TestLoadRulesRefusesUnknownKeysAndBadFiles(t *testing.T) {
	dir := t.TempDir()
	p := writeRules(t, dir, "r.yaml", strings.Replace(goodRule, "exceptions:", "exception:", 1))
	if _, err := LoadRules(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "exception") {
		t.Errorf("misspelt key: %v", err)
	}
	if _, err := LoadRules(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file loaded")
	}
	empty := t.TempDir()
	if _, err := LoadRules(empty); err == nil || !strings.Contains(err.Error(), "no *.yaml") {
		t.Errorf("empty directory: %v", err)
	}
	deny := writeRules(t, dir, "d.yaml", strings.Replace(goodRule, "curl-in-session", "deny_exec", 1))
	if _, err := LoadRules(deny); err == nil || !strings.Contains(err.Error(), "deny_exec rule") {
		t.Errorf("rule named deny_exec: %v", err)
	}
}

func TestActionWithParameters(t *testing.T) {
	p := writeRules(t, t.TempDir(), "r.yaml", strings.Replace(goodRule, "actions: [alert]", "actions:\n      - alert: {level: 3}", 1))
	if _, err := LoadRules(p); err == nil || !strings.Contains(err.Error(), "action alert: takes no parameters, got level") {
		t.Errorf("alert with parameters: %v", err)
	}
}

func mustRules(t testing.TB, body string) *Rules {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := LoadRules(p)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func execIn(session bool, path string, argv ...string) *event.Event {
	ev := &event.Event{Kind: event.KindProcessExec, Time: t0, Process: &event.Process{
		ExecID: "e-" + path, Exe: path, Argv: append([]string{path}, argv...),
		Binary: &event.Binary{Path: path, Verdict: event.VerdictPackageVerified},
	}}
	if session {
		ev.Agent = &event.Agent{Name: "claude-code", SessionID: "s1", RootExecID: "root", Role: event.RoleTool,
			ToolUse: &event.ToolUse{ID: "toolu_1", Name: "Bash"}}
	}
	return ev
}

// A matching rule adds one policy.alert after its trigger, carrying the
// rule, the trigger's process, agent and tool call, and, once numbered,
// the trigger's event_id.
func TestAlertActionReportsTheTrigger(t *testing.T) {
	st, err := New(Config{Rules: mustRules(t, goodRule)})
	if err != nil {
		t.Fatal(err)
	}
	seq := NewSequencer("i")
	for _, ev := range []*event.Event{execIn(false, "/usr/bin/curl"), execIn(true, "/usr/bin/curl", "--version"), execIn(true, "/usr/bin/ls")} {
		if out := st.Process(ev); len(out) != 1 {
			t.Errorf("%v %v: %d events, want no alert", ev.Agent != nil, ev.Process.Argv, len(out))
		}
	}
	trig := execIn(true, "/usr/bin/curl", "https://example.com")
	out := st.Process(trig)
	if len(out) != 2 || out[0] != trig {
		t.Fatalf("got %d events, want the trigger and one alert", len(out))
	}
	seq.StampAll(out)
	al := out[1]
	if al.Kind != event.KindPolicyAlert || al.Alert == nil {
		t.Fatalf("second event %s %+v", al.Kind, al.Alert)
	}
	a := al.Alert
	if a.Rule != "curl-in-session" || a.Severity != "low" || a.Message != "an agent session ran curl" ||
		len(a.Mitre) != 1 || a.Mitre[0] != "T1105" || a.TriggerEventID != trig.EventID || a.TriggerEventID == "" {
		t.Errorf("alert %+v (trigger %s)", a, trig.EventID)
	}
	if al.Process != trig.Process || al.Agent.ToolUse.ID != "toolu_1" || al.EventID == trig.EventID {
		t.Errorf("alert does not carry the trigger's process and tool call: %+v", al)
	}
	if st.RuleStats().Alerts["curl-in-session"] != 1 {
		t.Errorf("stats %+v", st.RuleStats())
	}
}

// The sessions variable counts the agent sessions seen and not yet ended.
func TestSessionsVariable(t *testing.T) {
	st, err := New(Config{Rules: mustRules(t, `rules:
  - id: two-sessions
    description: two sessions
    severity: info
    condition: kind == "posture.change" && sessions == 2
    actions: [alert]
`)})
	if err != nil {
		t.Fatal(err)
	}
	posture := &event.Event{Kind: event.KindPostureChange, Posture: &event.Posture{}}
	st.Process(execIn(true, "/bin/a"))
	other := execIn(true, "/bin/b")
	other.Agent = &event.Agent{RootExecID: "root2", Role: event.RoleRoot}
	other.Process.ExecID = "root2"
	st.Process(other)
	if out := st.Process(posture); len(out) != 2 {
		t.Fatalf("two live sessions: %d events", len(out))
	}
	exit := *other
	exit.Kind = event.KindProcessExit
	st.Process(&exit)
	if out := st.Process(posture); len(out) != 1 {
		t.Fatalf("after the second root exited: %d events", len(out))
	}
}

// SetRules swaps the whole set between two events.
func TestSetRulesSwapsBetweenEvents(t *testing.T) {
	st, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ev := func() *event.Event { return execIn(true, "/usr/bin/curl", "x") }
	if out := st.Process(ev()); len(out) != 1 {
		t.Fatalf("no rules: %d events", len(out))
	}
	st.SetRules(mustRules(t, goodRule))
	if out := st.Process(ev()); len(out) != 2 {
		t.Fatalf("after SetRules: %d events", len(out))
	}
	st.SetRules(nil)
	if out := st.Process(ev()); len(out) != 1 {
		t.Fatalf("after removing the rules: %d events", len(out))
	}
}

// The kinds a condition can match are read from its syntax, never too
// narrowly: a rule is skipped only for kinds it cannot match.
func TestKindsOf(t *testing.T) {
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string][]string{
		`kind == "file.open" && file.path == "/x"`:                          {"file.open"},
		`"net.connect" == kind`:                                             {"net.connect"},
		`(kind == "a" || kind == "b") && process.pid > 1u`:                  {"a", "b"},
		`kind in ["a", "b"] && kind == "b"`:                                 {"b"},
		`kind == "a" || process.pid > 1u`:                                   nil,
		`!(kind == "a")`:                                                    nil,
		`has(agent.root_exec_id) && (kind == "a" || (kind == "b" && true))`: {"a", "b"},
		`kind == "a" && kind == "b"`:                                        {},
	} {
		_, a, err := compileBool(env, src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		k := kindsOf(a.NativeRep().Expr())
		if want == nil {
			if !k.any {
				t.Errorf("%s: kinds %v, want any", src, k.kinds)
			}
			continue
		}
		if k.any || len(k.kinds) != len(want) {
			t.Errorf("%s: kinds %+v, want %v", src, k, want)
			continue
		}
		for _, w := range want {
			if !k.kinds[w] {
				t.Errorf("%s: kinds %v, want %v", src, k.kinds, want)
			}
		}
	}
}

// A rule file never panics the loader, whatever it holds.
func FuzzLoadRules(f *testing.F) {
	f.Add([]byte(goodRule))
	f.Add([]byte("rules:\n  - id: x\n    actions:\n      - alert: {a: [1]}\n"))
	f.Add([]byte("rules: {}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "r.yaml")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		rs, err := LoadRules(p)
		if err == nil {
			st, err := New(Config{Rules: rs})
			if err != nil {
				t.Fatal(err)
			}
			st.Process(execIn(true, "/usr/bin/curl"))
		}
	})
}

// SetRules and RuleStats may run while the pipeline's goroutine processes
// events (run with -race); each event gets exactly one set's verdict.
func TestSetRulesWhileProcessing(t *testing.T) {
	a, b := mustRules(t, goodRule), mustRules(t, strings.Replace(goodRule, "curl-in-session", "other-id", 1))
	st, err := New(Config{Rules: a})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			if i%2 == 0 {
				st.SetRules(b)
			} else {
				st.SetRules(a)
			}
			_ = st.RuleStats()
		}
	}()
	for i := 0; i < 2000; i++ {
		if out := st.Process(execIn(true, "/usr/bin/curl")); len(out) != 2 {
			t.Fatalf("event %d: %d events, want the trigger and one alert", i, len(out))
		}
	}
	<-done
	s := st.RuleStats()
	if s.Alerts["curl-in-session"]+s.Alerts["other-id"] != 2000 {
		t.Fatalf("stats %+v", s.Alerts)
	}
}
