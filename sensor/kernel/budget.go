//go:build linux

package kernel

import (
	"encoding/binary"
	"errors"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/lineaged/lineaged/sensor"
)

// The session budget (bpf/lib/shed.h): above Config.BudgetBytes of unread
// data, the file and network records of a session that made more than
// half of the recent ones are dropped, counted per kind in the loss map's
// third part and per session in each object's session_budget map.

// budgetMapName is the per-session map's name as the kernel keeps it.
const budgetMapName = "session_budget"

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

// budgetMaps finds the session_budget maps of the loaded file, network and
// io_uring programs, one per object, through the programs' map ids: it
// works the same for objects loaded now and for pinned ones.
func (s *Sensor) budgetMaps() ([]*ebpf.Map, error) {
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
			if err != nil || mi.Name != budgetMapName {
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
			k := sensor.ProcKey{PID: pid, StartNs: binary.NativeEndian.Uint64(v[0:])}
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
// full, a file or network record of the session that made more than half
// of the records that found it full recently (counted as the kernel
// counts, halved every window) is dropped and counted against that
// session; any other session's waits for room, like a process record, so
// the reader stops and the ring fills, where the kernel's budget then
// drops the flooding session's records before they are reserved.

// queueShare counts, per session root, the file and network records that
// found the queue full (the reader's goroutine only).
type queueShare struct {
	window int64
	total  uint64
	counts map[sensor.ProcKey]uint64
}

// budgetWindowNs is the kernel's window (BUDGET_WINDOW_SHIFT).
const budgetWindowNs = 1 << 26

// budgetMin is the kernel's BUDGET_MIN.
const budgetMin = 256

// over counts a record of session root at boot time now and reports
// whether that session is over its budget.
func (q *queueShare) over(root sensor.ProcKey, now uint64) bool {
	w := int64(now / budgetWindowNs)
	if q.counts == nil {
		q.counts = map[sensor.ProcKey]uint64{}
	}
	if w != q.window {
		shift := w - q.window
		q.window = w
		q.total = halve(q.total, shift)
		for k, v := range q.counts {
			if v = halve(v, shift); v == 0 {
				delete(q.counts, k)
			} else {
				q.counts[k] = v
			}
		}
	}
	q.total++
	q.counts[root]++
	return q.total > budgetMin && q.counts[root]*2 > q.total
}

func halve(v uint64, n int64) uint64 {
	if n >= 64 || n < 0 {
		return 0
	}
	return v >> n
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
