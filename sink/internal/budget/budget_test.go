package budget_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/budget"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// Trim leaves the original event alone and names only what it cut.
func TestTrimCopiesAndNamesCuts(t *testing.T) {
	ev := testevents.NestedShells(1, 50)
	before, _ := json.Marshal(ev)
	cut, parts := budget.Trim(ev, &budget.Levels[2])
	after, _ := json.Marshal(ev)
	if string(before) != string(after) {
		t.Fatal("Trim changed the event it was given")
	}
	for _, want := range []string{budget.PartArgv, budget.PartPath, budget.PartAncestry} {
		if !slices.Contains(parts, want) {
			t.Errorf("parts %v lack %q", parts, want)
		}
	}
	if n := len(cut.Ancestry); n != 9 {
		t.Errorf("%d ancestors kept, want the nearest 8 and the last", n)
	}
	if last := cut.Ancestry[len(cut.Ancestry)-1]; last.PID != 1 {
		t.Errorf("last ancestor kept is pid %d, want 1", last.PID)
	}
	if _, parts := budget.Trim(testevents.New(event.KindProcessExec, 1, ""), &budget.Levels[0]); len(parts) != 0 {
		t.Errorf("an ordinary event is cut: %v", parts)
	}
}

// Mark writes the marker inside the object tail bytes from the end.
func TestMark(t *testing.T) {
	out := budget.Mark([]byte(`xx{"a":{"b":{}}}`), 2, 3, []string{"argv", "path"})
	if got, want := string(out), `xx{"a":{"b":{"truncated":["argv","path"]}}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	out = budget.Mark([]byte(`{"a":1}`), 0, 1, []string{"argv"})
	if got, want := string(out), `{"a":1,"truncated":["argv"]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
