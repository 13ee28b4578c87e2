package spool

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
)

// Next returns up to maxN records (and about maxBytes) from the consumer
// cursor, from memory or, once written, from disk, waiting until one is
// available or ctx ends. Records dropped while waiting are skipped.
func (s *Spool) Next(ctx context.Context, maxN int, maxBytes int) ([]Record, error) {
	return s.read(ctx, maxN, maxBytes, true)
}

// TryNext is Next without the wait: it returns no record when none is
// readable now.
func (s *Spool) TryNext(maxN int, maxBytes int) ([]Record, error) {
	return s.read(context.Background(), maxN, maxBytes, false)
}

// Readable reports whether maxN records, or maxBytes of them, are readable
// now from the consumer cursor, and a channel closed when more become
// readable.
func (s *Spool) Readable(maxN int, maxBytes int) (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := max(s.cur, s.acked)
	if s.closed || s.written < cur || s.written-cur >= uint64(maxN) {
		return true, s.notify
	}
	if n := len(s.mem); n > 0 && cur >= s.memBase {
		size := 0
		for j := int(cur - s.memBase); j < n && s.memBase+uint64(j) < s.written; j++ {
			if size += len(s.mem[j].Data); size >= maxBytes {
				return true, s.notify
			}
		}
	}
	ch := s.notify
	return false, ch
}

func (s *Spool) read(ctx context.Context, maxN int, maxBytes int, wait bool) ([]Record, error) {
	s.mu.Lock()
	drops := s.recoveryDrops
	s.recoveryDrops = nil
	s.mu.Unlock()
	for _, d := range drops {
		if s.opts.OnDrop != nil {
			s.opts.OnDrop(d.from, d.to, d.reason)
		}
	}
	for {
		s.mu.Lock()
		if s.closed && s.cur >= s.written {
			s.mu.Unlock()
			return nil, errors.New("spool: closed")
		}
		if s.cur < s.acked {
			s.cur = s.acked
		}
		if n := len(s.mem); n > 0 && s.cur >= s.memBase && s.cur < min(s.memBase+uint64(n), s.written) {
			n = int(min(s.memBase+uint64(n), s.written) - s.memBase)
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
		if s.cur < s.written {
			recs, err := s.readDisk(maxN, maxBytes)
			if err != nil || len(recs) > 0 {
				return recs, err
			}
			continue
		}
		if !wait {
			s.mu.Unlock()
			return nil, nil
		}
		ch := s.notify
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
	return g, s.cur, min(g.end(), s.written), true
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

// ScanNewest calls fn with every intact record of the newest segment that
// has any, oldest first; call it before the first Next. A restart uses it
// to learn what the previous run last wrote.
func (s *Spool) ScanNewest(fn func(data []byte)) error {
	s.mu.Lock()
	var g *segment
	for i := len(s.segs) - 1; i >= 0; i-- {
		if s.segs[i].count > 0 && s.segs[i].base < s.written {
			g = s.segs[i]
			break
		}
	}
	var path string
	var n uint64
	if g != nil {
		path, n = g.path, min(g.count, s.written-g.base)
	}
	s.mu.Unlock()
	if g == nil {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	var hdr [headerSize]byte
	for i := uint64(0); i < n; i++ {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("spool: %s: %w", path, err)
		}
		size := binary.LittleEndian.Uint32(hdr[0:])
		if size > MaxRecord {
			return fmt.Errorf("spool: %s: record length %d", path, size)
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("spool: %s: %w", path, err)
		}
		if crc32.Checksum(data, castagnoli) == binary.LittleEndian.Uint32(hdr[4:]) {
			fn(data)
		}
	}
	return nil
}

// Rewind moves the consumer cursor back to the first unacknowledged record,
// for a consumer that gave up on records it had read.
func (s *Spool) Rewind() {
	s.mu.Lock()
	s.cur = s.acked
	s.mu.Unlock()
}
