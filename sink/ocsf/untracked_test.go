package ocsf

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/ocsf/ocsfschema"
)

// A fork whose child the kernel could not track is a Process Activity
// Launch (Fork) like any other, valid OCSF, with unmapped.lineaged.untracked.
func TestUntrackedForkMapping(t *testing.T) {
	s := loadSchema(t)
	for _, untracked := range []bool{false, true} {
		ev := testevents.New(event.KindProcessFork, 3, "s")
		ev.Untracked = untracked
		b := encode(t, ev)
		m, err := ocsfschema.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(m); err != nil {
			t.Errorf("untracked %v: %v\n%s", untracked, err, b)
		}
		lin, _ := m["unmapped"].(map[string]any)["lineaged"].(map[string]any)
		v, ok := lin["untracked"]
		if ok != untracked || (ok && v != true) {
			t.Errorf("untracked %v: unmapped.lineaged.untracked %v (%v)", untracked, v, ok)
		}
		if m["launch_type"] != "Fork" {
			t.Errorf("launch_type %v", m["launch_type"])
		}
	}
}
