package native

import (
	"fmt"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/shared"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// storm is a session's exec storm: each child's exec, two opens and exit
// on its parent's one shared ancestry (testevents.Storm).
func storm(n int, bad bool) []*event.Event { return testevents.Storm(n, bad) }

// Every event written with a SharedAncestry is byte for byte what the
// encoder writes without one, in every shape (compact, full, cut at the
// session's root, v1, within a size budget), with invalid UTF-8 in the
// shared ancestry too; and the shared ancestry was in fact copied.
func TestSharedAncestrySameBytes(t *testing.T) {
	shapes := []Encoder{
		{},
		{Ancestry: event.AncestryFull},
		{Ancestry: event.AncestrySession},
		{V1: true},
		{MaxBytes: 5000}, // under one storm exec: it is trimmed
	}
	for _, bad := range []bool{false, true} {
		for _, plain := range shapes {
			name := fmt.Sprintf("%+v/bad=%v", plain, bad)
			cached := plain
			cached.Shared = NewSharedAncestry()
			testevents.SameBytes(t, name, plain, cached, storm(8, bad))
			kept := cached.Shared.Kept()
			switch {
			case plain.MaxBytes > 0 || bad:
				// Trimmed events are written by a Bounded encoder
				// (no sharing); marks are per event.
				if bad && kept != 0 {
					t.Errorf("%s: an ancestry with invalid UTF-8 was kept", name)
				}
			case plain.Ancestry == event.AncestrySession:
				if kept != 2 {
					t.Errorf("%s: %d ancestries kept, want the storm's one whole and cut", name, kept)
				}
			case kept != 1:
				t.Errorf("%s: %d ancestries kept, want the storm's one", name, kept)
			}
		}
	}
}

// An ancestry seen once is not copied; the map stays bounded.
func TestSharedAncestryBounded(t *testing.T) {
	enc := Encoder{Shared: NewSharedAncestry()}
	for i := range 3 * shared.MaxEntries {
		ev := testevents.InSessionExec(uint64(i))
		if _, err := enc.Append(nil, ev); err != nil {
			t.Fatal(err)
		}
		if n := enc.Shared.Len(); n > shared.MaxEntries {
			t.Fatalf("%d ancestries held, bound %d", n, shared.MaxEntries)
		}
		if enc.Shared.Kept() != 0 {
			t.Fatal("an ancestry seen once was copied")
		}
	}
}

// BenchmarkSharedAncestry encodes a session's exec storm (each child's
// exec, two opens and exit on its parent's shared ancestry, as the engine
// hands them out) with and without a SharedAncestry, alternated in blocks:
// ns per event of each, and the ratio.
func BenchmarkSharedAncestry(b *testing.B) {
	testevents.BenchShared(b, storm(64, false), Encoder{}, Encoder{Shared: NewSharedAncestry()})
}
