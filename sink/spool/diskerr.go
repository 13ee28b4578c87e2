package spool

import (
	"errors"
	"os"
	"time"
)

// ErrPendingFull is returned by Append when PendingBytes of records are
// already waiting for the disk.
var ErrPendingFull = errors.New("spool: too many records waiting for the disk")

// diskErrorPause is the wait after a failed write before the next try.
const diskErrorPause = 20 * time.Millisecond

// writeRound writes one round of records, recovering from write errors
// (ENOSPC, EIO): each failure is counted, the partial write is cut off, the
// oldest records on disk are dropped (counted and reported through OnDrop
// as for a full spool) and the write is tried again. When nothing older is
// left to drop, the round's unwritten records are the oldest and are
// dropped themselves, so a disk that stays broken costs records, never the
// spool: later Appends go on.
func (s *Spool) writeRound(buf []byte, n uint64) {
	for n > 0 {
		rest, restN, err := s.flush(buf, n)
		if err == nil {
			return
		}
		s.mu.Lock()
		s.writeErrors++
		s.mu.Unlock()
		s.log.Error("spool: write failed, dropping the oldest records to go on", "dir", s.opts.Dir, "err", err)
		s.cutPartialWrite()
		buf, n = rest, restN
		reason := "spool write failed: " + err.Error()
		if !s.dropOldestSegment(reason) {
			s.dropRecords(n, reason)
			return
		}
		time.Sleep(diskErrorPause)
	}
}

// cutPartialWrite truncates the active segment back to its last whole
// record; when that fails too, a new segment is started (recovery at the
// next start cuts the damaged tail).
func (s *Spool) cutPartialWrite() {
	s.mu.Lock()
	g := s.segs[len(s.segs)-1]
	size := g.size
	s.mu.Unlock()
	if err := s.active.Truncate(size); err == nil {
		return
	}
	if err := s.newSegment(); err != nil {
		s.log.Error("spool: cannot start a new segment", "err", err)
	}
}

// dropOldestSegment removes the oldest segment holding records (rotating
// the active one first when it is the only one) and reports the
// unacknowledged records in it as dropped. It returns false when no
// segment holds records.
func (s *Spool) dropOldestSegment(reason string) bool {
	s.mu.Lock()
	if len(s.segs) == 1 && s.segs[0].count > 0 {
		s.mu.Unlock()
		if err := s.newSegment(); err != nil {
			s.log.Error("spool: cannot start a new segment", "err", err)
			return false
		}
		s.mu.Lock()
	}
	if len(s.segs) < 2 {
		s.mu.Unlock()
		return false
	}
	g := s.segs[0]
	s.segs = s.segs[1:]
	var from, lost uint64
	if g.end() > s.acked {
		from = max(g.base, s.acked)
		lost = g.end() - from
		s.acked = g.end()
	}
	s.dropped += lost
	s.trimMemLocked()
	s.mu.Unlock()
	if err := os.Remove(g.path); err != nil {
		s.log.Error("spool: removing dropped segment", "file", g.path, "err", err)
	}
	if lost > 0 && s.opts.OnDrop != nil {
		s.opts.OnDrop(from, from+lost, reason)
	}
	return true
}

// dropRecords gives up on the n records that were to be written next (the
// oldest not yet acknowledged: every segment before them was dropped) and
// starts a new segment after them.
func (s *Spool) dropRecords(n uint64, reason string) {
	s.mu.Lock()
	from := s.written
	s.written += n
	s.acked = max(s.acked, s.written)
	s.dropped += n
	s.trimMemLocked()
	s.mu.Unlock()
	if err := s.newSegment(); err != nil {
		s.log.Error("spool: cannot start a new segment", "err", err)
	}
	select { // the fsync after it marks them settled
	case s.syncKick <- struct{}{}:
	default:
	}
	if s.opts.OnDrop != nil {
		s.opts.OnDrop(from, from+n, reason)
	}
}
