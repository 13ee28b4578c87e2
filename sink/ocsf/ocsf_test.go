package ocsf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/native"
	"github.com/lineaged/lineaged/sink/ocsf/ocsfschema"
)

// schemaDir is ../shared/ocsf-schema-1.8.0 from the repository root, or
// LINEAGED_OCSF_SCHEMA.
func schemaDir() string {
	if d := os.Getenv("LINEAGED_OCSF_SCHEMA"); d != "" {
		return d
	}
	return filepath.Join(schematest.RepoRoot(), "..", "shared", "ocsf-schema-1.8.0")
}

var loadOnce = sync.OnceValues(func() (*ocsfschema.Schema, error) {
	return ocsfschema.Load(schemaDir(), "linux")
})

func loadSchema(t testing.TB) *ocsfschema.Schema {
	t.Helper()
	s, err := loadOnce()
	if err != nil {
		t.Fatalf("OCSF schema sources (set LINEAGED_OCSF_SCHEMA to override %s): %v", schemaDir(), err)
	}
	if s.Version != Version {
		t.Fatalf("schema sources are OCSF %s, encoder writes %s", s.Version, Version)
	}
	return s
}

func encode(t testing.TB, ev *event.Event) []byte {
	t.Helper()
	b, err := Encoder{ProductVersion: "0.1.0"}.Append(nil, ev)
	if err != nil {
		t.Fatalf("%s: %v", ev.Kind, err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s: invalid JSON: %s", ev.Kind, b)
	}
	return b
}

func TestEveryKindValidatesAgainstOCSF(t *testing.T) {
	s := loadSchema(t)
	classes := map[int]bool{}
	for _, ev := range testevents.All() {
		b := encode(t, ev)
		m, err := ocsfschema.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(m); err != nil {
			t.Errorf("%s:\n%v\n%.400s", ev.Kind, err, b)
		}
		uid, _ := m["class_uid"].(json.Number).Int64()
		classes[int(uid)] = true
	}
	for _, want := range []int{1007, 1001, 4001, 5002, 5019, 2004} {
		if !classes[want] {
			t.Errorf("class %d never emitted", want)
		}
	}
	// Without an agent session (ai_operation not declared) too.
	for _, k := range []string{event.KindProcessExec, event.KindFileOpen, event.KindNetConnect} {
		ev := testevents.New(k, 1, "")
		m, _ := ocsfschema.Decode(encode(t, ev))
		if err := s.Validate(m); err != nil {
			t.Errorf("%s without agent: %v", k, err)
		}
	}
}

func TestContentMapping(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, 7, "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77")
	var m struct {
		Process struct {
			UID      string `json:"uid"`
			CmdLine  string `json:"cmd_line"`
			Ancestry []struct {
				PID int    `json:"pid"`
				UID string `json:"uid"`
			} `json:"ancestry"`
			Parent struct {
				PID  int `json:"pid"`
				File struct {
					Hashes []struct {
						AlgorithmID int    `json:"algorithm_id"`
						Value       string `json:"value"`
					} `json:"hashes"`
				} `json:"file"`
			} `json:"parent_process"`
			File struct {
				Hashes []struct {
					AlgorithmID int    `json:"algorithm_id"`
					Value       string `json:"value"`
				} `json:"hashes"`
			} `json:"file"`
		} `json:"process"`
		Actor struct {
			User struct {
				Name     string `json:"name"`
				UID      string `json:"uid"`
				FullName string `json:"full_name"`
			} `json:"user"`
			Process struct {
				PID int `json:"pid"`
			} `json:"process"`
			AppName string `json:"app_name"`
			AppUID  string `json:"app_uid"`
		} `json:"actor"`
		Device struct {
			UID         string `json:"uid"`
			IsCompliant *bool  `json:"is_compliant"`
		} `json:"device"`
		MessageContext struct {
			UID         string `json:"uid"`
			AIRoleID    int    `json:"ai_role_id"`
			Application struct {
				Name string `json:"name"`
				UID  string `json:"uid"`
			} `json:"application"`
		} `json:"message_context"`
		Metadata struct {
			UID      string   `json:"uid"`
			Profiles []string `json:"profiles"`
		} `json:"metadata"`
		Unmapped struct {
			Lineaged struct {
				Seq   uint64 `json:"seq"`
				Agent struct {
					RootExecID string `json:"root_exec_id"`
					ToolUse    struct {
						ID string `json:"id"`
					} `json:"tool_use"`
				} `json:"agent"`
				Binaries []struct {
					Verdict string `json:"verdict"`
				} `json:"binaries"`
			} `json:"lineaged"`
		} `json:"unmapped"`
	}
	if err := json.Unmarshal(encode(t, ev), &m); err != nil {
		t.Fatal(err)
	}
	p := m.Process
	if p.UID != ev.Process.ExecID || p.CmdLine != `bash -c 'eval '\''git status'\'''` {
		t.Errorf("process uid/cmd_line: %q %q", p.UID, p.CmdLine)
	}
	if len(p.File.Hashes) != 1 || p.File.Hashes[0].AlgorithmID != 3 || p.File.Hashes[0].Value != ev.Process.Binary.SHA256 {
		t.Errorf("process.file.hashes: %+v", p.File.Hashes)
	}
	if len(p.Ancestry) != len(ev.Ancestry) || p.Ancestry[0].UID != ev.Ancestry[0].ExecID || p.Ancestry[2].PID != 1 {
		t.Errorf("ancestry: %+v", p.Ancestry)
	}
	if p.Parent.PID != int(ev.Ancestry[0].PID) || len(p.Parent.File.Hashes) != 1 {
		t.Errorf("parent_process: %+v", p.Parent)
	}
	if m.Actor.Process.PID != int(ev.Process.PPID) {
		t.Errorf("Launch actor is pid %d, want the parent %d", m.Actor.Process.PID, ev.Process.PPID)
	}
	if m.Actor.User.Name != "dev" || m.Actor.User.UID != "1000" || m.Actor.User.FullName != "Dana Developer" {
		t.Errorf("actor.user: %+v", m.Actor.User)
	}
	if m.Actor.AppName != "claude-code" || m.Actor.AppUID != ev.Agent.SessionID {
		t.Errorf("actor app: %q %q", m.Actor.AppName, m.Actor.AppUID)
	}
	if m.Device.UID != ev.Host.MachineID || m.Device.IsCompliant == nil || *m.Device.IsCompliant {
		t.Errorf("device: %+v", m.Device)
	}
	mc := m.MessageContext
	if mc.UID != ev.Agent.SessionID || mc.AIRoleID != 3 || mc.Application.Name != "claude-code" || mc.Application.UID != ev.Agent.RootExecID {
		t.Errorf("message_context: %+v", mc)
	}
	if m.Metadata.UID != ev.EventID || !strings.Contains(strings.Join(m.Metadata.Profiles, ","), "ai_operation") {
		t.Errorf("metadata: %+v", m.Metadata)
	}
	u := m.Unmapped.Lineaged
	if u.Seq != 7 || u.Agent.RootExecID != ev.Agent.RootExecID || u.Agent.ToolUse.ID != "toolu_01ABCdef" || len(u.Binaries) != 4 || u.Binaries[0].Verdict != event.VerdictPackageVerified {
		t.Errorf("unmapped.lineaged: %+v", u)
	}
}

