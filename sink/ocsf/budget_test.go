package ocsf

import (
	"encoding/json"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/ocsf/ocsfschema"
)

// The 50-level nested `sh -c` exec goes over 1 MiB in OCSF with whole
// ancestry; with the budget it fits and unmapped.lineaged.truncated says
// what was cut.
func TestNestedShellsFitTheBudget(t *testing.T) {
	const budget = 1<<20 - 4<<10
	ev := testevents.NestedShells(7, 50)
	for _, enc := range []Encoder{{Ancestry: event.AncestryFull}, {V1: true}, {}} {
		whole, err := enc.Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		enc.MaxBytes = budget
		out, err := enc.Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ancestry %q v1 %v: unbudgeted %d bytes, budgeted %d", enc.Ancestry, enc.V1, len(whole), len(out))
		if len(out) > budget {
			t.Fatalf("%d bytes, over the %d budget", len(out), budget)
		}
		m, err := ocsfschema.Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := loadSchema(t).Validate(m); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Unmapped struct {
				Lineaged struct {
					Truncated []string `json:"truncated"`
				} `json:"lineaged"`
			} `json:"unmapped"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if len(whole) > budget && len(got.Unmapped.Lineaged.Truncated) == 0 {
			t.Error("trimmed event carries no unmapped.lineaged.truncated")
		}
	}
}
