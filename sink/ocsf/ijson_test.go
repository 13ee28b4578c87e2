package ocsf

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// Every line the OCSF encoder writes is strict I-JSON (RFC 7493).
func TestOutputIsStrictIJSON(t *testing.T) {
	for name, c := range map[string]struct {
		enc    Encoder
		golden string
	}{
		"compact": {Encoder{ProductVersion: "0.1.0"}, "testdata/golden.jsonl"},
		"full":    {Encoder{ProductVersion: "0.1.0", Ancestry: event.AncestryFull}, "testdata/golden-full.jsonl"},
		"v1":      {Encoder{ProductVersion: "0.1.0", V1: true}, "testdata/golden-v1.jsonl"},
	} {
		t.Run(name, func(t *testing.T) {
			n := testevents.StrictCorpus(t, c.enc, c.golden)
			t.Logf("%d lines checked", n)
		})
	}
}
