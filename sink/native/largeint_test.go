package native

import (
	"bytes"
	"math"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// 64-bit fields are written with every digit (docs/schema.md, "64-bit
// integers"), so a consumer reading the source text gets them exactly.
func TestLargeIntegersAreExact(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, math.MaxUint64, "s")
	ev.Process.Binary.Inode = math.MaxUint64
	ev.Process.Binary.Dev = 1<<53 + 1
	ev.Process.Binary.Size = math.MaxInt64
	out, err := Encoder{}.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"seq":18446744073709551615`, `"inode":18446744073709551615`, `"dev":9007199254740993`, `"size":9223372036854775807`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %s", want)
		}
	}
}
