package spool

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// drops collects OnDrop calls.
type drops struct {
	mu      sync.Mutex
	n       uint64
	reasons []string
}

func (d *drops) on(from, to uint64, reason string) {
	d.mu.Lock()
	d.n += to - from
	d.reasons = append(d.reasons, reason)
	d.mu.Unlock()
}

func (d *drops) count() (uint64, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n, append([]string(nil), d.reasons...)
}

// appendAll appends n records from i, failing on any error.
func appendAll(t *testing.T, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := s.Append(payload(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// A write error (ENOSPC, EIO) used to be sticky: every later Append failed
// until a restart, with no loss reported. Now the oldest records are
// dropped and counted, and the spool goes on once the disk takes writes.
func TestWriteErrorDropsOldestAndGoesOn(t *testing.T) {
	var fail atomic.Bool
	var d drops
	var lb testutil.SyncBuffer
	s := open(t, t.TempDir(), &lb, func(o *Options) {
		o.OnDrop = d.on
		o.writeFile = func(f *os.File, b []byte) (int, error) {
			if fail.Load() {
				// A partial write, as a filling disk gives.
				n, _ := f.Write(b[:len(b)/2])
				return n, syscall.ENOSPC
			}
			return f.Write(b)
		}
	})
	defer s.Close()
	appendAll(t, s, 0, 200)
	waitSynced(t, s, 200)
	fail.Store(true)
	appendAll(t, s, 200, 50)
	testutil.WaitFor(t, 10*time.Second, "the failed writes to be given up", func() bool {
		n, _ := d.count()
		return n == 250
	}, lb.String)
	fail.Store(false)
	appendAll(t, s, 250, 30)
	waitSynced(t, s, 280)
	recs := readN(t, s, 30)
	checkRecords(t, recs, 250)
	st := s.Stats()
	n, reasons := d.count()
	if st.WriteErrors == 0 || st.Dropped != n || n != 250 {
		t.Errorf("stats %+v, reported dropped %d; want write errors counted and all 250 records before the recovery dropped", st, n)
	}
	if !strings.Contains(reasons[len(reasons)-1], "no space left") {
		t.Errorf("drop reasons %q do not name the error", reasons)
	}
}

// Appends beyond PendingBytes waiting for a stalled disk are refused, not
// queued without bound.
func TestPendingBytesBounded(t *testing.T) {
	release := make(chan struct{})
	var stalled atomic.Bool
	var lb testutil.SyncBuffer
	s := open(t, t.TempDir(), &lb, func(o *Options) {
		o.PendingBytes = 64 << 10
		o.writeFile = func(f *os.File, b []byte) (int, error) {
			if stalled.Load() {
				<-release
			}
			return f.Write(b)
		}
	})
	defer s.Close()
	stalled.Store(true)
	var refused int
	for i := 0; i < 1000; i++ {
		if _, err := s.Append(append(payload(i), make([]byte, 512)...)); errors.Is(err, ErrPendingFull) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	stalled.Store(false)
	close(release)
	if refused == 0 || st.Refused != uint64(refused) {
		t.Errorf("%d appends refused, stats %+v; want some refused and counted", refused, st)
	}
	if st.Bytes > 64<<10+8<<10 {
		t.Errorf("%d bytes held with the disk stalled, bound 64 KiB", st.Bytes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Next(ctx, 10, 1<<20); err != nil {
		t.Fatalf("nothing readable once the disk came back: %v", err)
	}
}

// On a real full filesystem (a 256 KiB tmpfs), the spool drops its oldest
// records and keeps taking new ones; on today's disk nothing else changes.
func TestFullTmpfsKeepsAppending(t *testing.T) {
	testutil.RequireRoot(t, "to mount a small tmpfs")
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	var d drops
	var lb testutil.SyncBuffer
	s := open(t, dir, &lb, func(o *Options) {
		o.MaxBytes = 64 << 20 // far above the filesystem: the disk fills first
		o.SegmentBytes = 16 << 10
		o.OnDrop = d.on
	})
	defer s.Close()
	rec := make([]byte, 1000)
	for i := 0; i < 2000; i++ {
		if _, err := s.Append(rec); err != nil {
			t.Fatalf("append %d on a full disk: %v", i, err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "every record written or dropped", func() bool {
		st := s.Stats()
		return st.SyncedUntil == st.NextOffset
	}, lb.String)
	st := s.Stats()
	n, reasons := d.count()
	t.Logf("stats %+v, dropped %d", st, n)
	if st.WriteErrors == 0 || n == 0 || st.Dropped != n || !strings.Contains(strings.Join(reasons, ";"), "no space left") {
		t.Errorf("stats %+v, reported %d dropped (%q): want write errors recovered by dropping the oldest", st, n, reasons)
	}
	if st.Pending+st.Dropped != 2000 {
		t.Errorf("%d pending + %d dropped, want all 2000 accounted for", st.Pending, st.Dropped)
	}
}
