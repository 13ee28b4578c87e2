package native

import (
	"sync"

	"github.com/lineaged/lineaged/lineage/event"
)

// SharedAncestry keeps the encoded ancestry of recent events by the identity
// of their ancestry slice. The engine hands the events of siblings (every
// event of every /bin/true a loop runs: its exec, its opens, its exit) one
// shared ancestry, read-only once emitted (lineage/build.go), so an
// ancestry seen twice is encoded once and copied from then on. An ancestry
// is kept from its second event on: one seen once, the common case outside
// sessions, costs a map entry and no copy. An ancestry whose strings held
// invalid UTF-8 is never kept (its marks belong to each event).
//
// The bytes depend on the encoder's settings: one SharedAncestry serves one
// Encoder configuration. It is safe for concurrent use.
type SharedAncestry struct {
	mu sync.Mutex
	m  map[ancestryKey]*[]byte // nil: seen once
}

// ancestryKey names an ancestry slice: its first element (the map keeps
// it, and with it the slice, alive, so the address is never reused for
// another while it is a key) and its length (an ancestry cut at the
// session's root shares the first element).
type ancestryKey struct {
	first *event.Process
	n     int
}

// maxSharedAncestries bounds the ancestries kept; when full, the map
// starts again (an ancestry in use is kept again from its next two events).
const maxSharedAncestries = 64

// NewSharedAncestry returns an empty SharedAncestry.
func NewSharedAncestry() *SharedAncestry { return &SharedAncestry{} }

// lookup returns the encoded bytes kept for anc, or nil and whether the
// caller should keep the bytes it encodes (the second sighting).
func (c *SharedAncestry) lookup(anc []event.Process) (b []byte, keep bool) {
	if c == nil || len(anc) == 0 {
		return nil, false
	}
	k := ancestryKey{&anc[0], len(anc)}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, seen := c.m[k]
	switch {
	case v != nil:
		return *v, false
	case seen:
		return nil, true
	}
	if c.m == nil || len(c.m) >= maxSharedAncestries {
		c.m = make(map[ancestryKey]*[]byte, maxSharedAncestries)
	}
	c.m[k] = nil
	return nil, false
}

// keep stores a copy of b as anc's encoding.
func (c *SharedAncestry) keep(anc []event.Process, b []byte) {
	k := ancestryKey{&anc[0], len(anc)}
	cp := append([]byte(nil), b...)
	c.mu.Lock()
	if _, seen := c.m[k]; seen { // not cleared meanwhile
		c.m[k] = &cp
	}
	c.mu.Unlock()
}
