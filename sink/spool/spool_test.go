package spool

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

func open(t *testing.T, dir string, lb *testutil.SyncBuffer, mod ...func(*Options)) *Spool {
	t.Helper()
	o := Options{Dir: dir, MaxBytes: 4 << 20, SegmentBytes: 4 << 10, Log: slog.New(slog.NewTextHandler(lb, nil))}
	for _, m := range mod {
		m(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func payload(i int) []byte {
	return []byte(fmt.Sprintf("record-%06d-%s", i, strings.Repeat("x", i%50)))
}

func appendN(t *testing.T, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		off, err := s.Append(payload(i))
		if err != nil {
			t.Fatal(err)
		}
		if off != uint64(i) {
			t.Fatalf("record %d got offset %d", i, off)
		}
	}
}

func readN(t *testing.T, s *Spool, n int) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []Record
	for len(out) < n {
		recs, err := s.Next(ctx, 64, 1<<20)
		if err != nil {
			t.Fatalf("after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	return out
}

func checkRecords(t *testing.T, recs []Record, from int) {
	t.Helper()
	for i, r := range recs {
		want := from + i
		if r.Offset != uint64(want) || !bytes.Equal(r.Data, payload(want)) {
			t.Fatalf("record %d: offset %d data %q, want offset %d data %q", i, r.Offset, r.Data, want, payload(want))
		}
	}
}

func TestAppendReadAckAcrossSegments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	var lb testutil.SyncBuffer
	s := open(t, dir, &lb)
	appendN(t, s, 0, 1000)
	recs := readN(t, s, 1000)
	checkRecords(t, recs, 0)
	waitSynced(t, s, 1000)
	st := s.Stats()
	if st.Segments < 3 {
		t.Fatalf("%d segments: rotation did not happen", st.Segments)
	}
	if st.Fsyncs == 0 || st.Fsyncs > 1000 {
		t.Fatalf("%d fsyncs for 1000 records", st.Fsyncs)
	}
	s.Ack(1000)
	if st := s.Stats(); st.Segments != 1 || st.Pending != 0 {
		t.Fatalf("after ack: %+v", st)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool dir mode %v, want 0700", fi.Mode().Perm())
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, p := range segs {
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRestartResumesAfterAck(t *testing.T) {
	dir := t.TempDir()
	var lb testutil.SyncBuffer
	s := open(t, dir, &lb)
	appendN(t, s, 0, 500)
	readN(t, s, 300)
	s.Ack(300)
	s.Close()

	s = open(t, dir, &lb)
	defer s.Close()
	if st := s.Stats(); st.Pending != 200 || st.NextOffset != 500 {
		t.Fatalf("reopened: %+v", st)
	}
	appendN(t, s, 500, 10)
	checkRecords(t, readN(t, s, 210), 300)
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	var lb testutil.SyncBuffer
	s := open(t, dir, &lb)
	defer s.Close()
	if _, err := Open(Options{Dir: dir, MaxBytes: 1 << 20}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

func TestTruncatedSegmentKeepsIntactRecords(t *testing.T) {
	dir := t.TempDir()
	var lb testutil.SyncBuffer
	s := open(t, dir, &lb, func(o *Options) { o.SegmentBytes = 1 << 20 })
	appendN(t, s, 0, 100)
	readN(t, s, 100)
	waitSynced(t, s, 100)
	s.Close()
	segs := segments(t, dir)
	if len(segs) != 1 {
		t.Fatalf("want one segment, have %v", segs)
	}
	fi, _ := os.Stat(segs[0])
	// Cut the last record in half, as a crash in mid-write would.
	if err := os.Truncate(segs[0], fi.Size()-10); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, &lb)
	defer s.Close()
	if !strings.Contains(lb.String(), segs[0]) || !strings.Contains(lb.String(), "truncated record") {
		t.Fatalf("recovery did not name the damaged file and problem:\n%s", lb.String())
	}
	recs := readN(t, s, 99)
	checkRecords(t, recs, 0)
	appendN(t, s, 99, 5) // offsets continue where the intact records end
	checkRecords(t, readN(t, s, 5), 99)
}

func TestCorruptRecordInOlderSegment(t *testing.T) {
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
	// Flip a byte in the middle of the second segment's payloads.
	victim := segs[1]
	b, _ := os.ReadFile(victim)
	b[len(b)/2] ^= 0xff
	os.WriteFile(victim, b, 0o600)

	s = open(t, dir, &lb)
	defer s.Close()
	log := lb.String()
	if !strings.Contains(log, victim) || !strings.Contains(log, "checksum mismatch") {
		t.Fatalf("recovery log does not name %s and the problem:\n%s", victim, log)
	}
	var got []Record
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		recs, err := s.Next(ctx, 1000, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, recs...)
		if len(got) > 0 && got[len(got)-1].Offset == 599 {
			break
		}
	}
	// Every record read back is intact and where it was; only the damaged
	// tail of the one segment is missing.
	for _, r := range got {
		if !bytes.Equal(r.Data, payload(int(r.Offset))) {
			t.Fatalf("offset %d: wrong data %q", r.Offset, r.Data)
		}
	}
	missing := 600 - len(got)
	if missing == 0 || missing > 300 {
		t.Fatalf("%d records missing after damaging one segment", missing)
	}
	if got[0].Offset != 0 {
		t.Fatalf("first segment lost")
	}
}

func TestFullDropsOldestAndCounts(t *testing.T) {
	dir := t.TempDir()
	var lb testutil.SyncBuffer
	var mu sync.Mutex
	var reported uint64
	s := open(t, dir, &lb, func(o *Options) {
		o.MaxBytes = 64 << 10
		o.SegmentBytes = 8 << 10
		o.OnDrop = func(from, to uint64, _ string) { mu.Lock(); reported += to - from; mu.Unlock() }
	})
	defer s.Close()
	for i := 0; i < 5000; i++ {
		if _, err := s.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
		if i%200 == 0 {
			for s.Stats().SyncedUntil < uint64(i+1) {
				time.Sleep(time.Millisecond)
			}
		}
	}
	for s.Stats().SyncedUntil < 5000 {
		time.Sleep(time.Millisecond)
	}
	st := s.Stats()
	mu.Lock()
	rep := reported
	mu.Unlock()
	if st.Dropped == 0 || st.Dropped != rep {
		t.Fatalf("dropped %d, reported %d", st.Dropped, rep)
	}
	if st.Bytes > 64<<10 {
		t.Fatalf("spool holds %d bytes over its 64 KiB bound", st.Bytes)
	}
	recs := readN(t, s, int(5000-st.Dropped))
	// What is left is the newest run, intact.
	checkRecords(t, recs, int(st.Dropped))
}

func TestCorruptAckFileRedelivers(t *testing.T) {
	dir := t.TempDir()
	var lb testutil.SyncBuffer
	s := open(t, dir, &lb)
	appendN(t, s, 0, 50)
	readN(t, s, 50)
	s.Ack(20)
	s.Close()
	os.WriteFile(filepath.Join(dir, "ack"), []byte("garbage"), 0o600)
	s = open(t, dir, &lb)
	defer s.Close()
	if !strings.Contains(lb.String(), "acknowledgement file unreadable") {
		t.Fatalf("no error logged:\n%s", lb.String())
	}
	checkRecords(t, readN(t, s, 50), 0)
}

func waitSynced(t *testing.T, s *Spool, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().SyncedUntil < n {
		if time.Now().After(deadline) {
			t.Fatalf("records not on disk after 10 s: %+v", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// A consumer far behind reads the oldest records back from disk and the
// newest from memory, in order, with nothing skipped or repeated.
func TestMemoryWindowOverflowReadsFromDisk(t *testing.T) {
	dir := t.TempDir()
	var lb testutil.SyncBuffer
	s := open(t, dir, &lb, func(o *Options) { o.MemoryBytes = 2 << 10 })
	defer s.Close()
	appendN(t, s, 0, 2000)
	s.mu.Lock()
	memBase := s.memBase
	s.mu.Unlock()
	if memBase == 0 {
		t.Fatal("memory window did not shed old records")
	}
	checkRecords(t, readN(t, s, 2000), 0)
	s.Ack(2000)
	if st := s.Stats(); st.Pending != 0 {
		t.Fatalf("%+v", st)
	}
}

// A segment damaged after it was written (a disk error under a running
// spool) is found by the reader: the records before the damage are
// returned intact, the rest of that segment is skipped, counted as dropped
// and reported, and reading carries on with the next segment.
func TestDamageFoundWhileReading(t *testing.T) {
	dir := t.TempDir()
	var lb testutil.SyncBuffer
	var mu sync.Mutex
	var reported uint64
	var reason string
	s := open(t, dir, &lb, func(o *Options) {
		o.MemoryBytes = 1 // every read goes to disk
		o.OnDrop = func(from, to uint64, why string) { mu.Lock(); reported += to - from; reason = why; mu.Unlock() }
	})
	defer s.Close()
	appendN(t, s, 0, 600)
	waitSynced(t, s, 600)
	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %d", len(segs))
	}
	victim := segs[1]
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}

	var got []Record
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(got) == 0 || got[len(got)-1].Offset != 599 {
		recs, err := s.Next(ctx, 64, 1<<20)
		if err != nil {
			t.Fatalf("after %d records: %v", len(got), err)
		}
		got = append(got, recs...)
	}
	for i, r := range got {
		if !bytes.Equal(r.Data, payload(int(r.Offset))) {
			t.Fatalf("offset %d: wrong data %q", r.Offset, r.Data)
		}
		if i > 0 && r.Offset <= got[i-1].Offset {
			t.Fatalf("offset %d after %d", r.Offset, got[i-1].Offset)
		}
	}
	missing := uint64(600 - len(got))
	st := s.Stats()
	mu.Lock()
	rep, why := reported, reason
	mu.Unlock()
	if missing == 0 || st.Dropped != missing || rep != missing {
		t.Fatalf("%d records missing, %d counted dropped, %d reported", missing, st.Dropped, rep)
	}
	if why != "spool segment damaged" {
		t.Fatalf("drop reported as %q", why)
	}
	if log := lb.String(); !strings.Contains(log, victim) || !strings.Contains(log, "checksum mismatch") {
		t.Fatalf("read error does not name %s and the problem:\n%s", victim, log)
	}
}

// The acknowledgement point is saved (an fsync) every AckInterval and at
// Close, not at every append: appends come at the event rate.
func TestAckSavedEveryIntervalNotEveryAppend(t *testing.T) {
	dir := t.TempDir()
	var lb testutil.SyncBuffer
	s := open(t, dir, &lb, func(o *Options) { o.AckInterval = time.Hour })
	appendN(t, s, 0, 100)
	readN(t, s, 60)
	s.Ack(60)
	appendN(t, s, 100, 100) // kicks the writer again
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(dir, ackName)); err == nil {
		t.Fatal("the acknowledgement was saved before its interval")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, &lb)
	defer s.Close()
	if st := s.Stats(); st.Pending != 140 {
		t.Fatalf("after Close the acknowledgement is saved: %+v", st)
	}
}

// appendPaced appends n records, one every gap, from record from.
func appendPaced(t *testing.T, s *Spool, from, n int, gap time.Duration) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := s.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(gap)
	}
}

// A stream of appends, each waking the writer, is fsynced at most once per
// SyncInterval, and every record is fsynced within about an interval.
func TestFsyncAtMostOncePerInterval(t *testing.T) {
	var lb testutil.SyncBuffer
	const interval = 100 * time.Millisecond
	s := open(t, t.TempDir(), &lb, func(o *Options) {
		o.SegmentBytes = 64 << 20 // no rotation: its fsync is the writer's
		o.SyncInterval = interval
		o.Linger = -1
	})
	defer s.Close()
	start := time.Now()
	appendPaced(t, s, 0, 300, time.Millisecond) // about 300 ms
	el := time.Since(start)
	st := s.Stats()
	if max := uint64(el/interval) + 2; st.Fsyncs > max {
		t.Fatalf("%d fsyncs in %v, want at most %d (one per %v)", st.Fsyncs, el, max, interval)
	}
	deadline := time.Now().Add(50 * interval)
	for s.Stats().SyncedUntil < 300 {
		if time.Now().After(deadline) {
			t.Fatalf("records not fsynced %v after the last append: %+v", 50*interval, s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The writer writes a stream of appends in about a round per Linger, not
// one per append; with a negative Linger it writes at once. The bounds
// follow the stream's own duration, which a loaded host stretches.
func TestWriterLingersForAStream(t *testing.T) {
	run := func(t *testing.T, linger time.Duration) (int, time.Duration) {
		var lb testutil.SyncBuffer
		var writes atomic.Int64
		s := open(t, t.TempDir(), &lb, func(o *Options) {
			o.SegmentBytes = 64 << 20
			o.Linger = linger
			o.writeFile = func(f *os.File, b []byte) (int, error) {
				writes.Add(1)
				return f.Write(b)
			}
		})
		start := time.Now()
		appendPaced(t, s, 0, 200, 200*time.Microsecond)
		el := time.Since(start)
		checkRecords(t, readN(t, s, 200), 0)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return int(writes.Load()), el
	}
	const linger = 20 * time.Millisecond
	n, el := run(t, linger)
	n0, el0 := run(t, -1)
	testutil.CheckLinger(t, "writes for 200 appends", linger, int64(n), el, int64(n0), el0)
}

// Readable says when a batch's worth is readable, by count or by bytes,
// and its channel closes when more is written.
func TestReadableByCountAndBytes(t *testing.T) {
	var lb testutil.SyncBuffer
	s := open(t, t.TempDir(), &lb, func(o *Options) { o.Linger = -1 })
	defer s.Close()
	appendN(t, s, 0, 3)
	deadline := time.Now().Add(10 * time.Second)
	for ok, _ := s.Readable(3, 1<<20); !ok; ok, _ = s.Readable(3, 1<<20) {
		if time.Now().After(deadline) {
			t.Fatal("3 appended records never readable")
		}
		time.Sleep(time.Millisecond)
	}
	ok, more := s.Readable(4, 1<<20)
	if ok {
		t.Fatal("4 records readable after 3 appends")
	}
	if ok, _ := s.Readable(4, len(payload(0))+len(payload(1))); !ok {
		t.Fatal("two records' bytes readable, not reported by bytes")
	}
	appendN(t, s, 3, 1)
	select {
	case <-more:
	case <-time.After(10 * time.Second):
		t.Fatal("the channel did not close when a record was written")
	}
	if ok, _ := s.Readable(4, 1<<20); !ok {
		t.Fatal("4 records not readable after 4 appends")
	}
	// Read past, the count starts at the cursor.
	readN(t, s, 4)
	if ok, _ := s.Readable(1, 1<<20); ok {
		t.Fatal("a record readable with the cursor at the end")
	}
}
