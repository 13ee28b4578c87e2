package binid

import (
	"context"
	"errors"
	"sync"
)

// errQueueFull: the hashing queue (or the file owner's share of it) is
// full; the request gets verdict error now and is not remembered, so the
// next exec of the file tries again.
var errQueueFull = errors.New("hashing queue full")

// sched hands out the hashing worker slots. Files that root or a package
// owns go first; the others wait in one queue per file owner, served in
// turn, so one user's stream of large files delays only that user's
// hashes, and they never take the last worker: a root- or package-owned
// file always finds one within a root-owned hash's time. The queue is
// bounded in total and per owner, and a waiter leaves
// when its context ends: no request waits forever.
type sched struct {
	mu        sync.Mutex
	free      int
	high      []*waiter
	low       map[uint32][]*waiter
	turn      []uint32 // owners with waiters, in serving order
	queued    int
	lowBusy   int // slots held by files of other owners
	maxLow    int
	maxQueued int
	maxPerUID int
}

type waiter struct {
	ready   chan struct{}
	uid     uint32
	high    bool
	granted bool
	refused bool
}

func newSched(workers, maxQueued, maxPerUID int) *sched {
	return &sched{free: workers, low: map[uint32][]*waiter{}, maxLow: max(workers-1, 1), maxQueued: maxQueued, maxPerUID: maxPerUID}
}

// acquire waits for a worker slot: high for root- and package-owned files,
// else in uid's queue. The caller calls release(high) once done.
func (s *sched) acquire(ctx context.Context, high bool, uid uint32) error {
	s.mu.Lock()
	if s.free > 0 && (high && len(s.high) == 0 || !high && s.queued == 0 && s.lowBusy < s.maxLow) {
		s.free--
		if !high {
			s.lowBusy++
		}
		s.mu.Unlock()
		return nil
	}
	if !high && len(s.low[uid]) >= s.maxPerUID {
		s.mu.Unlock()
		return errQueueFull
	}
	if s.queued >= s.maxQueued {
		if !high || !s.evictLow() {
			s.mu.Unlock()
			return errQueueFull
		}
	}
	w := &waiter{ready: make(chan struct{}), uid: uid, high: high}
	if high {
		s.high = append(s.high, w)
	} else {
		if len(s.low[uid]) == 0 {
			s.turn = append(s.turn, uid)
		}
		s.low[uid] = append(s.low[uid], w)
	}
	s.queued++
	s.mu.Unlock()

	select {
	case <-w.ready:
		if w.refused {
			return errQueueFull
		}
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.granted {
			if !high {
				s.lowBusy--
			}
			s.handOn()
		} else if !w.refused {
			s.remove(w)
		}
		return ctx.Err()
	}
}

// release gives the slot acquired with the same high to the next waiter.
func (s *sched) release(high bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !high {
		s.lowBusy--
	}
	s.handOn()
}

// handOn gives a freed slot to the next waiter (high first, then the owners
// in turn while they hold fewer than maxLow slots), or frees it; s.mu is
// held.
func (s *sched) handOn() {
	var w *waiter
	switch {
	case len(s.high) > 0:
		w = s.high[0]
		s.high[0] = nil
		s.high = s.high[1:]
	case len(s.turn) > 0 && s.lowBusy < s.maxLow:
		uid := s.turn[0]
		q := s.low[uid]
		w = q[0]
		q[0] = nil
		s.turn = s.turn[1:]
		if q = q[1:]; len(q) > 0 {
			s.low[uid] = q
			s.turn = append(s.turn, uid)
		} else {
			delete(s.low, uid)
		}
		s.lowBusy++
	default:
		s.free++
		return
	}
	s.queued--
	w.granted = true
	close(w.ready)
}

// evictLow refuses the newest waiter of the owner with the most waiting,
// to make room for a high-priority one; s.mu is held.
func (s *sched) evictLow() bool {
	var uid uint32
	n := 0
	for u, q := range s.low {
		if len(q) > n {
			uid, n = u, len(q)
		}
	}
	if n == 0 {
		return false
	}
	w := s.low[uid][n-1]
	s.remove(w)
	w.refused = true
	close(w.ready)
	return true
}

// remove takes a waiting w out of its queue; s.mu is held.
func (s *sched) remove(w *waiter) {
	if w.high {
		for i, x := range s.high {
			if x == w {
				s.high = append(s.high[:i], s.high[i+1:]...)
				s.queued--
				return
			}
		}
		return
	}
	q := s.low[w.uid]
	for i, x := range q {
		if x == w {
			q = append(q[:i], q[i+1:]...)
			s.queued--
			break
		}
	}
	if len(q) > 0 {
		s.low[w.uid] = q
		return
	}
	delete(s.low, w.uid)
	for i, u := range s.turn {
		if u == w.uid {
			s.turn = append(s.turn[:i], s.turn[i+1:]...)
			break
		}
	}
}
