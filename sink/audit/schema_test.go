package audit

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/native"
)

// Chained lines, the checkpoint and a loss with its lost member included,
// are valid lineaged/v2 and lineaged/v1 events.
func TestChainedLinesMatchTheSchemas(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		dir := t.TempDir()
		r := startRun(t, dir, "run1")
		r.enc = r.chain.Wrap(native.Encoder{V1: v1, Ancestry: map[bool]string{true: event.AncestryFull, false: event.AncestryCompact}[v1]})
		r.exec(3)
		r.emit(&event.Event{Kind: event.KindSensorLoss, Loss: &event.Loss{Where: "kafka-spool", Count: 1, FirstSeq: 3, LastSeq: 3}})
		r.stop()
		schema, err := schematest.Native()
		if v1 {
			schema, err = schematest.NativeV1()
		}
		if err != nil {
			t.Fatal(err)
		}
		lines := r.lines
		if v1 {
			lines = lines[1:] // sensor.start went out before the v1 encoder
		}
		for _, l := range lines {
			if err := schematest.Validate(schema, l); err != nil {
				t.Errorf("v1=%v: %v\n%s", v1, err, l)
			}
		}
	}
}
