// Package spool is the durable disk queue in front of Kafka: a small
// segment log written by one goroutine with group fsync, read by one
// consumer cursor, released by acknowledgement and bounded in size by
// dropping the oldest segments.
//
// It is written here rather than taken from a WAL library because the
// behaviour it needs is specific: drop-oldest when full with an exact count
// of what was dropped, a persisted acknowledgement point, and recovery that
// keeps every intact record of a damaged segment. General WALs (e.g.
// tidwall/wal, etcd's wal) truncate from the front by index, but do not
// bound size or report loss, and their corruption handling is to refuse to
// open; wrapping them would be larger than this file.
//
// On disk: DIR/<first offset, 20 digits>.seg files of records
// [len u32 LE][crc32c(payload) u32 LE][payload], and DIR/ack holding the
// offset of the first unacknowledged record. Files are 0600, DIR 0700.
package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	headerSize = 8
	// MaxRecord bounds one record; a larger length field is corruption.
	MaxRecord = 16 << 20
	segSuffix = ".seg"
	ackName   = "ack"
	lockName  = "lock"
)

// Options configures a spool.
type Options struct {
	// Dir holds the segments; created 0700 if missing.
	Dir string
	// MaxBytes bounds the segments on disk plus the records waiting to be
	// written; past it the oldest segments are dropped.
	MaxBytes int64
	// SegmentBytes is the size at which a segment is closed and a new one
	// started; 0 means MaxBytes/16 clamped to [64 KiB, 64 MiB].
	SegmentBytes int64
	// AckInterval is how often the acknowledgement point is persisted;
	// 0 means 200 ms. A crash loses at most this much acknowledgement,
	// which means redelivery, never loss.
	AckInterval time.Duration
	// MemoryBytes bounds the copy of the newest unacknowledged records kept
	// in memory, from which the consumer reads without waiting for the disk
	// when it keeps up; 0 means 8 MiB. Records are fsynced all the same:
	// the disk copy is what survives a broker outage or a restart.
	MemoryBytes int64
	// OnDrop is called (from the spool's writer goroutine, with no lock
	// held) with the offsets [from, to) of records dropped because the
	// spool was full or damaged: to-from records, always the oldest not yet
	// acknowledged. It may call Append.
	OnDrop func(from, to uint64, reason string)
	// PendingBytes bounds the records queued in memory for the writer
	// (waiting for a slow or stalled disk); past it Append fails with
	// ErrPendingFull. 0 means 32 MiB.
	PendingBytes int64
	// SyncInterval is the least time from one fsync of the active segment
	// to the next; 0 means 50 ms. Records written meanwhile are fsynced in
	// one group after it: at event rates an fsync per write round cost
	// more CPU than the rest of the spool. A power loss can lose what was
	// written in the last SyncInterval and an fsync (a kill of the process
	// does not: it is in the page cache); Close fsyncs at once.
	SyncInterval time.Duration
	// Linger is how long the writer waits, once woken by an append, for
	// more before it writes a round, unless LingerBytes are already
	// waiting; 0 means 2 ms, a negative value writes at once. Records not
	// yet written are what a kill of the process loses, and the consumer
	// reads only written ones, so this bounds both that window's growth
	// and the delay it adds.
	Linger time.Duration
	// OnWritten, when set, is called (from the writer goroutine, with no
	// lock held) with end once the records below end are written to the
	// segment file, before their fsync: a kill of the process no longer
	// loses them.
	OnWritten func(end uint64)
	// Log receives recovery and I/O errors.
	Log *slog.Logger
	// writeFile writes to a segment file; tests replace it to inject
	// errors.
	writeFile func(*os.File, []byte) (int, error)
}

// Record is one spooled record.
type Record struct {
	Offset uint64
	Data   []byte
}

// Stats is a snapshot of the spool.
type Stats struct {
	Segments    int
	Bytes       int64
	Pending     uint64 // records written but not acknowledged
	Dropped     uint64 // records dropped since open (full or damaged)
	Appended    uint64
	Acked       uint64 // first unacknowledged offset
	NextOffset  uint64
	SyncedUntil uint64
	Fsyncs      uint64
	WriteErrors uint64 // failed writes and fsyncs (recovered by dropping the oldest records)
	Refused     uint64 // Appends refused because PendingBytes were waiting
}

