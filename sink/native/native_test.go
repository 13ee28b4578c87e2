package native

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// shapes are the outputs the encoder offers, each with the JSON Schema it
// must validate against.
var shapes = []struct {
	name   string
	enc    Encoder
	schema func() (*jsonschema.Schema, error)
}{
	{"v2 compact", Encoder{}, schematest.Native},
	{"v2 full ancestry", Encoder{Ancestry: event.AncestryFull}, schematest.Native},
	{"v1", Encoder{V1: true}, schematest.NativeV1},
}

func TestEveryKindValidatesAgainstSchema(t *testing.T) {
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			s, err := sh.schema()
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, ev := range testevents.All() {
				out, err := sh.enc.Append(nil, ev)
				if err != nil {
					t.Fatalf("%s: %v", ev.Kind, err)
				}
				if err := schematest.Validate(s, out); err != nil {
					t.Errorf("%s: %v\n%s", ev.Kind, err, out)
				}
				// Every populated field the shape keeps must come
				// back out.
				var back event.Event
				if err := json.Unmarshal(out, &back); err != nil {
					t.Fatalf("%s: %v", ev.Kind, err)
				}
				want, _ := json.Marshal(shaped(t, ev, sh.enc))
				got, _ := json.Marshal(&back)
				if !bytes.Equal(want, got) {
					t.Errorf("%s: round trip differs\nwant %s\ngot  %s", ev.Kind, want, got)
				}
				seen[ev.Kind] = true
			}
			if len(seen) != len(testevents.Kinds) {
				t.Fatalf("covered %d kinds, contract has %d", len(seen), len(testevents.Kinds))
			}
		})
	}
}

// shaped is what enc's output of ev decodes to, as the contract states it
// (docs/schema.md): lineaged/v1 keeps everything; lineaged/v2 keeps the
// posture checks only on posture events and, compact, keeps of each
// ancestor exec_id, pid, start_time, exe, argv (bounded), user (uid when
// the name is unknown) and its binary's sha256, verdict and signer.
func shaped(t *testing.T, ev *event.Event, enc Encoder) *event.Event {
	t.Helper()
	raw, _ := json.Marshal(ev)
	var out event.Event
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if enc.V1 {
		out.Schema = event.SchemaV1
		return &out
	}
	out.Schema = event.Schema
	if out.Posture != nil && !event.PostureDetailed(out.Kind) {
		out.Posture.Checks = nil
	}
	if enc.Ancestry == event.AncestryFull {
		return &out
	}
	for i, a := range out.Ancestry {
		c := event.Process{ExecID: a.ExecID, PID: a.PID, StartTime: a.StartTime, Exe: a.Exe,
			ExeFlags: a.ExeFlags, Argv: a.Argv, ArgvTruncated: a.ArgvTruncated, User: a.User}
		if a.User == "" {
			c.UID = a.UID
		}
		if b := a.Binary; b != nil {
			c.Binary = &event.Binary{SHA256: b.SHA256, Verdict: b.Verdict, Signer: b.Signer}
		}
		if l := a.Loaded; l != nil {
			c.Loaded = &event.Binary{Path: l.Path, SHA256: l.SHA256, Verdict: l.Verdict}
		}
		out.Ancestry[i] = c
	}
	return &out
}