// The validator must fail on what OCSF forbids; otherwise passing proves
// nothing.
func TestValidatorRejects(t *testing.T) {
	s := loadSchema(t)
	good := encode(t, testevents.New(event.KindProcessExec, 1, "s"))
	get := func(m map[string]any, path ...string) map[string]any {
		for _, p := range path {
			m = m[p].(map[string]any)
		}
		return m
	}
	cases := map[string]struct {
		mutate func(m map[string]any)
		want   string
	}{
		"missing required process":        {func(m map[string]any) { delete(m, "process") }, "process: required"},
		"missing required device.os.name": {func(m map[string]any) { delete(get(m, "device", "os"), "name") }, "device.os.name: required"},
		"unknown attribute":               {func(m map[string]any) { get(m, "process")["colour"] = "red" }, "process.colour: not an attribute"},
		"activity outside enum":           {func(m map[string]any) { m["activity_id"] = json.Number("42"); m["type_uid"] = json.Number("100742") }, "activity_id: 42 is not a value"},
		"wrong type_uid":                  {func(m map[string]any) { m["type_uid"] = json.Number("100702") }, "type_uid"},
		"pid as string":                   {func(m map[string]any) { get(m, "process")["pid"] = "4242" }, "process.pid: want an integer"},
		"hash algorithm outside enum": {func(m map[string]any) {
			get(m, "process", "file")["hashes"].([]any)[0].(map[string]any)["algorithm_id"] = json.Number("77")
		}, "algorithm_id: 77"},
		"sibling caption mismatch": {func(m map[string]any) { m["activity_name"] = "Terminate" }, "activity_name"},
		"profile not declared": {func(m map[string]any) {
			get(m, "metadata")["profiles"] = []any{"host", "linux/linux_users"}
		}, "message_context: belongs to profile ai_operation"},
		"linux_users attribute without profile": {func(m map[string]any) {
			get(m, "metadata")["profiles"] = []any{"host", "ai_operation"}
		}, "process.euid: belongs to profile linux/linux_users"},
		"bad email":                {func(m map[string]any) { get(m, "actor", "user")["email_addr"] = "not an email" }, "email_addr"},
		"wrong class for category": {func(m map[string]any) { m["category_uid"] = json.Number("4") }, "category_uid"},
		"unknown class":            {func(m map[string]any) { m["class_uid"] = json.Number("1999") }, "class_uid 1999"},
		"integer overflow":         {func(m map[string]any) { get(m, "process")["pid"] = json.Number("99999999999") }, "does not fit integer_t"},
		"empty actor":              {func(m map[string]any) { m["actor"] = map[string]any{} }, "actor: actor needs at least one"},
	}
	for name, tc := range cases {
		m, err := ocsfschema.Decode(good)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(m); err != nil {
			t.Fatalf("baseline invalid: %v", err)
		}
		tc.mutate(m)
		err = s.Validate(m)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", name, err, tc.want)
		}
	}
}

