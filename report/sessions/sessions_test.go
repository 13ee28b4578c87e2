package sessions

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.txt from the current code")

// fixture is the recorded native output of a real Claude Code session under
// the real sensor (make demo: Bash, Read, Write and a Bash call the policy
// denied, the shipped rules plus one denying curl uploads), its paths and
// host identity redacted.
const fixture = "testdata/demo-session.jsonl.gz"

func readFixture(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open(fixture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func build(t testing.TB, input []byte) *Report {
	t.Helper()
	b := NewBuilder()
	if err := Read(bytes.NewReader(input), "fixture", b.Add); err != nil {
		t.Fatal(err)
	}
	return b.Report()
}

// The terminal tree of the recorded session is golden: a change to the
// view shows up as a diff of testdata/demo-session.golden.txt.
func TestTerminalTreeOfARealSessionIsGolden(t *testing.T) {
	r := build(t, readFixture(t))
	var out bytes.Buffer
	if err := WriteText(&out, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/demo-session.golden.txt"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		gl, wl := strings.Split(out.String(), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s line %d differs (go test -update to accept):\ngot  %q\nwant %q", golden, i+1, g, w)
			}
		}
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("colours written without TextOptions.Color")
	}
}

// What the view is for, checked on the model: the session with its agent,
// id, user and host; its four tool calls in order with their commands and
// the denial; the Bash call's tree with the process that read .env, its
// hash and the alert on it; the hooks apart; the session's counts.
func TestRealSessionModel(t *testing.T) {
	r := build(t, readFixture(t))
	if len(r.Sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(r.Sessions))
	}
	s := r.Sessions[0]
	if s.Agent != "claude-code" || s.Version == "" || s.SessionID == "" || s.User != "root" || s.Host != "demo-host" || s.EndReason != "exit" {
		t.Errorf("session %+v", s)
	}
	var names []string
	for _, c := range s.ToolCalls {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "Bash,Read,Write,Bash" {
		t.Fatalf("tool calls %v, want Bash, Read, Write, Bash in order", names)
	}
	bash, denied := s.ToolCalls[0], s.ToolCalls[3]
	if !strings.HasPrefix(bash.Input, "wc -l ") || bash.Outcome != "success" || len(bash.Procs) == 0 {
		t.Errorf("Bash call %+v", bash)
	}
	if denied.Decision != "deny" || denied.Rule != "demo-no-curl-upload" || len(denied.Procs) != 0 || len(denied.Alerts) != 2 {
		t.Errorf("denied call %+v (alerts %d)", denied, len(denied.Alerts))
	}
	var reader *Proc
	var walk func([]*Proc)
	walk = func(ps []*Proc) {
		for _, p := range ps {
			for _, a := range p.Alerts {
				if a.Rule == "agent-reads-credentials" && strings.HasSuffix(a.On, "/project/.env") {
					reader = p
				}
			}
			walk(p.Children)
		}
	}
	walk(bash.Procs)
	if reader == nil || len(reader.SHA256) != 64 || reader.Verdict == "" {
		t.Fatalf("no process of the Bash call with the agent-reads-credentials alert, its hash and verdict: %+v", reader)
	}
	if len(s.ToolCalls[2].Files) == 0 {
		t.Error("the Write call has no file of the agent")
	}
	hooks := 0
	for _, p := range s.Other {
		if p.Role == "hook" {
			hooks++
		}
	}
	if hooks == 0 {
		t.Error("the hook processes are not shown apart")
	}
	if c := s.Counts; c == nil || c.ToolCalls != 4 || c.DeniedToolCalls != 1 || c.Alerts == 0 {
		t.Errorf("counts %+v", s.Counts)
	}
}

// Input that is not lineaged's output stops the read with an error naming
// the input, the line and the problem.
func TestBadInputNamesTheLine(t *testing.T) {
	good := strings.SplitN(string(readFixture(t)), "\n", 3)
	ok := good[0] + "\n" + good[1] + "\n"
	for _, c := range []struct {
		name, input string
		line        int
		want        string
	}{
		{"not JSON", ok + "hello world\n", 3, "not a JSON object"},
		{"truncated last line", ok + good[2][:200], 3, "truncated line"},
		{"cut line in the middle", ok + good[2][:200] + "\n" + good[1] + "\n", 3, "ends inside the object"},
		{"broken JSON", ok + `{"schema":"lineaged/v2",,}` + "\n", 3, "invalid JSON"},
		{"OCSF", ok + `{"class_uid":1007}` + "\n", 3, "not a lineaged native event"},
		{"future schema", ok + `{"schema":"lineaged/v9","kind":"process.exec"}` + "\n", 3, `schema "lineaged/v9"`},
		{"wrong type", `{"schema":"lineaged/v2","kind":"process.exec","process":{"pid":"x"}}` + "\n", 1, "not a lineaged event"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Read(strings.NewReader(c.input), "events.jsonl", func(*eventT) {})
			var le *LineError
			if !errors.As(err, &le) || le.Line != c.line || !strings.Contains(err.Error(), c.want) ||
				!strings.HasPrefix(err.Error(), "events.jsonl:") {
				t.Fatalf("error %v, want events.jsonl:%d naming %q", err, c.line, c.want)
			}
		})
	}
	// Blank lines and a last line without its newline are fine.
	n := 0
	if err := Read(strings.NewReader("\n"+ok+"\n"+good[1]), "x", func(*eventT) { n++ }); err != nil || n != 3 {
		t.Fatalf("read %d events, err %v; want 3, nil", n, err)
	}
}

