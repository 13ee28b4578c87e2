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
