package spool

import (
	"bufio"
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
)

// dropRange is a loss found at recovery, reported through OnDrop by the
// first Next (the consumer is running by then).
type dropRange struct {
	from, to uint64
	reason   string
}

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
	for i, b := range bases {
		path := filepath.Join(s.opts.Dir, segName(b))
		g, tail, err := scanSegment(path, b, s.log)
		if err != nil {
			return err
		}
		segs := []*segment{g}
		if tail != nil {
			t, err := s.salvage(g, tail, bases[i+1:])
			if err != nil {
				return err
			}
			segs = append(segs, t)
		}
		for _, g := range segs {
			if g.count == 0 || g.end() <= s.acked {
				if err := os.Remove(g.path); err != nil {
					return fmt.Errorf("spool: %w", err)
				}
				continue
			}
			if n := len(s.segs); n > 0 && s.segs[n-1].end() > g.base {
				return fmt.Errorf("spool: segment %s overlaps the previous one (ends at %d)", g.path, s.segs[n-1].end())
			}
			s.segs = append(s.segs, g)
		}
	}
	s.next = s.acked
	if n := len(s.segs); n > 0 {
		s.next = max(s.next, s.segs[n-1].end())
		if s.segs[0].base > s.acked {
			s.log.Error("spool: records missing before the first segment", "from", s.acked, "to", s.segs[0].base)
		}
	}
	s.synced = s.next
	s.written = s.next
	s.ackSaved = s.acked
	return nil
}

// salvaged is the intact records found after the damage in a segment.
type salvaged struct {
	data  []byte // framed records
	count uint64
}

// salvage writes the intact records found after the damage in segment g
// into a segment of their own. Their offsets are not known exactly (the
// damage may have covered several records): when a later segment follows,
// they end where it begins, as they did; in the last segment they follow
// the damage counted as one record, and the acknowledgement point is moved
// back to them so none is skipped (a redelivery at worst). The records
// between are counted as dropped.
func (s *Spool) salvage(g *segment, tail *salvaged, later []uint64) (*segment, error) {
	base := g.end() + 1
	if len(later) > 0 && later[0] >= base+tail.count {
		base = later[0] - tail.count
	} else if s.acked > g.end() {
		s.acked = g.end()
	}
	t := &segment{base: base, count: tail.count, size: int64(len(tail.data)), path: filepath.Join(s.opts.Dir, segName(base))}
	f, err := os.OpenFile(t.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	_, err = f.Write(tail.data)
	err = errors.Join(err, f.Sync(), f.Close())
	if err != nil {
		return nil, fmt.Errorf("spool: salvaging records after damage into %s: %w", t.path, err)
	}
	lost := base - g.end()
	s.dropped += lost
	s.recoveryDrops = append(s.recoveryDrops, dropRange{g.end(), base, "spool segment damaged"})
	s.log.Error("spool: damaged records skipped, the intact records after them kept",
		"file", g.path, "kept_after_damage", tail.count, "into", t.path, "lost_records", lost)
	return t, nil
}

// scanSegment validates every record of a segment. At damage (a bad
// length, a short record, a checksum mismatch) the segment is cut there,
// and the intact records after it, found by their checksums, are returned
// to be kept in a segment of their own.
func scanSegment(path string, base uint64, log *slog.Logger) (*segment, *salvaged, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	r := bufio.NewReaderSize(f, 256<<10)
	g := &segment{base: base, path: path}
	var hdr [headerSize]byte
	var buf []byte
	for {
		_, err := io.ReadFull(r, hdr[:])
		if err == io.EOF {
			return g, nil, nil
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
			all, err := os.ReadFile(path)
			if err != nil {
				return nil, nil, fmt.Errorf("spool: reading damaged %s: %w", path, err)
			}
			tail := findIntact(all[g.size+1:])
			log.Error("spool: damaged segment, keeping the records before and after the damage",
				"file", path, "byte_offset", g.size, "problem", bad, "kept_records", g.count,
				"records_after_damage", tail.count)
			if err := f.Truncate(g.size); err != nil {
				return nil, nil, fmt.Errorf("spool: truncating damaged %s: %w", path, err)
			}
			if tail.count == 0 {
				return g, nil, nil
			}
			return g, &tail, nil
		}
		g.count++
		g.size += headerSize + int64(n)
	}
}

// findIntact returns the intact records in b, found by scanning for a
// frame whose checksum matches and resuming after each one.
func findIntact(b []byte) salvaged {
	var out salvaged
	for i := 0; i+headerSize <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[i:]))
		end := i + headerSize + n
		if n <= MaxRecord && end <= len(b) && n > 0 &&
			crc32.Checksum(b[i+headerSize:end], castagnoli) == binary.LittleEndian.Uint32(b[i+4:]) {
			out.data = append(out.data, b[i:end]...)
			out.count++
			i = end
			continue
		}
		i++
	}
	return out
}
