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
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	// Log receives recovery and I/O errors.
	Log *slog.Logger
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

	mu       sync.Mutex
	segs     []*segment // oldest first; the last one is active
	pend     []byte     // encoded records not yet written
	pendN    uint64
	next     uint64 // offset of the next appended record
	synced   uint64 // records below this offset are on disk and fsynced
	acked    uint64
	ackSaved uint64
	dropped  uint64
	appended uint64
	fsyncs   uint64
	closed   bool
	err      error         // sticky write error
	notify   chan struct{} // closed when records become readable
	waiting  bool          // the consumer waits on notify
	kick     chan struct{}
	done     chan struct{}

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
	if opts.AckInterval == 0 {
		opts.AckInterval = 200 * time.Millisecond
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
		opts:   opts,
		log:    opts.Log,
		lock:   lock,
		notify: make(chan struct{}),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
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
	return s, nil
}

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segSuffix) }

func (s *Spool) recover() error {
	ents, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var bases []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		b, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			s.log.Error("spool: ignoring file with a malformed segment name", "file", filepath.Join(s.opts.Dir, name))
			continue
		}
		bases = append(bases, b)
	}
	slices.Sort(bases)
	s.acked = s.readAck()
	for _, b := range bases {
		path := filepath.Join(s.opts.Dir, segName(b))
		g, err := scanSegment(path, b, s.log)
		if err != nil {
			return err
		}
		if g.count == 0 || g.end() <= s.acked {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			continue
		}
		if n := len(s.segs); n > 0 && s.segs[n-1].end() > g.base {
			return fmt.Errorf("spool: segment %s overlaps the previous one (ends at %d)", path, s.segs[n-1].end())
		}
		s.segs = append(s.segs, g)
	}
	s.next = s.acked
	if n := len(s.segs); n > 0 {
		s.next = max(s.next, s.segs[n-1].end())
		if s.segs[0].base > s.acked {
			s.log.Error("spool: records missing before the first segment", "from", s.acked, "to", s.segs[0].base)
		}
	}
	s.synced = s.next
	s.ackSaved = s.acked
	return nil
}

// scanSegment validates every record of a segment and truncates it after
// the last intact one.
func scanSegment(path string, base uint64, log *slog.Logger) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	r := bufio.NewReaderSize(f, 256<<10)
	g := &segment{base: base, path: path}
	var hdr [headerSize]byte
	var buf []byte
	for {
		_, err := io.ReadFull(r, hdr[:])
		if err == io.EOF {
			return g, nil
		}
		bad := ""
		var n uint32
		if err != nil {
			bad = "truncated record header"
		} else {
			n = binary.LittleEndian.Uint32(hdr[0:])
			if n > MaxRecord {
				bad = fmt.Sprintf("record length %d exceeds %d", n, MaxRecord)
			} else {
				buf = slices.Grow(buf[:0], int(n))[:n]
				if _, err := io.ReadFull(r, buf); err != nil {
					bad = "truncated record"
				} else if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
					bad = "checksum mismatch"
				}
			}
		}
		if bad != "" {
			st, _ := f.Stat()
			log.Error("spool: damaged segment, keeping the records before the damage",
				"file", path, "byte_offset", g.size, "problem", bad, "kept_records", g.count,
				"discarded_bytes", st.Size()-g.size)
			if err := f.Truncate(g.size); err != nil {
				return nil, fmt.Errorf("spool: truncating damaged %s: %w", path, err)
			}
			return g, nil
		}
		g.count++
		g.size += headerSize + int64(n)
	}
}

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

