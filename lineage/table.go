package lineage

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// entry is one process image. Entries are owned by the engine's table
// goroutine. An image links to the image it was born from by pointer, so an
// ancestor evicted from the index stays reachable for as long as a
// descendant needs it, and is collected with the last one: no hand-kept
// reference counts.
type entry struct {
	key sensor.ProcKey
	// proc is the snapshot copied into events; its Binary is filled once
	// the hash future completes.
	proc   event.Process
	parent *entry // birth parent image (previous image for an exec chain)
	depth  int
	bin    *binFuture
	// loaded is the identity of the program a loader exec runs
	// (loader.go), nil for any other image.
	loaded *binFuture
	// kids is the complete ancestry of this image's children (this image
	// first), shared by their events; nil until one is built complete.
	kids []event.Process
	// att is the image's agent attribution (sessions owns it).
	att attribution
	// birthParent is the process this one was forked from (constant
	// across its images); a different parent at exec means reparenting.
	birthParent sensor.ProcKey
	// forkImage is set for a forked child that has not exec'd: it still
	// runs its parent's image.
	forkImage bool
	// seeded is set for an image read from /proc (its exec was not seen).
	seeded bool
	// partial is set for a placeholder of a process whose start was never
	// seen and that /proc could not supply.
	partial bool
	exited  bool
	exitKt  uint64
	indexed bool
	// list links: live entries in LRU order, exited ones in exit order.
	prev, next *entry
}

// list is an intrusive doubly-linked list; front is most recent.
type list struct {
	head, tail *entry
	n          int
}

func (l *list) pushFront(e *entry) {
	e.prev, e.next = nil, l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
	l.n++
}

func (l *list) remove(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
	l.n--
}

// table indexes the current image of every known process by (pid, start)
// and bounds memory: exited images stay for a grace period (late events
// still find them), then go; when full, the oldest exited image goes first,
// then the least recently used live one.
type table struct {
	max    int
	byKey  map[sensor.ProcKey]*entry
	byPID  map[uint32]*entry // newest image per pid, for /proc walks
	live   list
	exited list
	// evicted counts entries removed for space; expired those removed
	// after their grace period.
	evicted, expired uint64
}

func newTable(max int) *table {
	return &table{max: max, byKey: make(map[sensor.ProcKey]*entry), byPID: make(map[uint32]*entry)}
}

func (t *table) get(k sensor.ProcKey) *entry { return t.byKey[k] }

// touch marks a live entry as recently used.
func (t *table) touch(e *entry) {
	if e.indexed && !e.exited && t.live.head != e {
		t.live.remove(e)
		t.live.pushFront(e)
	}
}

// put makes e the current image of its key, replacing any previous image
// (which stays reachable from e.parent when it is e's exec predecessor).
func (t *table) put(e *entry) {
	if old := t.byKey[e.key]; old != nil {
		t.unindex(old)
	}
	for len(t.byKey) >= t.max {
		victim := t.exited.tail
		if victim == nil {
			victim = t.live.tail
		}
		if victim == nil {
			break
		}
		t.unindex(victim)
		t.evicted++
	}
	t.byKey[e.key] = e
	t.byPID[e.key.PID] = e
	e.indexed = true
	if e.exited {
		t.exited.pushFront(e)
	} else {
		t.live.pushFront(e)
	}
}

func (t *table) unindex(e *entry) {
	if !e.indexed {
		return
	}
	if e.exited {
		t.exited.remove(e)
	} else {
		t.live.remove(e)
	}
	delete(t.byKey, e.key)
	if t.byPID[e.key.PID] == e {
		delete(t.byPID, e.key.PID)
	}
	e.indexed = false
}

// exit moves e to the exited list.
func (t *table) exit(e *entry, kt uint64) {
	if e.exited {
		return
	}
	if e.indexed {
		t.live.remove(e)
		e.exited, e.exitKt = true, kt
		t.exited.pushFront(e)
		return
	}
	e.exited, e.exitKt = true, kt
}

// expire drops exited images whose grace period ended before nowKt.
func (t *table) expire(nowKt, graceNs uint64) {
	for e := t.exited.tail; e != nil && e.exitKt+graceNs < nowKt; e = t.exited.tail {
		t.unindex(e)
		t.expired++
	}
}
