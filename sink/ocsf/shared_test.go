package ocsf

import (
	"fmt"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/native"
)

// stormKinds are the events of each storm child in these tests: the
// storm's own (exec, opens, exit) and those whose lineage sits elsewhere
// (a connect, a detection finding with its evidence).
var stormKinds = []string{event.KindProcessExec, event.KindFileOpen, event.KindNetConnect,
	event.KindPolicyAlert, event.KindProcessExit}

// Every event written with shared ancestries is byte for byte what the
// encoder writes without them, in every shape (compact, full, cut at the
// session's root, v1, within a size budget), with invalid UTF-8 in the
// shared ancestry too, and with and without the process's own binary
// ahead of the ancestors' in unmapped.lineaged.binaries; and the shared
// parts were in fact copied.
func TestSharedAncestrySameBytes(t *testing.T) {
	shapes := []Encoder{
		{},
		{Ancestry: event.AncestryFull},
		{Ancestry: event.AncestrySession},
		{V1: true},
		{MaxBytes: 7500}, // under one storm exec: it is trimmed
	}
	for _, bad := range []bool{false, true} {
		for _, ownBinary := range []bool{true, false} {
			for _, plain := range shapes {
				name := fmt.Sprintf("%+v/bad=%v/own-binary=%v", plain, bad, ownBinary)
				cached := plain
				cached.Shared = native.NewSharedAncestry()
				evs := testevents.Storm(8, bad, stormKinds...)
				for _, ev := range evs {
					if !ownBinary && ev.Process != nil {
						p := *ev.Process
						p.Binary = nil
						ev.Process = &p
					}
				}
				testevents.SameBytes(t, name, plain, cached, evs)
				// Per ancestry (the session shape has two: whole, and
				// cut at the session's root) the lineage and the
				// binaries are kept; invalid UTF-8 in an ancestor's
				// argv marks each event, so then only the binaries
				// (which carry no argv) are.
				want := 2
				if bad {
					want = 1
				}
				if plain.Ancestry == event.AncestrySession {
					want *= 2
				}
				// Within a size budget, events over it are written by
				// an encoder without sharing: no count to expect.
				if kept := cached.Shared.Kept(); plain.MaxBytes == 0 && kept != want {
					t.Errorf("%s: %d parts kept, want %d", name, kept, want)
				}
			}
		}
	}
}

// BenchmarkSharedAncestry encodes a session's exec storm as OCSF with and
// without shared ancestries, alternated in blocks: ns per event of each,
// and the ratio.
func BenchmarkSharedAncestry(b *testing.B) {
	testevents.BenchShared(b, testevents.Storm(64, false), Encoder{}, Encoder{Shared: native.NewSharedAncestry()})
}
