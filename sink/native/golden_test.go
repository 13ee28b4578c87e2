package native

import (
	"flag"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

var update = flag.Bool("update", false, "rewrite testdata/golden*.jsonl from the current encoder")

// The encoder's exact bytes for every kind, plain, fully filled and with
// every string invalid: a refactoring must leave them unchanged.
func TestGoldenOutput(t *testing.T) {
	testevents.Golden(t, Encoder{}, "testdata/golden.jsonl", *update)
}

// The same with whole ancestors (events.ancestry: full).
func TestGoldenOutputFullAncestry(t *testing.T) {
	testevents.Golden(t, Encoder{Ancestry: event.AncestryFull}, "testdata/golden-full.jsonl", *update)
}

// The lineaged/v1 compatibility output must stay byte for byte what the
// release before lineaged/v2 wrote: golden-v1.jsonl is that release's
// golden file, never rewritten by -update: it changes by hand only when
// a field is added to the contract, which v1 consumers accept (a field
// dropped or reshaped would be lineaged/v3).
func TestGoldenOutputV1(t *testing.T) {
	testevents.Golden(t, Encoder{V1: true}, "testdata/golden-v1.jsonl", false)
}
