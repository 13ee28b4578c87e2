package ocsf

import (
	"bytes"
	"math"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// 64-bit fields are written with every digit (docs/schema.md, "64-bit
// integers").
func TestLargeIntegersAreExact(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, math.MaxUint64, "s")
	ev.Process.Binary.Inode = math.MaxUint64
	ev.Process.Binary.Size = math.MaxInt64
	out := encode(t, ev)
	for _, want := range []string{`"seq":18446744073709551615`, `"inode":18446744073709551615`, `"size":9223372036854775807`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %s", want)
		}
	}
}
