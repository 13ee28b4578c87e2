package ocsf

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// FuzzEncode: hostile argv, paths and bounds never produce a line that is
// not strict I-JSON.
func FuzzEncode(f *testing.F) {
	for _, s := range testevents.HostileStrings {
		f.Add(s, "sh", 0)
	}
	f.Fuzz(func(t *testing.T, a, b string, limit int) {
		for _, k := range []string{event.KindProcessExec, event.KindFileRename, event.KindNetConnect} {
			ev := testevents.New(k, 1, "s")
			ev.Process.Argv = []string{b, a, a + b, "'" + a}
			ev.Process.Exe = a
			ev.Ancestry[0].Argv = []string{a, b}
			if ev.File != nil {
				ev.File.Path = "/" + a
			}
			enc := Encoder{ProductVersion: "0.1.0"}
			enc.Argv.MaxArgBytes = limit % 64
			out, err := enc.Append(nil, ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := schematest.IJSON(out); err != nil {
				t.Fatalf("%s: %v: %q", k, err, out)
			}
		}
	})
}
