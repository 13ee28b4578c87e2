//go:build linux

package kernel

import (
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/lineaged/lineaged/sensor"
)

// The session budget (bpf/lib/shed.h): above Config.BudgetBytes of unread
// data, the file and network records of a session that made more than
// half of the recent ones are dropped, counted per kind in the loss map's
// third part and per session in each object's session_budget map.

// budgetMapName is the per-session map's name as the kernel keeps it,
// budgetTotalName the map of every session's count.
const (
	budgetMapName   = "session_budget"
	budgetTotalName = "budget_total"
)

// budgetWhat is what one session-budget loss counts.
const budgetWhat = "file and network records of the session"

// budgetState is what the session budget's losses have reported (Run's
// goroutine only).
type budgetState struct {
	// seen is each session's shed count as last read.
	seen map[sensor.ProcKey]uint64
	// kinds is the per-kind counters' sum as last read; reported is every
	// budget loss reported, to sessions or not.
	kinds, reported uint64
}

// budgetLost sums the per-CPU counters of records of sessions over their
// budget, by kind (BUDGET_SLOT).
func (s *Sensor) budgetLost() ([EventKindMax]uint64, error) {
	return s.lostSlots(2 * EventKindMax)
}

// budgetMaps finds the maps of the given names (session_budget when none)
// of the loaded file, network and io_uring programs, one per object,
// through the programs' map ids: it works the same for objects loaded now
// and for pinned ones.
func (s *Sensor) budgetMaps(names ...string) ([]*ebpf.Map, error) {
	if len(names) == 0 {
		names = []string{budgetMapName}
	}
	var out []*ebpf.Map
	seen := map[ebpf.MapID]bool{}
	var errs []error
	for _, p := range s.loadedPrograms() {
		info, err := p.Info()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ids, _ := info.MapIDs()
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			m, err := ebpf.NewMapFromID(id)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			mi, err := m.Info()
			if err != nil || !slices.Contains(names, mi.Name) {
				m.Close()
				continue
			}
			out = append(out, m)
		}
	}
	return out, errors.Join(errs...)
}

// sessionBudgets reads every session's shed count (struct session_budget:
// root_start, window, count, shed).
func (s *Sensor) sessionBudgets() (map[sensor.ProcKey]uint64, error) {
	maps, err := s.budgetMaps()
	out := map[sensor.ProcKey]uint64{}
	for _, m := range maps {
		var pid uint32
		var v [32]byte
		it := m.Iterate()
		for it.Next(&pid, &v) {
			// As events name the session (decode.go key).
			k := key(pid, binary.NativeEndian.Uint64(v[0:]))
			out[k] += binary.NativeEndian.Uint64(v[24:])
		}
		err = errors.Join(err, it.Err())
		m.Close()
	}
	return out, err
}

// budgetEvents are the session-budget losses since the last call: one per
// session whose records were dropped, naming it in the header's session,
// and one without a session for drops whose session's entry is gone (the
// map holds 1024 sessions).
func (s *Sensor) budgetEvents(mk func(where string, k int, n uint64) sensor.Event) []sensor.Event {
	var evs []sensor.Event
	for k, n := range s.queueBudget.take() {
		ev := mk("session-budget", 0, n)
		ev.Loss.What = budgetWhat
		ev.Session = sensor.SessionRef{Root: k}
		evs = append(evs, ev)
	}
	kinds, err := s.budgetLost()
	if err != nil {
		return evs
	}
	var total uint64
	for _, v := range kinds {
		total += v
	}
	b := &s.budget
	if total == b.kinds {
		return evs
	}
	b.kinds = total
	per, err := s.sessionBudgets()
	if err != nil {
		s.log.Warn("session budget counters unreadable", "err", err)
	}
	if b.seen == nil {
		b.seen = map[sensor.ProcKey]uint64{}
	}
	for k, v := range per {
		if v > b.seen[k] {
			ev := mk("session-budget", 0, v-b.seen[k])
			ev.Loss.What = budgetWhat
			ev.Session = sensor.SessionRef{Root: k}
			evs = append(evs, ev)
			b.reported += v - b.seen[k]
		}
	}
	b.seen = per
	if total > b.reported {
		ev := mk("session-budget", 0, total-b.reported)
		ev.Loss.What = budgetWhat + " (sessions no longer tracked)"
		evs = append(evs, ev)
		b.reported = total
	}
	return evs
}

// budgetBaseline takes what a pinned earlier instance's budget counters
// hold as reported.
func (s *Sensor) budgetBaseline() {
	kinds, err := s.budgetLost()
	if err != nil {
		return
	}
	for _, v := range kinds {
		s.budget.kinds += v
	}
	s.budget.reported = s.budget.kinds
	s.budget.seen, _ = s.sessionBudgets()
}