// newSegment starts a fresh active segment at s.synced. Called before the
// writer starts or from the writer goroutine.
func (s *Spool) newSegment() error {
	if s.active != nil {
		if err := s.active.Close(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	// The new segment starts after the last record on disk; records still
	// queued in pend (already numbered) will be written into it.
	s.mu.Lock()
	base := s.synced
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
	s.active = f
	s.mu.Lock()
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
// the memory window before it is fsynced; the disk copy is what outlives a
// broker outage or a restart.
func (s *Spool) Append(data []byte) (uint64, error) {
	if len(data) > MaxRecord {
		return 0, fmt.Errorf("spool: record of %d bytes exceeds %d", len(data), MaxRecord)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, errors.New("spool: closed")
	}
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return 0, err
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
	if s.waiting { // the consumer may read it from memory at once
		close(s.notify)
		s.notify = make(chan struct{})
		s.waiting = false
	}
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
	for {
		ack := false
		select {
		case <-s.kick:
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
			if err := s.flush(buf, n); err != nil {
				s.log.Error("spool: write failed", "dir", s.opts.Dir, "err", err)
				s.mu.Lock()
				s.err = fmt.Errorf("spool: %w", err)
				s.mu.Unlock()
			}
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

// flush writes buf (n framed records) into the active segment, starting a
// new segment whenever one reaches SegmentBytes, with one fsync per segment
// touched, and only then makes the records visible to the reader.
func (s *Spool) flush(buf []byte, n uint64) error {
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
		if _, err := s.active.Write(buf[:size]); err != nil {
			return err
		}
		if err := s.active.Sync(); err != nil {
			return err
		}
		s.mu.Lock()
		g := s.segs[len(s.segs)-1]
		g.count += k
		g.size += int64(size)
		s.synced += k
		s.fsyncs++
		close(s.notify)
		s.notify = make(chan struct{})
		rotate := g.size >= s.opts.SegmentBytes
		s.mu.Unlock()
		buf = buf[size:]
		n -= k
		if rotate {
			if err := s.newSegment(); err != nil {
				return err
			}
		}
		s.enforceLimit()
	}
	if n != 0 {
		return fmt.Errorf("spool: internal: %d records unaccounted in a flush", n)
	}
	return nil
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

// Next returns up to maxN records (and about maxBytes) from the consumer
// cursor, from memory or, once written, from disk, waiting until one is
// available or ctx ends. Records dropped while waiting are skipped.
func (s *Spool) Next(ctx context.Context, maxN int, maxBytes int) ([]Record, error) {
	for {
		s.mu.Lock()
		if s.closed && s.cur >= s.synced {
			s.mu.Unlock()
			return nil, errors.New("spool: closed")
		}
		if s.cur < s.acked {
			s.cur = s.acked
		}
		if n := len(s.mem); n > 0 && s.cur >= s.memBase && s.cur < s.memBase+uint64(n) {
			i := int(s.cur - s.memBase)
			j, size := i, 0
			for j < n && j-i < maxN && size < maxBytes {
				size += len(s.mem[j].Data)
				j++
			}
			out := slices.Clone(s.mem[i:j])
			s.cur = s.memBase + uint64(j)
			s.mu.Unlock()
			return out, nil
		}
		if s.cur < s.synced {
			recs, err := s.readDisk(maxN, maxBytes)
			if err != nil || len(recs) > 0 {
				return recs, err
			}
			continue
		}
		ch := s.notify
		s.waiting = true
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// readDisk is called with s.mu held and returns with it released. It
// reads from the segment holding the cursor without holding the lock, so
// Append (the caller's Write path) never waits for the disk: the reader
// state is the consumer's own, segment files are append-only, and a
// segment removed meanwhile stays readable through the open descriptor.
func (s *Spool) readDisk(maxN, maxBytes int) ([]Record, error) {
	g, cur, limit, ok := s.cursorSegmentLocked()
	s.mu.Unlock()
	if !ok {
		return nil, nil
	}
	if err := s.openReader(g, cur); err != nil {
		return nil, err
	}
	out, bad := s.readRecords(cur, limit, maxN, maxBytes)
	var lost, lostFrom uint64
	if bad != nil {
		lostFrom = s.rdPos
		lost = s.abandonSegment(g, bad)
	}
	out = s.advanceCursor(out, cur, g, bad != nil, lost)
	if lost > 0 && s.opts.OnDrop != nil {
		s.opts.OnDrop(lostFrom, lostFrom+lost, "spool segment damaged")
	}
	return out, nil
}

// cursorSegmentLocked finds the segment holding the consumer cursor,
// moving the cursor past gaps left by drops or damage. It returns the
// cursor and the offset up to which that segment may be read (its end, or
// what is fsynced so far); ok is false when no segment holds the cursor.
func (s *Spool) cursorSegmentLocked() (g segment, cur, limit uint64, ok bool) {
	for _, x := range s.segs {
		if x.end() > s.cur {
			g, ok = *x, true
			break
		}
	}
	if !ok {
		return segment{}, 0, 0, false
	}
	if g.base > s.cur {
		s.cur = g.base
	}
	return g, s.cur, min(g.end(), s.synced), true
}

// openReader points the consumer's reader at segment g, reopening it from
// its start unless the reader is already in g at or before cur.
func (s *Spool) openReader(g segment, cur uint64) error {
	if s.rdFile != nil && s.rdSeg == g.base && s.rdPos <= cur {
		return nil
	}
	if s.rdFile != nil {
		s.rdFile.Close()
		s.rdFile = nil
	}
	f, err := os.Open(g.path)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.rdFile, s.rdSeg, s.rdPos = f, g.base, g.base
	if s.rd == nil {
		s.rd = bufio.NewReaderSize(f, 256<<10)
	} else {
		s.rd.Reset(f)
	}
	return nil
}

// readRecords reads records from the open segment until limit, maxN
// records or about maxBytes, returning those at or after cur (a restart
// in mid-segment reads from the segment's start). bad is the first read
// or integrity error; the records before it are good.
func (s *Spool) readRecords(cur, limit uint64, maxN, maxBytes int) (out []Record, bad error) {
	size := 0
	for s.rdPos < limit && len(out) < maxN && size < maxBytes {
		data, err := s.readRecord()
		if err != nil {
			return out, err
		}
		off := s.rdPos
		s.rdPos++
		if off < cur {
			continue
		}
		out = append(out, Record{Offset: off, Data: data})
		size += len(data)
	}
	return out, nil
}

// readRecord reads one framed record from the segment reader and checks
// its length bound and checksum.
func (s *Spool) readRecord() ([]byte, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(s.rd, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:])
	if n > MaxRecord {
		return nil, fmt.Errorf("record length %d", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(s.rd, data); err != nil {
		return nil, err
	}
	if crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return nil, errors.New("checksum mismatch")
	}
	return data, nil
}

// abandonSegment gives up on the rest of a segment that fails to read
// back, logging the damage, and returns how many records are lost. The
// reader is closed so the next read starts afresh.
func (s *Spool) abandonSegment(g segment, bad error) (lost uint64) {
	lost = g.end() - s.rdPos
	s.log.Error("spool: damaged record while reading, skipping the rest of the segment",
		"file", g.path, "offset", s.rdPos, "skipped", lost, "err", bad)
	s.rdFile.Close()
	s.rdFile = nil
	return lost
}

// advanceCursor takes the lock again after a disk read: it drops records
// released meanwhile (dropped while full), moves the cursor past what was
// read (or past a damaged segment) unless a Rewind moved it, and counts
// lost records as dropped.
func (s *Spool) advanceCursor(out []Record, cur uint64, g segment, damaged bool, lost uint64) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range out {
		if r.Offset >= s.acked {
			out[n] = r
			n++
		}
	}
	out = out[:n]
	if s.cur == cur { // no Rewind meanwhile
		s.cur = max(s.cur, s.rdPos)
		if damaged {
			s.cur = max(s.cur, g.end())
		}
	}
	s.dropped += lost
	return out
}

// Rewind moves the consumer cursor back to the first unacknowledged record,
// for a consumer that gave up on records it had read.
func (s *Spool) Rewind() {
	s.mu.Lock()
	s.cur = s.acked
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
	s.persistAck()
	var errs []error
	if s.active != nil {
		errs = append(errs, s.active.Close())
	}
	s.mu.Lock()
	if s.rdFile != nil {
		s.rdFile.Close()
	}
	err := s.err
	s.mu.Unlock()
	errs = append(errs, err, s.lock.Close())
	return errors.Join(errs...)
}
