package native

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// Every line the native encoder writes, in each of its shapes, is strict
// I-JSON (RFC 7493): Rust's serde_json and the like accept it whole.
func TestOutputIsStrictIJSON(t *testing.T) {
	for name, c := range map[string]struct {
		enc    Encoder
		golden string
	}{
		"compact": {Encoder{}, "testdata/golden.jsonl"},
		"full":    {Encoder{Ancestry: event.AncestryFull}, "testdata/golden-full.jsonl"},
		"v1":      {Encoder{V1: true}, "testdata/golden-v1.jsonl"},
	} {
		t.Run(name, func(t *testing.T) {
			n := testevents.StrictCorpus(t, c.enc, c.golden)
			t.Logf("%d lines checked", n)
		})
	}
}