type eventT = event.Event

// lineaged/v1 output (events.schema: v1: whole ancestors, posture checks
// on every event) is read like v2: the encoder's golden v1 lines, every
// kind in one session.
func TestReadsV1(t *testing.T) {
	f, err := os.Open("../../sink/native/testdata/golden-v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := NewBuilder()
	kinds := map[string]bool{}
	if err := Read(f, "golden-v1.jsonl", func(ev *event.Event) {
		if ev.Schema != event.SchemaV1 {
			t.Fatalf("schema %q", ev.Schema)
		}
		kinds[ev.Kind] = true
		b.Add(ev)
	}); err != nil {
		t.Fatal(err)
	}
	r := b.Report()
	if len(r.Sessions) == 0 || !kinds[event.KindAgentSessionEnd] || len(r.Sessions[0].ToolCalls) == 0 {
		t.Fatalf("v1: %d sessions, kinds %v", len(r.Sessions), kinds)
	}
}

// Colours only when asked (cmd/lineaged asks on a terminal): alerts red,
// a denial red, verdicts coloured.
func TestColoursOnlyWhenAsked(t *testing.T) {
	r := build(t, readFixture(t))
	var plain, col bytes.Buffer
	WriteText(&plain, r, TextOptions{})
	WriteText(&col, r, TextOptions{Color: true})
	if strings.Contains(plain.String(), "\x1b[") {
		t.Error("colours without Color")
	}
	for _, want := range []string{ansiRed + "DENIED by demo-no-curl-upload" + ansiReset, ansiGreen + "package-verified" + ansiReset, ansiRed + "! ALERT high agent-reads-credentials"} {
		if !strings.Contains(col.String(), want) {
			t.Errorf("no %q in the coloured tree", want)
		}
	}
	if stripped := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(col.String(), ""); stripped != plain.String() {
		t.Error("the coloured tree says something else than the plain one")
	}
}

// The posture at the start and every change of compliance during the
// session, from the host's posture events and from the session's own
// events (a SIEM export may hold only those); an alert of no session (a
// posture change) shows in the sessions it happened during.
func TestPostureChangesDuringTheSession(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ok := &event.Posture{Compliant: true}
	bad := &event.Posture{Compliant: false, Failed: []string{"firewall"}}
	ag := &event.Agent{Name: "claude-code", RootExecID: "root", Role: event.RoleRoot}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	proc := &event.Process{ExecID: "root", Exe: "/usr/bin/claude"}
	b := NewBuilder()
	for _, ev := range []*event.Event{
		{Kind: event.KindPostureSample, Time: at(0), Posture: ok},
		{Kind: event.KindProcessExec, Time: at(1), Agent: ag, Process: proc, Posture: ok},
		{Kind: event.KindPostureChange, Time: at(2), Posture: bad},
		{Kind: event.KindPolicyAlert, Time: at(2), Posture: bad, Alert: &event.Alert{Rule: "posture-noncompliant-in-session", Severity: "high"}},
		{Kind: event.KindFileOpen, Time: at(3), Agent: ag, Process: proc, Posture: bad, File: &event.File{Path: "/x"}},
		{Kind: event.KindFileOpen, Time: at(4), Agent: ag, Process: proc, Posture: ok, File: &event.File{Path: "/y"}},
		{Kind: event.KindProcessExit, Time: at(5), Agent: ag, Process: proc, Posture: ok, Exit: &event.Exit{}},
		{Kind: event.KindPostureChange, Time: at(6), Posture: bad},
	} {
		b.Add(ev)
	}
	s := b.Report().Sessions[0]
	var got []string
	for _, m := range s.Posture {
		got = append(got, fmt.Sprintf("%s %v %v", m.Time.Format("05"), m.Compliant, m.Failed))
	}
	if want := "06 true [],07 false [firewall],09 true []"; strings.Join(got, ",") != want {
		t.Errorf("posture marks %q, want %q", strings.Join(got, ","), want)
	}
	if len(s.Alerts) != 1 || s.Alerts[0].Rule != "posture-noncompliant-in-session" {
		t.Errorf("session alerts %+v", s.Alerts)
	}
}

// The ancestry list is cut before decoding, whatever its strings hold:
// brackets, braces, escaped quotes and backslashes.
func TestAncestryCutKeepsTheRest(t *testing.T) {
	line := `{"schema":"lineaged/v2","kind":"process.exec","process":{"exec_id":"p","argv":["a"]},` +
		`"ancestry":[{"exec_id":"q","argv":["]}\"{[","\\","\\\"]"]},{"exec_id":"r"}],"agent":{"name":"claude-code","root_exec_id":"r","role":"tool"}}`
	var got *event.Event
	if err := Read(strings.NewReader(line+"\n"), "x", func(ev *event.Event) { got = ev }); err != nil {
		t.Fatal(err)
	}
	if got.Process.ExecID != "p" || got.Agent == nil || got.Agent.RootExecID != "r" {
		t.Fatalf("decoded %+v agent %+v", got.Process, got.Agent)
	}
	if c := withoutAncestry([]byte(line)); bytes.Contains(c, []byte("ancestry")) || !bytes.Contains(c, []byte(`"agent"`)) {
		t.Fatalf("cut: %s", c)
	}
}

// A SIEM export need not be in order and may hold redeliveries (Kafka is
// at-least-once): the same events shuffled, with some twice, give the same
// tree.
func TestOrderAndDuplicatesDoNotMatter(t *testing.T) {
	fx := readFixture(t)
	var want bytes.Buffer
	WriteText(&want, build(t, fx), TextOptions{})
	lines := strings.SplitAfter(string(fx), "\n")
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	lines = append(lines, lines[:100]...)
	b := NewBuilder()
	if err := Read(strings.NewReader(strings.Join(lines, "")), "shuffled", b.Add); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	WriteText(&got, b.Report(), TextOptions{})
	if got.String() != want.String() || b.Duplicates() != 100 {
		t.Errorf("shuffled with 100 redeliveries: %d duplicates dropped; tree differs: %v", b.Duplicates(), got.String() != want.String())
	}
}

// An exec that went out before its binary was hashed (verdict error) gets
// the hash and verdict of the process.binary that follows it.
func TestProcessBinaryCompletesTheExec(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ag := &event.Agent{Name: "claude-code", RootExecID: "root", Role: event.RoleTool, ToolUse: &event.ToolUse{ID: "toolu_1", Name: "Bash"}}
	b := NewBuilder()
	b.Add(&event.Event{EventID: "1", Kind: event.KindProcessExec, Time: t0, Agent: ag, Partial: []string{event.PartialBinary},
		Process: &event.Process{ExecID: "p", Exe: "/usr/bin/x", Argv: []string{"x"}, Binary: &event.Binary{Path: "/usr/bin/x", Verdict: event.VerdictError}}})
	b.Add(&event.Event{EventID: "2", Kind: event.KindProcessBinary, Time: t0.Add(time.Second), Agent: ag,
		Process: &event.Process{ExecID: "p", Exe: "/usr/bin/x", Binary: &event.Binary{Path: "/usr/bin/x", SHA256: strings.Repeat("ab", 32), Verdict: event.VerdictPackageVerified}}})
	p := b.Report().Sessions[0].ToolCalls[0].Procs[0]
	if p.SHA256 != strings.Repeat("ab", 32) || p.Verdict != event.VerdictPackageVerified || len(p.Argv) != 1 {
		t.Errorf("process %+v", p)
	}
}

// file.modify events (truncate, link, symlink, mkdir, ...) are the
// process's file operations too, named by their op; a link or symlink
// shows where it points.
func TestFileModifyIsShown(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ag := &event.Agent{Name: "claude-code", RootExecID: "root", Role: event.RoleRoot}
	root := &event.Process{ExecID: "root", Exe: "/usr/bin/claude"}
	sh := &event.Process{ExecID: "sh", ParentExecID: "root", Exe: "/usr/bin/bash"}
	b := NewBuilder()
	for i, ev := range []*event.Event{
		{Kind: event.KindProcessExec, Agent: ag, Process: root},
		{Kind: event.KindProcessExec, Agent: ag, Process: sh},
		{Kind: event.KindFileModify, Agent: ag, Process: sh, File: &event.File{Path: "/w/log", Op: event.FileOpTruncate}},
		{Kind: event.KindFileModify, Agent: ag, Process: sh, File: &event.File{Path: "/w/s", Op: event.FileOpSymlink, Target: "/etc/shadow"}},
		{Kind: event.KindFileModify, Agent: ag, Process: sh, File: &event.File{Path: "/w/a", NewPath: "/w/b", Op: event.FileOpLink}},
	} {
		ev.Time = t0.Add(time.Duration(i) * time.Second)
		b.Add(ev)
	}
	var out strings.Builder
	if err := WriteText(&out, b.Report(), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"truncate /w/log", "symlink /w/s → /etc/shadow", "link /w/a → /w/b"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the tree has no %q:\n%s", want, out.String())
		}
	}
}
