package native

import (
	"encoding/json"
	"testing"

	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// budgetBytes is the default budget: kafka.max_message_bytes (1 MiB) less
// the room kept for key and headers.
const budgetBytes = 1<<20 - 4<<10

// Fifty nested `sh -c` levels with 4 KiB argv of control bytes encode to
// over Kafka's 1 MiB message limit with whole ancestors (issue 14). With
// the budget every shape fits, validates, and says what it cut; an
// ordinary event is written byte for byte as without a budget.
func TestNestedShellsFitTheBudget(t *testing.T) {
	ev := testevents.NestedShells(7, 50)
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			whole, err := sh.enc.Append(nil, ev)
			if err != nil {
				t.Fatal(err)
			}
			enc := sh.enc
			enc.MaxBytes = budgetBytes
			out, err := enc.Append([]byte("prefix"), ev)
			if err != nil {
				t.Fatal(err)
			}
			out = out[len("prefix"):]
			t.Logf("unbudgeted %d bytes, budgeted %d", len(whole), len(out))
			if len(out) > budgetBytes {
				t.Fatalf("%d bytes, over the %d budget", len(out), budgetBytes)
			}
			s, err := sh.schema()
			if err != nil {
				t.Fatal(err)
			}
			if err := schematest.Validate(s, out); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Truncated []string `json:"truncated"`
				EventID   string   `json:"event_id"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if got.EventID != ev.EventID {
				t.Errorf("event_id %q, want %q", got.EventID, ev.EventID)
			}
			if len(whole) > budgetBytes && len(got.Truncated) == 0 {
				t.Error("trimmed event carries no truncated marker")
			}
			if len(whole) <= budgetBytes && string(whole) != string(out) {
				t.Error("an event within the budget was changed")
			}
			small := testevents.InSessionExec(1)
			a, _ := sh.enc.Append(nil, small)
			b, _ := enc.Append(nil, small)
			if string(a) != string(b) {
				t.Error("an ordinary event encodes differently with a budget")
			}
		})
	}
	// The reproduction: whole ancestors go over the limit.
	whole, _ := Encoder{V1: true}.Append(nil, ev)
	if len(whole) <= 1<<20 {
		t.Fatalf("the nested event is %d bytes, the test needs it over 1 MiB", len(whole))
	}
}