type segment struct {
	base  uint64
	count uint64
	size  int64
	path  string
}

func (g *segment) end() uint64 { return g.base + g.count }

// Spool is safe for concurrent Append; Next and Ack are for one consumer.
type Spool struct {
	opts Options
	log  *slog.Logger
	lock *os.File

	mu     sync.Mutex
	segs   []*segment // oldest first; the last one is active
	pend   []byte     // encoded records not yet written
	pendN  uint64
	next   uint64 // offset of the next appended record
	synced uint64 // records below this offset are on disk and fsynced
	// written: records below it are written to the file (fsynced or not).
	// The consumer reads nothing above it, so what was delivered was
	// written first and a kill of the process loses nothing delivered
	// without a trace in the file.
	written  uint64
	acked    uint64
	ackSaved uint64
	dropped  uint64
	appended uint64
	fsyncs   uint64
	closed   bool
	// writeErrors counts failed writes and fsyncs; refused the Appends
	// refused because PendingBytes were waiting.
	writeErrors uint64
	refused     uint64
	// recoveryDrops are the records lost to damage found at Open, for
	// OnDrop once the consumer runs.
	recoveryDrops []dropRange
	notify        chan struct{} // closed when records become readable
	kick          chan struct{}
	done          chan struct{}
	// The syncer goroutine fsyncs what the writer wrote, so a slow fsync
	// never holds back the next write (nor the consumer, which reads only
	// written records).
	syncKick chan struct{}
	syncStop chan struct{}
	syncDone chan struct{}

	// mem holds the newest records [memBase, next), while they fit in
	// MemoryBytes; the consumer reads them from here when it keeps up.
	mem      []Record
	memBase  uint64
	memBytes int64

	// Writer-goroutine state.
	active *os.File

	// Consumer cursor.
	cur    uint64
	rdSeg  uint64 // base of the segment rd reads
	rdPos  uint64 // offset of the next record rd returns
	rdFile *os.File
	rd     *bufio.Reader
}

// Open opens or creates the spool in opts.Dir, recovering what a previous
// run left. Damaged segments are truncated after their last intact record,
// with an error logged naming the file; intact records are kept.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if opts.MaxBytes < 64<<10 {
		return nil, fmt.Errorf("spool: max bytes %d is below the 64 KiB minimum", opts.MaxBytes)
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = min(max(opts.MaxBytes/16, 64<<10), 64<<20)
	}
	if opts.MemoryBytes == 0 {
		opts.MemoryBytes = 8 << 20
	}
	if opts.writeFile == nil {
		opts.writeFile = (*os.File).Write
	}
	if opts.PendingBytes == 0 {
		opts.PendingBytes = 32 << 20
	}
	if opts.AckInterval == 0 {
		opts.AckInterval = 200 * time.Millisecond
	}
	if opts.SyncInterval == 0 {
		opts.SyncInterval = 50 * time.Millisecond
	}
	if opts.Linger == 0 {
		opts.Linger = 2 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := os.Chmod(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(opts.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool: %s is in use by another process: %w", opts.Dir, err)
	}
	s := &Spool{
		opts:     opts,
		log:      opts.Log,
		lock:     lock,
		notify:   make(chan struct{}),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		syncKick: make(chan struct{}, 1),
		syncStop: make(chan struct{}),
		syncDone: make(chan struct{}),
	}
	if err := s.recover(); err != nil {
		lock.Close()
		return nil, err
	}
	if err := s.newSegment(); err != nil {
		lock.Close()
		return nil, err
	}
	s.cur = s.acked
	go s.writer()
	go s.syncer()
	return s, nil
}

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segSuffix) }

func (s *Spool) ackPath() string { return filepath.Join(s.opts.Dir, ackName) }

