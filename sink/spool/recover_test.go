package spool

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// readAll reads every record up to and including offset last.
func readAll(t *testing.T, s *Spool, last uint64) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []Record
	for len(got) == 0 || got[len(got)-1].Offset < last {
		recs, err := s.Next(ctx, 1000, 1<<30)
		if err != nil {
			t.Fatalf("after %d records: %v", len(got), err)
		}
		got = append(got, recs...)
	}
	return got
}

// corrupt flips a byte inside the payload of record i of the segment at
// path (records of payload(j) for j from first).
func corrupt(t *testing.T, path string, first, i int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pos := 0
	for j := first; j < i; j++ {
		pos += headerSize + len(payload(j))
	}
	b[pos+headerSize+2] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Crash recovery used to truncate a damaged segment at its first bad
// record, discarding the intact records after it. They are kept: in an
// older segment at their exact offsets (they end where the next segment
// begins), and the loss is one record, reported.
func TestRecoveryKeepsRecordsAfterDamage(t *testing.T) {
	dir := t.TempDir()
	var lb testutil.SyncBuffer
	s := open(t, dir, &lb) // 4 KiB segments
	appendN(t, s, 0, 600)
	readN(t, s, 600)
	s.Close()
	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %d", len(segs))
	}
	// The second segment's first record number is in its name.
	var first int
	for _, c := range strings.TrimSuffix(segs[1][len(dir)+1:], segSuffix) {
		first = first*10 + int(c-'0')
	}
	corrupt(t, segs[1], first, first+3)

	var d drops
	s = open(t, dir, &lb, func(o *Options) { o.OnDrop = d.on })
	defer s.Close()
	got := readAll(t, s, 599)
	for _, r := range got {
		if !bytes.Equal(r.Data, payload(int(r.Offset))) {
			t.Fatalf("offset %d holds %q", r.Offset, r.Data)
		}
	}
	if len(got) != 599 {
		t.Errorf("%d records back of 600 with one damaged", len(got))
	}
	if n, _ := d.count(); n != 1 || s.Stats().Dropped != 1 {
		t.Errorf("reported %d dropped (stats %d), want the one damaged record", n, s.Stats().Dropped)
	}
}

// In the last segment, the intact records after the damage are kept too
// (their offsets follow the damage counted as one record).
func TestRecoveryKeepsRecordsAfterDamageInLastSegment(t *testing.T) {
	dir := t.TempDir()
	var lb testutil.SyncBuffer
	s := open(t, dir, &lb, func(o *Options) { o.SegmentBytes = 1 << 20 })
	appendN(t, s, 0, 100)
	waitSynced(t, s, 100)
	s.Close()
	segs := segments(t, dir)
	corrupt(t, segs[0], 0, 50)
	s = open(t, dir, &lb)
	defer s.Close()
	got := readAll(t, s, 99)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Data)] = true
	}
	for i := 0; i < 100; i++ {
		if i != 50 && !seen[string(payload(i))] {
			t.Errorf("intact record %d lost", i)
		}
	}
}
