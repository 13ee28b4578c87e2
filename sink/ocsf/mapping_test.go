package ocsf

import (
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/ocsf/ocsfschema"
)

// activityOut is the part of an OCSF event the activity tests read.
type activityOut struct {
	ClassUID     int    `json:"class_uid"`
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	TypeUID      int    `json:"type_uid"`
	StatusID     int    `json:"status_id"`
	StatusCode   string `json:"status_code"`
	Context      struct {
		RoleID int    `json:"ai_role_id"`
		Role   string `json:"ai_role"`
	} `json:"message_context"`
}

func encodeValid(t *testing.T, ev *event.Event) activityOut {
	t.Helper()
	b := encode(t, ev)
	m, err := ocsfschema.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := loadSchema(t).Validate(m); err != nil {
		t.Fatalf("%s: %v\n%.400s", ev.Kind, err, b)
	}
	var out activityOut
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Each policy event is a new finding (its own finding_info.uid): activity
// 1 Create. A refused connect is Network Activity 5 Refuse; any other
// failure 4 Fail; EINPROGRESS and success 1 Open.
func TestActivityMapping(t *testing.T) {
	for _, k := range []string{event.KindPolicyAlert, event.KindPolicyAction} {
		out := encodeValid(t, testevents.New(k, 1, "s"))
		if out.ClassUID != 2004 || out.ActivityID != 1 || out.ActivityName != "Create" || out.TypeUID != 200401 {
			t.Errorf("%s: %+v, want Detection Finding 1 Create", k, out)
		}
	}
	for _, c := range []struct {
		result     int32
		id         int
		name, code string
	}{
		{0, 1, "Open", ""},
		{-115, 1, "Open", ""},
		{-111, 5, "Refuse", "-111"},
		{-113, 4, "Fail", "-113"},
		{-110, 4, "Fail", "-110"},
	} {
		ev := testevents.New(event.KindNetConnect, 1, "s")
		ev.Net.Result = c.result
		out := encodeValid(t, ev)
		if out.ActivityID != c.id || out.ActivityName != c.name || out.TypeUID != 400100+c.id || out.StatusCode != c.code {
			t.Errorf("connect result %d: %+v, want %d %s", c.result, out, c.id, c.name)
		}
		if c.code != "" && out.StatusID != 2 {
			t.Errorf("connect result %d: status_id %d, want 2 Failure", c.result, out.StatusID)
		}
	}
}

// Only the tool call's own process (and an MCP server) is a Tool; a
// process it started is not.
func TestAIRoleMapping(t *testing.T) {
	for role, want := range map[string]struct {
		id   int
		name string
	}{
		event.RoleRoot:       {4, "Agent"},
		event.RoleTool:       {3, "Tool"},
		event.RoleMCPServer:  {3, "Tool"},
		event.RoleDescendant: {99, event.RoleDescendant},
		event.RoleHook:       {99, event.RoleHook},
	} {
		ev := testevents.New(event.KindProcessExec, 1, "s")
		ev.Agent.Role = role
		out := encodeValid(t, ev)
		if out.Context.RoleID != want.id || out.Context.Role != want.name {
			t.Errorf("role %s: ai_role %d %q, want %d %q", role, out.Context.RoleID, out.Context.Role, want.id, want.name)
		}
	}
}

// cmd_line keeps argument boundaries: a POSIX shell (Python's shlex.split)
// splits it back into exactly argv, whatever the arguments hold.
func TestCmdLineKeepsArgumentBoundaries(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required: %v", err)
	}
	argvs := [][]string{
		{"bash", "-c", "eval 'git status' && echo \"$HOME\""},
		{"rm", "-rf", "a b", "", "c'd", "'", "''", "\\", "$(id)", "`x`", "*", "~", "#x", "a\tb", "line\nbreak"},
		{"/usr/bin/env", "A=1", "B=two words", "--opt=x y", "ünïcødé", "emoji 😀"},
		{"x", "-", "--", "%s", "@a", "+b", ",c", ":d", "./e", "f=g"},
	}
	var lines []string
	for _, argv := range argvs {
		ev := testevents.New(event.KindProcessExec, 1, "s")
		ev.Process.Argv = argv
		var out struct {
			Process struct {
				CmdLine string `json:"cmd_line"`
			} `json:"process"`
		}
		if err := json.Unmarshal(encode(t, ev), &out); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, out.Process.CmdLine)
	}
	in, _ := json.Marshal(lines)
	cmd := exec.Command(py, "-c", `import json, shlex, sys
print(json.dumps([shlex.split(l, posix=True) for l in json.loads(sys.stdin.read())]))`)
	cmd.Stdin = strings.NewReader(string(in))
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var split [][]string
	if err := json.Unmarshal(got, &split); err != nil {
		t.Fatal(err)
	}
	for i, argv := range argvs {
		if strings.Join(split[i], "\x00") != strings.Join(argv, "\x00") || len(split[i]) != len(argv) {
			t.Errorf("cmd_line %q splits into %q, want %q", lines[i], split[i], argv)
		}
	}
}

// A command line holding invalid UTF-8 is listed with its exact bytes (the
// arguments quoted, as cmd_line shows them) in invalid_utf8_base64.
func TestCmdLineExactBytes(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, 1, "s")
	ev.Process.Argv = []string{"printf", "\xff\xfe it's", "ok"}
	var out struct {
		Process struct {
			CmdLine string `json:"cmd_line"`
		} `json:"process"`
		Unmapped struct {
			Lineaged struct {
				Invalid []string                         `json:"invalid_utf8"`
				Raw     []struct{ Value, Base64 string } `json:"invalid_utf8_base64"`
			} `json:"lineaged"`
		} `json:"unmapped"`
	}
	if err := json.Unmarshal(encodeValidBytes(t, ev), &out); err != nil {
		t.Fatal(err)
	}
	if want := "printf '\uFFFD\uFFFD it'\\''s' ok"; out.Process.CmdLine != want {
		t.Errorf("cmd_line %q, want %q", out.Process.CmdLine, want)
	}
	l := out.Unmapped.Lineaged
	if !slices.Contains(l.Invalid, "process.cmd_line") {
		t.Errorf("invalid_utf8 %q lacks process.cmd_line", l.Invalid)
	}
	found := false
	for _, r := range l.Raw {
		if r.Value == out.Process.CmdLine {
			b, err := base64.StdEncoding.DecodeString(r.Base64)
			if err != nil || string(b) != "printf '\xff\xfe it'\\''s' ok" {
				t.Errorf("exact bytes %q (%v)", b, err)
			}
			found = true
		}
	}
	if !found {
		t.Errorf("invalid_utf8_base64 %+v has no entry for the command line", l.Raw)
	}
}

func encodeValidBytes(t *testing.T, ev *event.Event) []byte {
	t.Helper()
	b := encode(t, ev)
	m, err := ocsfschema.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := loadSchema(t).Validate(m); err != nil {
		t.Fatalf("%v\n%.400s", err, b)
	}
	return b
}