func (s *Spool) readAck() uint64 {
	b, err := os.ReadFile(s.ackPath())
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil || len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		// Redelivering everything is safe; consumers dedup by event_id.
		s.log.Error("spool: acknowledgement file unreadable, redelivering all spooled records", "file", s.ackPath(), "err", err)
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (s *Spool) saveAck(off uint64) error {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], off)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	tmp := s.ackPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, s.ackPath())
}

// newSegment starts a fresh active segment at s.written. Called before the
// writer starts or from the writer goroutine.
func (s *Spool) newSegment() error {
	s.mu.Lock()
	old := s.active
	s.active = nil
	s.mu.Unlock()
	if old != nil {
		if err := old.Close(); err != nil {
			s.log.Error("spool: closing a segment", "err", err)
		}
	}
	// The new segment starts after the last record on disk; records still
	// queued in pend (already numbered) will be written into it.
	s.mu.Lock()
	base := s.written
	s.mu.Unlock()
	path := filepath.Join(s.opts.Dir, segName(base))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if d, err := os.Open(s.opts.Dir); err == nil {
		d.Sync() // the new name must survive a crash
		d.Close()
	}
	s.mu.Lock()
	s.active = f
	if n := len(s.segs); n > 0 && s.segs[n-1].count == 0 && s.segs[n-1].base != base {
		// An empty segment left behind by records dropped unwritten.
		os.Remove(s.segs[n-1].path)
		s.segs = s.segs[:n-1]
	}
	if n := len(s.segs); n > 0 && s.segs[n-1].base == base {
		// Recovery left an empty segment at this base: replace it.
		s.segs[n-1] = &segment{base: base, path: path}
	} else {
		s.segs = append(s.segs, &segment{base: base, path: path})
	}
	s.mu.Unlock()
	return nil
}

// Append queues data for the disk and returns its offset. It does not wait
// for the disk: the writer goroutine writes and fsyncs in groups (one fsync
// per segment touched per round). The consumer may read the record from
// the memory window once it is written, before it is fsynced; the disk
// copy is what outlives a broker outage or a restart.
func (s *Spool) Append(data []byte) (uint64, error) {
	if len(data) > MaxRecord {
		return 0, fmt.Errorf("spool: record of %d bytes exceeds %d", len(data), MaxRecord)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, errors.New("spool: closed")
	}
	if len(s.pend)+headerSize+len(data) > int(s.opts.PendingBytes) {
		// The disk is far behind (stalled fsync): refuse rather than
		// grow without bound; the caller counts and reports the loss.
		s.refused++
		s.mu.Unlock()
		return 0, fmt.Errorf("%w (%d bytes waiting)", ErrPendingFull, len(s.pend))
	}
	var hdr [headerSize]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(len(data)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(data, castagnoli))
	s.pend = append(append(s.pend, hdr[:]...), data...)
	s.pendN++
	off := s.next
	s.next++
	if len(s.mem) == 0 {
		s.memBase = off
	}
	if s.memBase+uint64(len(s.mem)) == off {
		s.mem = append(s.mem, Record{Offset: off, Data: slices.Clone(data)})
		s.memBytes += int64(len(data))
		for s.memBytes > s.opts.MemoryBytes && len(s.mem) > 0 {
			// The consumer is far behind: the oldest go back to being read
			// from disk.
			s.memBytes -= int64(len(s.mem[0].Data))
			s.mem[0] = Record{}
			s.mem = s.mem[1:]
			s.memBase++
		}
	}
	s.appended++
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return off, nil
}

// writer is the only goroutine that writes segment files.
func (s *Spool) writer() {
	defer close(s.done)
	tick := time.NewTicker(s.opts.AckInterval)
	defer tick.Stop()
	var buf []byte
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		ack := false
		select {
		case <-s.kick:
			s.linger(linger)
		case <-tick.C:
			ack = true
		}
		s.mu.Lock()
		buf, s.pend = s.pend, buf[:0]
		n := s.pendN
		s.pendN = 0
		closed := s.closed
		s.mu.Unlock()
		if n > 0 {
			s.writeRound(buf, n)
		}
		if ack {
			// Every AckInterval, not at every append: each save is an
			// fsync, and appends come at the event rate.
			s.persistAck()
		}
		if closed {
			s.mu.Lock()
			more := s.pendN > 0
			s.mu.Unlock()
			if !more {
				return
			}
		}
	}
}

