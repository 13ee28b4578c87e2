// Package shared keeps encoded parts of an event that depend only on its
// ancestry, by the identity of the ancestry slice, for the encoders of
// both formats (sink/native, sink/ocsf).
//
// The engine hands the events of siblings (every event of every /bin/true
// a loop runs: its exec, its opens, its exit) one shared ancestry,
// read-only once emitted (lineage/build.go), so a part seen twice is
// encoded once and copied from then on. A part is kept from its second
// event on: an ancestry seen once, the common case outside sessions, costs
// a map entry and no copy. The caller keeps only bytes that carry nothing
// of the one event (an ancestry whose strings held invalid UTF-8 marks
// each event, so it is never kept).
package shared

import (
	"sync"

	"github.com/lineaged/lineaged/lineage/event"
)

// Part names one encoded part of an ancestry: an encoder may keep several
// (OCSF writes the lineage in one place and the ancestors' binaries in
// another).
type Part uint8

// MaxEntries bounds the parts kept; when full, the map starts again (an
// ancestry in use is kept again from its next two events).
const MaxEntries = 128

// Ancestries keeps the encoded parts of recent ancestries. The bytes
// depend on the encoder's settings: one Ancestries serves one encoder
// configuration. It is safe for concurrent use.
type Ancestries struct {
	mu sync.Mutex
	m  map[key]*[]byte // nil: seen once
}

// key names an ancestry slice: its first element (the map keeps it, and
// with it the slice, alive, so the address is never reused for another
// while it is a key) and its length (an ancestry cut at the session's
// root shares the first element), and the part.
type key struct {
	first *event.Process
	n     int
	part  Part
}

// New returns an empty Ancestries.
func New() *Ancestries { return &Ancestries{} }

// Lookup returns the bytes kept for anc's part, or nil and whether the
// caller should keep the bytes it encodes (the second sighting). A nil
// Ancestries keeps nothing.
func (c *Ancestries) Lookup(anc []event.Process, part Part) (b []byte, keep bool) {
	if c == nil || len(anc) == 0 {
		return nil, false
	}
	k := key{&anc[0], len(anc), part}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, seen := c.m[k]
	switch {
	case v != nil:
		return *v, false
	case seen:
		return nil, true
	}
	if c.m == nil || len(c.m) >= MaxEntries {
		c.m = make(map[key]*[]byte, MaxEntries)
	}
	c.m[k] = nil
	return nil, false
}

// Keep stores a copy of b as anc's part, unless the map was cleared since
// Lookup asked for it.
func (c *Ancestries) Keep(anc []event.Process, part Part, b []byte) {
	k := key{&anc[0], len(anc), part}
	cp := append([]byte(nil), b...)
	c.mu.Lock()
	if _, seen := c.m[k]; seen {
		c.m[k] = &cp
	}
	c.mu.Unlock()
}

// Len returns the number of parts seen and held (kept or not yet).
func (c *Ancestries) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Kept returns the number of parts whose bytes are kept.
func (c *Ancestries) Kept() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.m {
		if v != nil {
			n++
		}
	}
	return n
}
