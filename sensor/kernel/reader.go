//go:build linux

package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/lineaged/lineaged/sensor"
)

// Run reads the ring buffer in one goroutine that never blocks (decoded
// events go into a bounded queue; what does not fit is counted and reported
// as KindLoss), forwards the queue to out, and emits KindLoss events with
// the deltas of the kernel's reservation-failure counters. It returns when
// ctx is cancelled (nil) or the reader fails. Run may be called once.
func (s *Sensor) Run(ctx context.Context, out chan<- sensor.Event) error {
	ran := false
	s.runOnce.Do(func() { ran = true })
	if !ran {
		return errors.New("sensor: Run called twice")
	}
	q := make(chan sensor.Event, s.cfg.QueueSize)
	s.readStop = make(chan struct{})
	if s.pinState == PinReused {
		// What the earlier instance shed it reported, or lost with it.
		s.shedReported, _ = s.shedLost()
		s.budgetBaseline()
	}
	readErr := make(chan error, 1)
	go func() { readErr <- s.read(q) }()
	stop := func() error {
		// Closing the reader interrupts ReadInto; readStop a wait for
		// room in q.
		close(s.readStop)
		err := s.rd.Close()
		<-readErr
		return err
	}

	var lastQueue [EventKindMax]uint64
	// What an earlier instance on the same pinned maps reported is not
	// reported again (pin.go).
	lastKernel := s.lossBase
	lastSkipped := s.skippedBase()
	exits := newRecentKeys(recentExits)
	tick := time.NewTicker(s.cfg.LossInterval)
	defer tick.Stop()
	// The self-check (integrity.go); a nil channel never fires.
	var checks <-chan time.Time
	if s.cfg.SelfCheckInterval > 0 {
		ct := time.NewTicker(s.cfg.SelfCheckInterval)
		defer ct.Stop()
		checks = ct.C
	}
	var integrity integrityState
	integrity.lastCheck = bootNs()
	send := func(ev sensor.Event) bool {
		select {
		case out <- ev:
			s.delivered.Add(1)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, ev := range s.pending {
		if !send(ev) {
			return stop()
		}
	}
	s.pending = nil
	for {
		select {
		case <-ctx.Done():
			return stop()
		case err := <-readErr:
			readErr <- err // for stop
			if err != nil {
				return fmt.Errorf("sensor: ring buffer: %w", err)
			}
			return nil
		case ev := <-q:
			if ev.Kind == sensor.KindExit && exits.seen(ev.Proc) {
				continue
			}
			s.shadow.note(ev)
			s.umh.note(ev)
			if te := procMemTamper(&ev, s.selfKey, s.tamperLSM != nil); te != nil {
				if !send(*te) {
					return stop()
				}
			}
			if te := s.shadow.loginCheck(&ev, "/proc"); te != nil {
				te.Tamper.Target = s.selfKey
				if !send(*te) {
					return stop()
				}
			}
			if !send(ev) {
				return stop()
			}
		case <-tick.C:
			for _, ev := range append(s.lossEvents(&lastKernel, &lastQueue), s.skippedLoss(lastSkipped, bootNs())...) {
				if !send(ev) {
					return stop()
				}
			}
			s.saveLossBase(lastKernel)
		case <-checks:
			for _, ev := range s.selfCheck(&integrity) {
				if !send(ev) {
					return stop()
				}
			}
		}
	}
}

// read is the one ring-buffer reader. With batching, while records keep
// coming it collects them every FlushInterval (the kernel does not wake it
// for each); after a flush that found nothing it waits for the kernel's
// wakeup, polling every idleFlush in case a record raced that decision.
func (s *Sensor) read(q chan<- sensor.Event) error {
	var rec ringbuf.Record
	var share kernelShare
	defer share.close()
	batching := s.cfg.FlushInterval > 0
	polling, readSince := false, false
	if batching {
		s.rd.SetDeadline(time.Now().Add(idleFlush))
	}
	for {
		if err := s.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			if batching && errors.Is(err, os.ErrDeadlineExceeded) {
				// Everything pending was read.
				polling, readSince = readSince, false
				next := idleFlush
				if polling {
					next = s.cfg.FlushInterval
				}
				s.rd.SetDeadline(time.Now().Add(next))
				continue
			}
			return err
		}
		if batching {
			readSince = true
			if !polling {
				polling = true
				s.rd.SetDeadline(time.Now().Add(s.cfg.FlushInterval))
			}
		}
		s.records.Add(1)
		b := rec.RawSample
		var ev sensor.Event
		var dec func([]byte, *sensor.Event) error
		if len(b) > 0 && int(b[0]) < EventKindMax {
			dec = s.decoder[b[0]]
		}
		if dec == nil {
			s.decodeErrs.Add(1)
			s.log.Debug("record of unknown kind", "len", len(b))
			continue
		}
		if err := dec(b, &ev); err != nil {
			s.decodeErrs.Add(1)
			s.log.Debug("undecodable record", "err", err)
			continue
		}
		if ev.Exec != nil && ev.Exec.Flags&sensor.ExecHeld != 0 && s.cfg.OnHeld != nil {
			s.cfg.OnHeld(ev)
		}
		select {
		case q <- ev:
		default:
			if !priority(ev.Kind) {
				if !s.sessionBudget {
					s.queueDrops[ev.Kind].Add(1)
					continue
				}
				if share.over(s, ev.Session.Root) {
					// The session flooding the queue (budget.go).
					s.queueBudget.add(ev.Session.Root)
					continue
				}
			}
			// A process record, or another session's file record,
			// waits for room: the ring fills meanwhile, and the
			// kernel drops the flooding session's records above
			// Config.BudgetBytes and every file and network record
			// above Config.ShedBytes, keeping the rest of the ring
			// for these (bpf/lib/shed.h).
			select {
			case q <- ev:
			case <-s.readStop:
				return nil
			}
		}
	}
}

// priority reports whether records of kind are kept when the reader's
// queue is full: process records and what the kernel reports about
// enforcement and tampering.
func priority(k sensor.Kind) bool {
	switch k {
	case sensor.KindExec, sensor.KindFork, sensor.KindExit, sensor.KindDeny, sensor.KindTamper:
		return true
	}
	return false
}

// kernelLost sums the per-CPU reservation-failure counters, by kind.
func (s *Sensor) kernelLost() ([EventKindMax]uint64, error) { return s.lostSlots(0) }

// shedLost sums the per-CPU counters of shed file and network records, by
// kind (bpf/lib/shed.h SHED_SLOT).
func (s *Sensor) shedLost() ([EventKindMax]uint64, error) { return s.lostSlots(EventKindMax) }

// lostSlots sums EventKindMax per-CPU counters of the loss map from slot
// first on.
func (s *Sensor) lostSlots(first uint32) ([EventKindMax]uint64, error) {
	var sum [EventKindMax]uint64
	var perCPU []uint64
	for k := range uint32(EventKindMax) {
		if err := s.maps.Lost.Lookup(first+k, &perCPU); err != nil {
			return sum, fmt.Errorf("read loss counter %d: %w", first+k, err)
		}
		for _, v := range perCPU {
			sum[k] += v
		}
	}
	return sum, nil
}

func (s *Sensor) lossEvents(lastKernel, lastQueue *[EventKindMax]uint64) []sensor.Event {
	var evs []sensor.Event
	now := bootNs()
	mk := func(where string, k int, n uint64) sensor.Event {
		return sensor.Event{
			Header: sensor.Header{Kind: sensor.KindLoss, KtimeNs: now},
			Loss:   &sensor.Loss{Where: where, Of: sensor.Kind(k), Count: n},
		}
	}
	kernel, err := s.kernelLost()
	if err != nil {
		s.log.Warn("loss counters unreadable", "err", err)
	} else {
		for k, v := range kernel {
			if v > lastKernel[k] {
				switch k {
				case lostSessionsFull:
					// Members not tracked: their future events.
					evs = append(evs, mk("sessions", int(sensor.KindFork), v-lastKernel[k]))
				case lostSessionsFullExec:
					evs = append(evs, mk("sessions", int(sensor.KindExec), v-lastKernel[k]))
				default:
					evs = append(evs, mk("ringbuf", k, v-lastKernel[k]))
				}
				lastKernel[k] = v
			}
		}
	}
	if shed, err := s.shedLost(); err == nil {
		for k, v := range shed {
			if v > s.shedReported[k] {
				evs = append(evs, mk("shed", k, v-s.shedReported[k]))
				s.shedReported[k] = v
			}
		}
	}
	evs = append(evs, s.budgetEvents(mk)...)
	for k := range lastQueue {
		v := s.queueDrops[k].Load()
		if v > lastQueue[k] {
			evs = append(evs, mk("queue", k, v-lastQueue[k]))
			lastQueue[k] = v
		}
	}
	return evs
}

// recentExits bounds the exits remembered to drop a repeated one.
const recentExits = 4096

// recentKeys remembers the last n process keys it was shown. The exit
// program reports a process when its last thread exits, read from
// signal->live; two threads of a group exiting at once on two CPUs can both
// read 0. For session members the kernel's map delete decides who reports;
// for other processes (scope all) the repeat is dropped here. A key
// includes the start time, so a reused pid is never mistaken for a repeat.
type recentKeys struct {
	set  map[sensor.ProcKey]struct{}
	ring []sensor.ProcKey
	next int
}

func newRecentKeys(n int) *recentKeys {
	return &recentKeys{set: make(map[sensor.ProcKey]struct{}, n), ring: make([]sensor.ProcKey, 0, n)}
}

// seen reports whether k was shown before, and remembers it.
func (r *recentKeys) seen(k sensor.ProcKey) bool {
	if _, ok := r.set[k]; ok {
		return true
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, k)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = k
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[k] = struct{}{}
	return false
}
