package native

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// A compact ancestor's argv is bounded to event.MaxAncestorArgvBytes, cut on
// a rune boundary and flagged; the process's own argv is not.
func TestCompactAncestorArgvIsBoundedAndFlagged(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, 1, "s")
	snapshot := "source /home/dev/.claude/shell-snapshots/snapshot-bash.sh && " + strings.Repeat("é", 2000)
	ev.Ancestry[0].Argv = []string{"/bin/bash", "-c", snapshot}
	ev.Process.Argv = []string{"bash", "-c", snapshot}
	out, err := Encoder{}.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Process  event.Process `json:"process"`
		Ancestry []struct {
			Argv          []string `json:"argv"`
			ArgvTruncated bool     `json:"argv_truncated"`
			Argc          int      `json:"argc"`
		} `json:"ancestry"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	a := m.Ancestry[0]
	total := 0
	for _, s := range a.Argv {
		total += len(s)
		if !utf8.ValidString(s) {
			t.Errorf("cut argv element is not valid UTF-8: %q", s)
		}
	}
	if total > event.MaxAncestorArgvBytes || total < event.MaxAncestorArgvBytes-utf8.UTFMax {
		t.Errorf("ancestor argv is %d bytes, want just under %d", total, event.MaxAncestorArgvBytes)
	}
	if !a.ArgvTruncated || a.Argc != 3 {
		t.Errorf("argv_truncated=%v argc=%d, want true 3", a.ArgvTruncated, a.Argc)
	}
	if m.Ancestry[1].ArgvTruncated {
		t.Error("a short ancestor argv is flagged")
	}
	if m.Process.ArgvTruncated || m.Process.Argv[2] != snapshot {
		t.Error("the process's own argv was bounded like an ancestor's")
	}
	s, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(s, out); err != nil {
		t.Fatal(err)
	}
	// With full ancestry the ancestor keeps its argv.
	out, err = Encoder{Ancestry: event.AncestryFull}.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	m.Ancestry = nil
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m.Ancestry[0].ArgvTruncated || m.Ancestry[0].Argv[2] != snapshot {
		t.Error("full ancestry bounded an ancestor's argv")
	}
}

// The v2 schema must reject what v2 leaves out, and the v1 schema v2's
// events, or the validation tests prove nothing.
func TestV2SchemaRejectsWhatV2LeavesOut(t *testing.T) {
	v2, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	v1, err := schematest.NativeV1()
	if err != nil {
		t.Fatal(err)
	}
	good, err := Encoder{}.Append(nil, testevents.New(event.KindProcessExec, 1, "s"))
	if err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(v1, good); err == nil {
		t.Error("the v1 schema accepts a lineaged/v2 event")
	}
	checks := map[string]any{"firewall": map[string]any{"ok": true}}
	cases := map[string]func(m map[string]any){
		"v1 schema name": func(m map[string]any) { m["schema"] = event.SchemaV1 },
		"posture checks on an exec": func(m map[string]any) {
			m["posture"].(map[string]any)["checks"] = checks
		},
		"ancestor with cwd but not whole": func(m map[string]any) {
			m["ancestry"].([]any)[0].(map[string]any)["cwd"] = "/tmp"
		},
		"ancestor binary with path but not whole": func(m map[string]any) {
			m["ancestry"].([]any)[0].(map[string]any)["binary"].(map[string]any)["path"] = "/x"
		},
		"ancestor without exec_id": func(m map[string]any) {
			delete(m["ancestry"].([]any)[0].(map[string]any), "exec_id")
		},
		"ancestor argc without flag": func(m map[string]any) {
			m["ancestry"].([]any)[0].(map[string]any)["argc"] = 3
		},
	}
	for name, mutate := range cases {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		bad, _ := json.Marshal(m)
		if err := schematest.Validate(v2, bad); err == nil {
			t.Errorf("%s: schema accepted %s", name, bad)
		}
	}
	// A posture event keeps its checks.
	pc, err := Encoder{}.Append(nil, testevents.New(event.KindPostureChange, 2, "s"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pc), `"checks":{`) {
		t.Fatalf("posture.change without checks: %s", pc)
	}
	if err := schematest.Validate(v2, pc); err != nil {
		t.Fatal(err)
	}
}

// The v2 JSON Schema is the v1 schema with exactly the changes docs/schema.md
// lists. A field added to one schema but not the other (both outputs carry
// every new field) fails here.
func TestV2SchemaIsV1WithTheDocumentedChanges(t *testing.T) {
	load := func(path string) map[string]any {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return m
	}
	v1, v2 := load(schematest.SchemaPathV1()), load(schematest.SchemaPath())
	pick := func(m map[string]any, keys ...string) map[string]any {
		out := map[string]any{}
		for _, k := range keys {
			if v, ok := m[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	defs1, defs2 := v1["$defs"].(map[string]any), v2["$defs"].(map[string]any)
	proc := defs1["process"].(map[string]any)
	bin := defs1["binary"].(map[string]any)
	// The compact ancestor: fields of the process, its binary's verdict.
	anc := defs2["ancestor"].(map[string]any)
	ancProps := anc["properties"].(map[string]any)
	for k, v := range ancProps {
		if k == "binary" || k == "loaded" {
			continue
		}
		if !reflect.DeepEqual(v, proc["properties"].(map[string]any)[k]) {
			t.Errorf("$defs.ancestor.%s differs from $defs.process.%s", k, k)
		}
	}
	wantAnc := []string{"exec_id", "pid", "start_time", "exe", "exe_flags", "argv", "argv_truncated", "argc", "uid", "user", "binary", "loaded"}
	if len(ancProps) != len(wantAnc) {
		t.Errorf("$defs.ancestor has %d properties, want %v", len(ancProps), wantAnc)
	}
	ab := defs2["ancestor_binary"].(map[string]any)["properties"].(map[string]any)
	if !reflect.DeepEqual(ab, pick(bin["properties"].(map[string]any), "sha256", "verdict", "signer")) {
		t.Error("$defs.ancestor_binary is not $defs.binary's sha256, verdict and signer")
	}
	al := defs2["ancestor_loaded"].(map[string]any)["properties"].(map[string]any)
	if !reflect.DeepEqual(al, pick(bin["properties"].(map[string]any), "path", "sha256", "verdict")) {
		t.Error("$defs.ancestor_loaded is not $defs.binary's path, sha256 and verdict")
	}
	// Everything else is the same, but for the documented changes.
	strip := func(m map[string]any) {
		delete(m, "$id")
		delete(m, "title")
		delete(m, "description")
		props := m["properties"].(map[string]any)
		delete(props, "schema")
		delete(props, "ancestry")
		defs := m["$defs"].(map[string]any)
		delete(defs, "ancestor")
		delete(defs, "ancestor_binary")
		delete(defs, "ancestor_loaded")
	}
	strip(v1)
	strip(v2)
	all2 := v2["allOf"].([]any)
	v2["allOf"] = all2[:len(all2)-1] // posture checks only on posture events
	if !reflect.DeepEqual(v1, v2) {
		a, _ := json.MarshalIndent(v1, "", " ")
		b, _ := json.MarshalIndent(v2, "", " ")
		t.Fatalf("the schemas differ beyond the documented changes (a field added to one only?)\nv1 %.2000s\nv2 %.2000s", a, b)
	}
}

func TestAppendDoesNotAllocateInAnyShape(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, 1, "s")
	ev.Ancestry[0].Argv = []string{"/bin/bash", "-c", strings.Repeat("x", 4096)}
	buf := make([]byte, 0, 64<<10)
	for _, sh := range shapes {
		allocs := testing.AllocsPerRun(100, func() {
			var err error
			buf, err = sh.enc.Append(buf[:0], ev)
			if err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: Append allocates %.1f times per event", sh.name, allocs)
		}
	}
}