// The reader's side of the session budget. When the hand-off queue is
// full, a file or network record of a session the kernel counts over its
// budget is dropped and counted against that session; any other session's
// waits for room, like a process record, so the reader stops and the ring
// fills, where the kernel's budget then drops the flooding session's
// records before they are reserved.
//
// The judgment is the kernel's own counts (each object's session_budget
// and budget_total: every record a session submitted while the ring was
// above the budget level, dropped or not), not the records that reach the
// reader: once the kernel drops a flooding session's records, what gets
// through is mostly the other sessions', which a count of its own would
// then take for the flood.

// budgetWindowShift is the kernel's BUDGET_WINDOW_SHIFT, budgetMin its
// BUDGET_MIN.
const (
	budgetWindowShift = 26
	budgetMin         = 256
)

// budgetJudgeFor is how long one reading of a session's share is reused:
// a flood's records each find the queue full, and a reading is two map
// lookups per object.
const budgetJudgeFor = 10 * time.Millisecond

// kernelShare reads the kernel's budget counts for the reader (the
// reader's goroutine only).
type kernelShare struct {
	sessions, totals []*ebpf.Map
	foundAt          time.Time
	judged           map[sensor.ProcKey]judgment
}

type judgment struct {
	over bool
	at   time.Time
}

// over reports whether the kernel counts session root over its budget
// now.
func (k *kernelShare) over(s *Sensor, root sensor.ProcKey) bool {
	now := time.Now()
	if j, ok := k.judged[root]; ok && now.Sub(j.at) < budgetJudgeFor {
		return j.over
	}
	if k.judged == nil || len(k.judged) > 1024 {
		k.judged = map[sensor.ProcKey]judgment{}
	}
	if k.foundAt.IsZero() || now.Sub(k.foundAt) > time.Minute {
		k.find(s)
	}
	w := bootNs() >> budgetWindowShift
	var total, mine uint64
	var v [32]byte
	for _, m := range k.totals {
		if m.Lookup(uint32(0), v[:16]) == nil {
			total += decayed(binary.NativeEndian.Uint64(v[8:]), binary.NativeEndian.Uint64(v[0:]), w)
		}
	}
	for _, m := range k.sessions {
		if m.Lookup(root.PID, v[:]) == nil && key(root.PID, binary.NativeEndian.Uint64(v[0:])) == root {
			mine += decayed(binary.NativeEndian.Uint64(v[16:]), binary.NativeEndian.Uint64(v[8:]), w)
		}
	}
	over := total > budgetMin && mine*2 > total
	k.judged[root] = judgment{over: over, at: now}
	return over
}

// find opens the budget maps of the loaded objects again.
func (k *kernelShare) find(s *Sensor) {
	for _, m := range append(k.sessions, k.totals...) {
		m.Close()
	}
	k.sessions, k.totals = nil, nil
	k.foundAt = time.Now()
	maps, err := s.budgetMaps(budgetMapName, budgetTotalName)
	if err != nil {
		s.log.Debug("session budget maps", "err", err)
	}
	for _, m := range maps {
		if mi, err := m.Info(); err == nil && mi.Name == budgetTotalName {
			k.totals = append(k.totals, m)
		} else {
			k.sessions = append(k.sessions, m)
		}
	}
}

func (k *kernelShare) close() {
	for _, m := range append(k.sessions, k.totals...) {
		m.Close()
	}
	k.sessions, k.totals = nil, nil
}

// decayed is the kernel's decayed(): count as it stands in window now,
// halved for each window since then.
func decayed(count, then, now uint64) uint64 {
	if now < then {
		return count
	}
	if now-then >= 64 {
		return 0
	}
	return count >> (now - then)
}

// queueBudgetDrops are the records the reader dropped over budget, per
// session, not yet reported: the reader adds, Run's goroutine takes.
type queueBudgetDrops struct {
	mu    sync.Mutex
	drops map[sensor.ProcKey]uint64
	total uint64
}

func (d *queueBudgetDrops) add(root sensor.ProcKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.drops == nil {
		d.drops = map[sensor.ProcKey]uint64{}
	}
	d.drops[root]++
	d.total++
}

// take returns the drops since the last take.
func (d *queueBudgetDrops) take() map[sensor.ProcKey]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.drops
	d.drops = nil
	return out
}

// dropped is every record dropped over budget so far.
func (d *queueBudgetDrops) dropped() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total
}
