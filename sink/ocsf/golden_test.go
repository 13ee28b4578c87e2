package ocsf

import (
	"flag"
	"testing"

	"github.com/lineaged/lineaged/sink/internal/testevents"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.jsonl from the current encoder")

// The encoder's exact bytes for every kind, plain, fully filled and with
// every string invalid: a refactoring must leave them unchanged.
func TestGoldenOutput(t *testing.T) {
	testevents.Golden(t, Encoder{ProductVersion: "0.1.0"}, "testdata/golden.jsonl", *update)
}
