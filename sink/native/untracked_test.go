package native

import (
	"encoding/json"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// A fork whose child the kernel could not track says "untracked": true in
// every shape, valid against its schema; an ordinary fork has no such
// member, and the schema refuses "untracked": false.
func TestUntrackedFork(t *testing.T) {
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			s, err := sh.schema()
			if err != nil {
				t.Fatal(err)
			}
			for _, untracked := range []bool{false, true} {
				ev := testevents.New(event.KindProcessFork, 3, "s")
				ev.Untracked = untracked
				out, err := sh.enc.Append(nil, ev)
				if err != nil {
					t.Fatal(err)
				}
				if err := schematest.Validate(s, out); err != nil {
					t.Errorf("untracked %v: %v\n%s", untracked, err, out)
				}
				var m map[string]any
				if err := json.Unmarshal(out, &m); err != nil {
					t.Fatal(err)
				}
				if v, ok := m["untracked"]; ok != untracked || (ok && v != true) {
					t.Errorf("untracked %v: output has %v (%v)", untracked, v, ok)
				}
				if untracked {
					m["untracked"] = false
					bad, _ := json.Marshal(m)
					if schematest.Validate(s, bad) == nil {
						t.Errorf("schema accepted %s", bad)
					}
				}
			}
		})
	}
}
