package ocsfschema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func root() string {
	if d := os.Getenv("LINEAGED_OCSF_SCHEMA"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "..", "shared", "ocsf-schema-1.8.0")
}

func TestResolution(t *testing.T) {
	s, err := Load(root(), "linux")
	if err != nil {
		t.Fatal(err)
	}
	pa, ok := s.Class(1007)
	if !ok || pa.Name != "process_activity" || pa.CategoryUID != 1 {
		t.Fatalf("class 1007: %+v", pa)
	}
	// extends: base_event -> system -> process_activity.
	if a := pa.Attrs["metadata"]; a == nil || a.Requirement != "required" || a.Type != "metadata" {
		t.Errorf("metadata not inherited from base_event: %+v", a)
	}
	if a := pa.Attrs["actor"]; a == nil || a.Requirement != "required" || a.Profile != "" {
		t.Errorf("system's actor (profile: null over host's) wrong: %+v", a)
	}
	// $include of profiles/ai_operation.json.
	if a := pa.Attrs["message_context"]; a == nil || a.Profile != "ai_operation" {
		t.Errorf("message_context from the ai_operation include: %+v", a)
	}
	// Class enums merge with the base event's.
	if e := pa.Attrs["activity_id"].Enum; e["1"] != "Launch" || e["0"] != "Unknown" || e["99"] != "Other" {
		t.Errorf("activity_id enum %v", e)
	}
	// The linux extension patches process with its profile.
	p, err := s.Object("process")
	if err != nil {
		t.Fatal(err)
	}
	if a := p.Attrs["euid"]; a == nil || a.Profile != "linux/linux_users" {
		t.Errorf("process.euid from the linux extension: %+v", a)
	}
	// process extends process_entity extends _entity: constraints follow.
	if strings.Join(p.AtLeastOne, ",") != "pid,uid,cpid" {
		t.Errorf("process at_least_one %v", p.AtLeastOne)
	}
	// Without the extension, euid is not an attribute.
	bare, err := Load(root())
	if err != nil {
		t.Fatal(err)
	}
	bp, _ := bare.Object("process")
	if bp.Attrs["euid"] != nil {
		t.Error("euid present without the linux extension")
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "version.json") {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := Load(root(), "no-such-ext"); err == nil || !strings.Contains(err.Error(), "no-such-ext") {
		t.Fatalf("unknown extension: %v", err)
	}
}

// Each source file Load reads is named in the error when it is missing or
// wrong, so a broken schema checkout says which file to look at.
func TestLoadErrorsNameTheSource(t *testing.T) {
	write := func(t *testing.T, dir string, files map[string]string) {
		t.Helper()
		for name, body := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	const (
		version = `{"version": "9.9.9"}`
		dict    = `{"attributes": {}, "types": {"attributes": {"x_t": {"type": "string_t"}}}}`
		cats    = `{"attributes": {"system": {"uid": 1, "caption": "System"}}}`
	)
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no dictionary", map[string]string{"version.json": version}, "dictionary.json"},
		{"bad type regex", map[string]string{"version.json": version,
			"dictionary.json": `{"types": {"attributes": {"x_t": {"regex": "("}}}}`}, "type x_t: regex"},
		{"no categories", map[string]string{"version.json": version, "dictionary.json": dict}, "categories.json"},
		{"bad object", map[string]string{"version.json": version, "dictionary.json": dict, "categories.json": cats,
			"objects/o.json": `{`}, "o.json"},
		{"bad event", map[string]string{"version.json": version, "dictionary.json": dict, "categories.json": cats,
			"events/e.json": `{`}, "e.json"},
		{"class in an unknown category", map[string]string{"version.json": version, "dictionary.json": dict, "categories.json": cats,
			"events/e.json": `{"name": "e", "category": "nope", "uid": 1}`}, `unknown category "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tc.files)
			if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error naming %q, got %v", tc.want, err)
			}
		})
	}
	t.Run("minimal schema loads", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, map[string]string{"version.json": version, "dictionary.json": dict, "categories.json": cats})
		s, err := Load(dir)
		if err != nil || s.Version != "9.9.9" || s.types["x_t"].Base != "string_t" {
			t.Fatalf("%v %+v", err, s)
		}
	})
}
