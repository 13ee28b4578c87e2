package ocsf

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/ocsf/ocsfschema"
)

type compactProc struct {
	CmdLine string `json:"cmd_line"`
	UID     string `json:"uid"`
}

// compactOut is what TestCompactAncestryBoundsAncestorCommandLines reads.
type compactOut struct {
	Actor struct {
		Process compactProc `json:"process"`
	} `json:"actor"`
	Process struct {
		CmdLine  string        `json:"cmd_line"`
		Parent   compactProc   `json:"parent_process"`
		Ancestry []compactProc `json:"ancestry"`
	} `json:"process"`
	Unmapped struct {
		Lineaged struct {
			Schema   string           `json:"schema"`
			Binaries []map[string]any `json:"binaries"`
			Cut      bool             `json:"ancestry_argv_truncated"`
		} `json:"lineaged"`
	} `json:"unmapped"`
}

// Compact ancestry (the default) bounds the command line of parent_process
// and of each ancestry entry, flags the cut, keeps the process's own, and
// keeps only the verdicts of the ancestors' binaries; full ancestry and the
// v1 output keep them whole.
func TestCompactAncestryBoundsAncestorCommandLines(t *testing.T) {
	s := loadSchema(t)
	ev := testevents.New(event.KindProcessExec, 1, "s")
	snapshot := "source /home/dev/.claude/shell-snapshots/snapshot-bash.sh && " + strings.Repeat("x", 4000)
	ev.Ancestry[0].Argv = []string{"/bin/bash", "-c", snapshot}
	ev.Process.Argv = []string{"bash", "-c", snapshot}
	for _, tc := range []struct {
		name    string
		enc     Encoder
		compact bool
		schema  string
	}{
		{"compact", Encoder{ProductVersion: "0.1.0"}, true, event.Schema},
		{"full", Encoder{ProductVersion: "0.1.0", Ancestry: event.AncestryFull}, false, event.Schema},
		{"v1", Encoder{ProductVersion: "0.1.0", V1: true}, false, event.SchemaV1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.enc.Append(nil, ev)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ocsfschema.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(m); err != nil {
				t.Fatalf("%v\n%.400s", err, b)
			}
			var out compactOut
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			// The script is one argument, quoted as a shell word.
			full := "/bin/bash -c '" + snapshot + "'"
			if out.Process.CmdLine != "bash -c '"+snapshot+"'" {
				t.Error("the process's own cmd_line was bounded")
			}
			for name, got := range map[string]string{
				"parent_process": out.Process.Parent.CmdLine,
				"ancestry[0]":    out.Process.Ancestry[0].CmdLine,
				"actor.process":  out.Actor.Process.CmdLine,
			} {
				if tc.compact {
					// Within the bound plus the separators and the
					// quotes, which close the cut argument.
					cut := strings.TrimSuffix(got, "'")
					if len(got) > event.MaxAncestorArgvBytes+4 || cut == got || !strings.HasPrefix(full, cut) {
						t.Errorf("%s cmd_line is %d bytes, want a prefix within %d", name, len(got), event.MaxAncestorArgvBytes)
					}
				} else if got != full {
					t.Errorf("%s cmd_line was bounded (%d bytes)", name, len(got))
				}
			}
			l := out.Unmapped.Lineaged
			if l.Cut != tc.compact {
				t.Errorf("ancestry_argv_truncated = %v, want %v", l.Cut, tc.compact)
			}
			if l.Schema != tc.schema {
				t.Errorf("unmapped.lineaged.schema = %q, want %q", l.Schema, tc.schema)
			}
			anc := l.Binaries[1] // [0] is the process's own
			if _, ok := anc["inode"]; ok == tc.compact {
				t.Errorf("ancestor binary entry %v: inode present = %v with compact = %v", anc, ok, tc.compact)
			}
			if _, ok := l.Binaries[0]["inode"]; !ok {
				t.Error("the process's own binary entry lost its inode")
			}
		})
	}
}

// events.ancestry: session ends an agent session's process.ancestry at
// the session's root; outside a session every ancestor stays.
func TestAncestryAtSessionRoot(t *testing.T) {
	s := loadSchema(t)
	enc := Encoder{ProductVersion: "0.1.0", Ancestry: event.AncestrySession}
	for _, tc := range []struct {
		session string
		want    int
	}{{"s", 2}, {"", 3}} {
		ev := testevents.New(event.KindProcessExec, 1, tc.session)
		b, err := enc.Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ocsfschema.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(m); err != nil {
			t.Fatalf("%v\n%.400s", err, b)
		}
		var out compactOut
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if got := len(out.Process.Ancestry); got != tc.want {
			t.Errorf("session %q: %d ancestors, want %d", tc.session, got, tc.want)
		}
		if tc.session != "" && out.Process.Ancestry[len(out.Process.Ancestry)-1].UID != ev.Agent.RootExecID {
			t.Errorf("the last ancestor is %s, want the session root %s", out.Process.Ancestry[len(out.Process.Ancestry)-1].UID, ev.Agent.RootExecID)
		}
	}
}
