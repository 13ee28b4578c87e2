package posture

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// agent_hooks against fake roots: the settings `lineaged hook install`
// writes pass; a missing file, broken JSON, disabled hooks, a hook only
// after calls, one for some tools only, or another program fail.
func TestAgentHooks(t *testing.T) {
	const installed = `{"permissions":{"deny":["WebFetch"]},"hooks":{
 "PreToolUse":[{"matcher":"*","hooks":[{"type":"command","command":"'/usr/bin/lineaged' hook --config '/etc/lineaged/lineaged.yaml'"}]}],
 "PostToolUse":[{"matcher":"*","hooks":[{"type":"command","command":"'/usr/bin/lineaged' hook --config '/etc/lineaged/lineaged.yaml'"}]}]}}`
	for _, c := range []struct {
		name, content string
		ok            bool
		detail        string
	}{
		{"installed", installed, true, "runs lineaged's hook on PreToolUse, PostToolUse"},
		{"missing", "", false, "does not exist"},
		{"broken", `{"hooks":`, false, "not valid settings JSON"},
		{"disabled", strings.Replace(installed, `{"permissions"`, `{"disableAllHooks":true,"permissions"`, 1), false, "disables all hooks"},
		{"post only", `{"hooks":{"PostToolUse":[{"matcher":"*","hooks":[{"type":"command","command":"/usr/bin/lineaged hook"}]}]}}`, false, "no lineaged hook before every tool call"},
		{"bash only", `{"hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"/usr/bin/lineaged hook"}]}]}}`, false, "no lineaged hook"},
		{"other program", `{"hooks":{"PreToolUse":[{"matcher":"*","hooks":[{"type":"command","command":"/usr/bin/true hook"}]}]}}`, false, "no lineaged hook"},
		{"small hook binary", `{"hooks":{"PreToolUse":[{"matcher":"*","hooks":[{"type":"command","command":"'/usr/lib/lineaged/lineaged-hook' --socket '/run/lineaged/hook.sock' --timeout 200ms"}]}]}}`, true, "PreToolUse"},
		{"lineaged without hook", `{"hooks":{"PreToolUse":[{"matcher":"*","hooks":[{"type":"command","command":"/usr/bin/lineaged version"}]}]}}`, false, "no lineaged hook"},
		{"empty matcher", `{"hooks":{"PreToolUse":[{"hooks":[{"type":"command","command":"/opt/lineaged/bin/lineaged hook"}]}]}}`, true, "PreToolUse"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if c.content != "" {
				dir := filepath.Join(root, "etc", "claude-code")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "managed-settings.json"), []byte(c.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := AgentHooks{}.Run(context.Background(), Root(root))
			if r.OK != c.ok || !strings.Contains(r.Detail, c.detail) {
				t.Errorf("ok=%t %q, want ok=%t with %q", r.OK, r.Detail, c.ok, c.detail)
			}
		})
	}
}