func TestHostileStringsStayValid(t *testing.T) {
	s := loadSchema(t)
	ev := testevents.New(event.KindFileRename, 3, "s")
	ev.Process.Argv = []string{"sh", "-c", "x\xff\n\x1b[1m", strings.Repeat("A", 100000)}
	ev.File.Path = "/tmp/\x80bad"
	b := encode(t, ev)
	if !utf8.Valid(b) {
		t.Fatal("output is not valid UTF-8")
	}
	for _, c := range b {
		if c < 0x20 {
			t.Fatalf("raw control byte %#x", c)
		}
	}
	m, _ := ocsfschema.Decode(b)
	if err := s.Validate(m); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Unmapped struct {
			Lineaged struct {
				Invalid []string `json:"invalid_utf8"`
				Process struct {
					ArgvTruncated bool `json:"argv_truncated"`
					Argc          int  `json:"argc"`
				} `json:"process"`
			} `json:"lineaged"`
		} `json:"unmapped"`
	}
	json.Unmarshal(b, &v)
	l := v.Unmapped.Lineaged
	got := strings.Join(l.Invalid, ",")
	for _, want := range []string{"actor.process.cmd_line", "file.path"} {
		if !strings.Contains(got, want) {
			t.Errorf("invalid_utf8 %v lacks %s", l.Invalid, want)
		}
	}
	if !l.Process.ArgvTruncated || l.Process.Argc != 4 {
		t.Errorf("argv bound not flagged: %+v", l.Process)
	}
	if len(b) > 64<<10 {
		t.Errorf("event is %d bytes: argv bound not applied", len(b))
	}
}

func TestUnknownKindIsAnError(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, 1, "")
	ev.Kind = "process.teleport"
	if _, err := (Encoder{}).Append(nil, ev); err == nil || !strings.Contains(err.Error(), "process.teleport") {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkAppend(b *testing.B) {
	ev := testevents.New(event.KindProcessExec, 1, "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77")
	enc := Encoder{ProductVersion: "0.1.0"}
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = enc.Append(buf[:0], ev)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func TestAppendDoesNotAllocate(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, 1, "s")
	enc := Encoder{ProductVersion: "0.1.0"}
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

// BenchmarkAppendNativeBaseline encodes the same event in the native format
// in the same run, the baseline the OCSF figure is read against.
func BenchmarkAppendNativeBaseline(b *testing.B) {
	ev := testevents.New(event.KindProcessExec, 1, "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77")
	var enc native.Encoder
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = enc.Append(buf[:0], ev)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