// The schema must reject what the contract forbids, or the test above proves
// nothing.
func TestSchemaRejectsBadEvents(t *testing.T) {
	s, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	good, err := Encoder{}.Append(nil, testevents.New(event.KindProcessExec, 1, "s"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(m map[string]any){
		"unknown field":    func(m map[string]any) { m["surprise"] = 1 },
		"bad kind":         func(m map[string]any) { m["kind"] = "process.spawn" },
		"missing event_id": func(m map[string]any) { delete(m, "event_id") },
		"bad verdict": func(m map[string]any) {
			m["process"].(map[string]any)["binary"].(map[string]any)["verdict"] = "trusted-ish"
		},
		"time not UTC":         func(m map[string]any) { m["time"] = "2026-11-25T20:00:00.123456789+01:00" },
		"exec without process": func(m map[string]any) { delete(m, "process") },
		"pid negative":         func(m map[string]any) { m["process"].(map[string]any)["pid"] = -1 },
		"argc without flag":    func(m map[string]any) { m["process"].(map[string]any)["argc"] = 3 },
	}
	for name, mutate := range cases {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		bad, _ := json.Marshal(m)
		if err := schematest.Validate(s, bad); err == nil {
			t.Errorf("%s: schema accepted %s", name, bad)
		}
	}
}

// replaced is s as the encoder shows it: each byte that is not part of
// valid UTF-8 becomes U+FFFD (docs/schema.md, "Invalid UTF-8").
func replaced(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// exactBytes maps each value an event shows with U+FFFD to its exact bytes,
// from invalid_utf8_base64.
func exactBytes(t *testing.T, list []struct{ Value, Base64 string }) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, e := range list {
		b, err := base64.StdEncoding.DecodeString(e.Base64)
		if err != nil {
			t.Fatalf("invalid_utf8_base64 %q: %v", e.Base64, err)
		}
		if replaced(string(b)) != e.Value {
			t.Errorf("invalid_utf8_base64: %q does not show as %q", b, e.Value)
		}
		m[e.Value] = string(b)
	}
	return m
}

func hostileEvent() *event.Event {
	ev := testevents.New(event.KindFileRename, 9, "s")
	ev.Process.Argv = []string{"sh", "-c", "printf '\xff\xfe'\n\x1b[31mred\x7f", "\u2028line\u2029", "caf\xc3\xa9 \xc3", "ok\x00nul"}
	ev.Process.Exe = "/tmp/\x80evil"
	ev.File.Path = "/tmp/\xed\xa0\x80surrogate-bytes"
	ev.File.NewPath = "/tmp/fine"
	return ev
}

func TestHostileStringsAreLosslessAndMarked(t *testing.T) {
	ev := hostileEvent()
	out, err := Encoder{}.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(out) {
		t.Fatalf("output is not valid UTF-8: %q", out)
	}
	for _, c := range out {
		if c < 0x20 || c == 0x7f {
			t.Fatalf("raw control byte %#x in output %q", c, out)
		}
	}
	if bytes.Contains(out, []byte("\u2028")) || bytes.Contains(out, []byte("\u2029")) {
		t.Fatal("U+2028/U+2029 written raw")
	}
	s, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(s, out); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var m struct {
		Process struct {
			Exe  string   `json:"exe"`
			Argv []string `json:"argv"`
		} `json:"process"`
		File struct {
			Path string `json:"path"`
		} `json:"file"`
		InvalidUTF8 []string                         `json:"invalid_utf8"`
		Raw         []struct{ Value, Base64 string } `json:"invalid_utf8_base64"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	raw := exactBytes(t, m.Raw)
	exact := func(v string) string {
		if b, ok := raw[v]; ok {
			return b
		}
		return v
	}
	if got := exact(m.Process.Exe); got != ev.Process.Exe {
		t.Errorf("exe: got %q want %q", got, ev.Process.Exe)
	}
	if len(m.Process.Argv) != len(ev.Process.Argv) {
		t.Fatalf("argv has %d elements, want %d", len(m.Process.Argv), len(ev.Process.Argv))
	}
	for i, v := range m.Process.Argv {
		if v != replaced(ev.Process.Argv[i]) {
			t.Errorf("argv[%d] shows %q, want %q", i, v, replaced(ev.Process.Argv[i]))
		}
		if got := exact(v); got != ev.Process.Argv[i] {
			t.Errorf("argv[%d]: got %q want %q", i, got, ev.Process.Argv[i])
		}
	}
	if got := exact(m.File.Path); got != ev.File.Path {
		t.Errorf("file.path: got %q want %q", got, ev.File.Path)
	}
	if len(m.Raw) != 4 {
		t.Errorf("invalid_utf8_base64 has %d values, want the 4 that held invalid bytes: %+v", len(m.Raw), m.Raw)
	}
	want := []string{"process.exe", "process.argv", "file.path"}
	if strings.Join(m.InvalidUTF8, ",") != strings.Join(want, ",") {
		t.Errorf("invalid_utf8 = %v, want %v", m.InvalidUTF8, want)
	}
	if clean, _ := (Encoder{}).Append(nil, testevents.New(event.KindFileRename, 9, "s")); bytes.Contains(clean, []byte("invalid_utf8")) {
		t.Error("clean event marked invalid_utf8")
	}
}

// In Python, every value is valid text (a strict UTF-8 encode succeeds)
// and invalid_utf8_base64 gives back the exact bytes.
func TestHostileStringsRoundTripInPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required for this test: %v", err)
	}
	ev := hostileEvent()
	out, err := Encoder{}.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	const script = `
import base64, json, sys
ev = json.loads(sys.stdin.buffer.read().decode("utf-8"))
exact = {e["value"]: base64.b64decode(e["base64"], validate=True) for e in ev.get("invalid_utf8_base64", [])}
def raw(v):
    return exact.get(v, v.encode("utf-8"))
vals = list(ev["process"]["argv"]) + [ev["process"]["exe"], ev["file"]["path"]]
sys.stdout.write("\n".join(raw(v).hex() for v in vals))
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(out)
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	want := append(append([]string{}, ev.Process.Argv...), ev.Process.Exe, ev.File.Path)
	lines := strings.Split(string(got), "\n")
	if len(lines) != len(want) {
		t.Fatalf("python returned %d values, want %d", len(lines), len(want))
	}
	for i, l := range lines {
		var b []byte
		for j := 0; j+1 < len(l); j += 2 {
			v, _ := strconv.ParseUint(l[j:j+2], 16, 8)
			b = append(b, byte(v))
		}
		if string(b) != want[i] {
			t.Errorf("value %d: python decoded %q, want %q", i, b, want[i])
		}
	}
}

func TestHugeArgvIsBoundedAndFlagged(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, 3, "s")
	big := strings.Repeat("é", 20000) // 40000 bytes
	ev.Process.Argv = []string{"x", big}
	for i := 0; i < 5000; i++ {
		ev.Process.Argv = append(ev.Process.Argv, "arg")
	}
	enc := Encoder{MaxArgs: 100, MaxArgBytes: 1001, MaxArgvBytes: 4096}
	out, err := enc.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Process struct {
			Argv          []string `json:"argv"`
			ArgvTruncated bool     `json:"argv_truncated"`
			Argc          int      `json:"argc"`
		} `json:"process"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	p := m.Process
	if !p.ArgvTruncated || p.Argc != len(ev.Process.Argv) {
		t.Fatalf("argv_truncated=%v argc=%d, want true %d", p.ArgvTruncated, p.Argc, len(ev.Process.Argv))
	}
	if len(p.Argv) != 100 {
		t.Errorf("wrote %d args, want 100", len(p.Argv))
	}
	if len(p.Argv[1]) != 1000 || !utf8.ValidString(p.Argv[1]) {
		t.Errorf("arg 1 is %d bytes (valid=%v), want 1000 valid bytes cut on a rune boundary", len(p.Argv[1]), utf8.ValidString(p.Argv[1]))
	}
	if bytes.Contains(out, []byte("invalid_utf8")) {
		t.Error("bounding manufactured invalid UTF-8")
	}
	total := 0
	for _, a := range p.Argv {
		total += len(a)
	}
	if total > 4096 {
		t.Errorf("argv bytes %d > bound 4096", total)
	}
	s, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(s, out); err != nil {
		t.Fatal(err)
	}
	// Within bounds: no flag.
	small := testevents.New(event.KindProcessExec, 4, "s")
	out, _ = enc.Append(nil, small)
	if bytes.Contains(out, []byte("argv_truncated")) {
		t.Error("argv_truncated set for a small argv")
	}
}

func TestRejectsUnencodableEvents(t *testing.T) {
	var enc Encoder
	if _, err := enc.Append(nil, nil); err != ErrNilEvent {
		t.Errorf("nil: %v", err)
	}
	ev := testevents.New(event.KindProcessExec, 1, "")
	ev.EventID = ""
	if _, err := enc.Append(nil, ev); err != ErrNoEventID {
		t.Errorf("no id: %v", err)
	}
	ev = testevents.New(event.KindProcessExec, 1, "")
	ev.Schema = "lineaged/v0"
	if _, err := enc.Append(nil, ev); err == nil || !strings.Contains(err.Error(), "lineaged/v0") {
		t.Errorf("wrong schema: %v", err)
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, 1, "s")
	var enc Encoder
	buf := make([]byte, 0, 64<<10)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		buf, err = enc.Append(buf[:0], ev)
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Append allocates %.1f times per event", allocs)
	}
}

func BenchmarkAppend(b *testing.B) {
	ev := testevents.New(event.KindProcessExec, 1, "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77")
	var enc Encoder
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = enc.Append(buf[:0], ev)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEncodingJSON is the baseline the hand-written appender is
// measured against in the same run.
func BenchmarkEncodingJSON(b *testing.B) {
	ev := testevents.New(event.KindProcessExec, 1, "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77")
	b.ReportAllocs()
	for b.Loop() {
		_, _ = json.Marshal(ev)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// A session's loss (the kernel's session budget) names the session by its
// root's exec id, in both schemas.
func TestSessionBudgetLossNamesSession(t *testing.T) {
	ev := testevents.New(event.KindSensorLoss, 1, "s")
	root := testevents.Agent("s").RootExecID
	ev.Loss = &event.Loss{Where: "session-budget", Of: "file and network records of the session", Count: 4096, RootExecID: root}
	for _, enc := range []Encoder{{}, {V1: true}} {
		s, err := schematest.Native()
		if enc.V1 {
			s, err = schematest.NativeV1()
		}
		if err != nil {
			t.Fatal(err)
		}
		line, err := enc.Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := schematest.Validate(s, line); err != nil {
			t.Errorf("v1 %t: %v\n%s", enc.V1, err, line)
		}
		var got struct {
			Loss event.Loss `json:"loss"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		if got.Loss.RootExecID != root || got.Loss.Where != "session-budget" {
			t.Errorf("v1 %t: loss %+v, want root_exec_id %s", enc.V1, got.Loss, root)
		}
	}
}

// events.ancestry: session ends an agent session's ancestry at its root;
// outside a session nothing is cut, and the event itself is not changed.
func TestAncestryAtSessionRoot(t *testing.T) {
	s, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	enc := Encoder{Ancestry: event.AncestrySession}
	decode := func(ev *event.Event) []event.Process {
		t.Helper()
		line, err := enc.Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := schematest.Validate(s, line); err != nil {
			t.Errorf("%v\n%s", err, line)
		}
		var got struct {
			Ancestry []event.Process `json:"ancestry"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		return got.Ancestry
	}
	in := testevents.New(event.KindProcessExec, 1, "s")
	root := in.Agent.RootExecID
	got := decode(in)
	if len(got) != 2 || got[len(got)-1].ExecID != root {
		t.Errorf("session event: %d ancestors, last %+v, want 2 ending at the root %s", len(got), got[len(got)-1], root)
	}
	if len(in.Ancestry) != 3 {
		t.Errorf("the event itself was cut: %d ancestors", len(in.Ancestry))
	}
	outside := testevents.New(event.KindProcessExec, 2, "")
	if got := decode(outside); len(got) != 3 {
		t.Errorf("event outside a session: %d ancestors, want all 3", len(got))
	}
	if compact, _ := (Encoder{}).Append(nil, in); len(compact) <= 0 {
		t.Fatal("no compact output")
	} else if cut, _ := enc.Append(nil, in); len(cut) >= len(compact) {
		t.Errorf("cut event %d bytes, compact %d", len(cut), len(compact))
	}
}