// LingerBytes is what, waiting to be written, ends a writer's linger.
const LingerBytes = 64 << 10

// linger waits Linger for more appends, unless LingerBytes wait already or
// the spool is closing: one write round, and one wakeup of the consumer,
// for the records of a burst instead of one for each.
func (s *Spool) linger(t *time.Timer) {
	if s.opts.Linger <= 0 {
		return
	}
	s.mu.Lock()
	skip := s.closed || len(s.pend) >= LingerBytes
	s.mu.Unlock()
	if skip {
		return
	}
	t.Reset(s.opts.Linger)
	<-t.C
}

// flush writes buf (n framed records) into the active segment, starting a
// new segment whenever one reaches SegmentBytes (fsynced before it is
// closed). Written records are visible to the consumer at once; the
// syncer fsyncs them. On a write error it returns what is left unwritten
// (the records of buf from the failed write on) and how many records that
// is.
func (s *Spool) flush(buf []byte, n uint64) ([]byte, uint64, error) {
	for len(buf) > 0 {
		s.mu.Lock()
		room := s.opts.SegmentBytes - s.segs[len(s.segs)-1].size
		s.mu.Unlock()
		// Take whole records up to the room left (at least one).
		var size int
		var k uint64
		for size < len(buf) {
			l := headerSize + int(binary.LittleEndian.Uint32(buf[size:]))
			if k > 0 && int64(size+l) > room {
				break
			}
			size += l
			k++
		}
		if _, err := s.opts.writeFile(s.active, buf[:size]); err != nil {
			return buf, n, err
		}
		// In the page cache: a kill of the process no longer loses them
		// (the fsync is for power loss), so the consumer may have them.
		s.mu.Lock()
		g := s.segs[len(s.segs)-1]
		g.count += k
		g.size += int64(size)
		end := s.written + k
		s.written = end
		close(s.notify)
		s.notify = make(chan struct{})
		rotate := g.size >= s.opts.SegmentBytes
		s.mu.Unlock()
		if s.opts.OnWritten != nil {
			s.opts.OnWritten(end)
		}
		buf = buf[size:]
		n -= k
		if rotate {
			s.syncActive(end)
			if err := s.newSegment(); err != nil {
				return buf, n, err
			}
		}
		s.enforceLimit()
	}
	select {
	case s.syncKick <- struct{}{}:
	default:
	}
	if n != 0 {
		return nil, 0, fmt.Errorf("spool: internal: %d records unaccounted in a flush", n)
	}
	return nil, 0, nil
}

// syncActive fsyncs the active segment, holding records below end, from
// the writer goroutine (before a rotation or at Close).
func (s *Spool) syncActive(end uint64) {
	if s.active == nil {
		return
	}
	err := s.active.Sync()
	s.mu.Lock()
	if err == nil {
		s.synced = max(s.synced, end)
		s.fsyncs++
	} else {
		s.writeErrors++
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Error("spool: fsync failed; the records stay as written", "dir", s.opts.Dir, "err", err)
	}
}

// syncer fsyncs the active segment whenever the writer has written to it,
// as one group for everything written meanwhile. A segment closed by a
// rotation meanwhile was fsynced by the writer.
func (s *Spool) syncer() {
	defer close(s.syncDone)
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	for {
		select {
		case <-s.syncKick:
		case <-s.syncStop:
			return
		}
		start := time.Now()
		s.mu.Lock()
		target, f := s.written, s.active
		s.mu.Unlock()
		if f == nil {
			continue
		}
		err := f.Sync()
		s.mu.Lock()
		switch {
		case err == nil:
			s.synced = max(s.synced, target)
			s.fsyncs++
		case !errors.Is(err, os.ErrClosed):
			s.writeErrors++
		}
		s.mu.Unlock()
		if err != nil && !errors.Is(err, os.ErrClosed) {
			s.log.Error("spool: fsync failed; the records stay as written", "dir", s.opts.Dir, "err", err)
		}
		// At most one fsync per SyncInterval: what is written meanwhile
		// waits for the next, as one group (a kick meanwhile is kept).
		if d := s.opts.SyncInterval - time.Since(start); d > 0 {
			pause.Reset(d)
			select {
			case <-pause.C:
			case <-s.syncStop:
				return
			}
		}
	}
}

