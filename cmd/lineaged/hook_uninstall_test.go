package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHookUninstallKeepsOtherHooks(t *testing.T) {
	dir := t.TempDir()
	settings := filepath.Join(dir, "managed-settings.json")
	other := `{"permissions":{"deny":["WebFetch"]},"hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"/usr/local/bin/audit-bash"}]}]}}`
	if err := os.WriteFile(settings, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := realMain([]string{"hook", "install", "--settings", settings, "--lineaged", "/usr/bin/lineaged", "--small=false"}, &out, &errb); code != 0 {
		t.Fatalf("install: %d %s", code, errb.String())
	}
	b, _ := os.ReadFile(settings)
	if !strings.Contains(string(b), "/usr/bin/lineaged hook") {
		t.Fatalf("install wrote no lineaged hook: %s", b)
	}
	out.Reset()
	if code := realMain([]string{"hook", "uninstall", "--settings", settings}, &out, &errb); code != 0 {
		t.Fatalf("uninstall: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "removed 3 lineaged hook entries") {
		t.Errorf("uninstall said %q", out.String())
	}
	b, _ = os.ReadFile(settings)
	if strings.Contains(string(b), "lineaged") {
		t.Errorf("a lineaged hook is left: %s", b)
	}
	var got, want map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(other), &want)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Errorf("uninstall changed what was not lineaged's:\n got %s\nwant %s", gj, wj)
	}
	// Again: nothing to remove, the file stays.
	out.Reset()
	if code := realMain([]string{"hook", "uninstall", "--settings", settings}, &out, &errb); code != 0 {
		t.Fatalf("second uninstall: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "runs no lineaged hook") {
		t.Errorf("second uninstall said %q", out.String())
	}
}

func TestHookUninstallOnlyLineagedLeavesNoHooksKey(t *testing.T) {
	settings := filepath.Join(t.TempDir(), "managed-settings.json")
	var out, errb bytes.Buffer
	if code := realMain([]string{"hook", "install", "--settings", settings, "--lineaged", "/usr/bin/lineaged", "--small=false"}, &out, &errb); code != 0 {
		t.Fatalf("install: %d %s", code, errb.String())
	}
	if code := realMain([]string{"hook", "uninstall", "--settings", settings}, &out, &errb); code != 0 {
		t.Fatalf("uninstall: %d %s", code, errb.String())
	}
	b, _ := os.ReadFile(settings)
	if strings.TrimSpace(string(b)) != "{}" {
		t.Errorf("left %s, want {}", b)
	}
	// A missing file has nothing to remove.
	if code := realMain([]string{"hook", "uninstall", "--settings", filepath.Join(t.TempDir(), "none.json")}, &out, &errb); code != 0 {
		t.Errorf("uninstall of a missing file: %d %s", code, errb.String())
	}
}