// enforceLimit drops the oldest closed segments while the spool is over
// MaxBytes, and reports how many unacknowledged records went with them.
func (s *Spool) enforceLimit() {
	var lost, from uint64
	var gone []string
	s.mu.Lock()
	total := int64(len(s.pend))
	for _, g := range s.segs {
		total += g.size
	}
	for total > s.opts.MaxBytes && len(s.segs) > 1 {
		g := s.segs[0]
		s.segs = s.segs[1:]
		total -= g.size
		if g.end() > s.acked {
			if lost == 0 {
				from = max(g.base, s.acked)
			}
			lost += g.end() - max(g.base, s.acked)
			s.acked = g.end()
		}
		gone = append(gone, g.path)
	}
	s.dropped += lost
	s.trimMemLocked()
	s.mu.Unlock()
	for _, p := range gone {
		if err := os.Remove(p); err != nil {
			s.log.Error("spool: removing dropped segment", "file", p, "err", err)
		}
	}
	if lost > 0 {
		s.log.Warn("spool full: dropped oldest events", "dropped", lost, "max_bytes", s.opts.MaxBytes)
		if s.opts.OnDrop != nil {
			s.opts.OnDrop(from, from+lost, "spool full")
		}
	}
}

func (s *Spool) persistAck() {
	s.mu.Lock()
	acked, saved := s.acked, s.ackSaved
	s.mu.Unlock()
	if acked == saved {
		return
	}
	if err := s.saveAck(acked); err != nil {
		s.log.Error("spool: saving acknowledgement point", "file", s.ackPath(), "err", err)
		return
	}
	s.mu.Lock()
	s.ackSaved = acked
	s.mu.Unlock()
}

// Ack releases every record below off. Segments wholly released are
// removed.
func (s *Spool) Ack(off uint64) {
	s.mu.Lock()
	if off <= s.acked {
		s.mu.Unlock()
		return
	}
	s.acked = min(off, s.next)
	s.trimMemLocked()
	var gone []string
	for len(s.segs) > 1 && s.segs[0].end() <= s.acked {
		gone = append(gone, s.segs[0].path)
		s.segs = s.segs[1:]
	}
	s.mu.Unlock()
	// Unlinked outside the lock: Append must not wait on the filesystem.
	for _, p := range gone {
		if err := os.Remove(p); err != nil {
			s.log.Error("spool: removing released segment", "file", p, "err", err)
		}
	}
}

// trimMemLocked releases the in-memory copies of released records.
func (s *Spool) trimMemLocked() {
	for len(s.mem) > 0 && s.memBase < s.acked {
		s.memBytes -= int64(len(s.mem[0].Data))
		s.mem[0] = Record{}
		s.mem = s.mem[1:]
		s.memBase++
	}
}

// Stats returns a snapshot.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Segments: len(s.segs), Bytes: int64(len(s.pend)),
		Dropped: s.dropped, Appended: s.appended, Acked: s.acked,
		NextOffset: s.next, SyncedUntil: s.synced, Fsyncs: s.fsyncs,
		WriteErrors: s.writeErrors, Refused: s.refused,
	}
	for _, g := range s.segs {
		st.Bytes += g.size
	}
	st.Pending = s.next - s.acked
	return st
}

// Close writes what is queued, persists the acknowledgement point and
// closes the files. Unacknowledged records stay for the next Open. The
// consumer must have returned from Next before Close is called.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	<-s.done
	close(s.syncStop)
	<-s.syncDone
	s.mu.Lock()
	written := s.written
	s.mu.Unlock()
	s.syncActive(written)
	s.persistAck()
	var errs []error
	if s.active != nil {
		errs = append(errs, s.active.Close())
	}
	s.mu.Lock()
	if s.rdFile != nil {
		s.rdFile.Close()
	}
	s.mu.Unlock()
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}
