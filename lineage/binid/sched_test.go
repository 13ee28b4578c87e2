package binid

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// runningAs starts path as uid (waiting for its exec to complete).
func runningAs(t *testing.T, uid uint32, path string, args ...string) *procfs.Proc {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for range 2000 {
		p, err := procfs.Read("/proc", uint32(cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Argv) > 0 && p.Exe == path {
			return p
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("child never completed its exec")
	return nil
}

// Many distinct sparse 1 GiB ELF files exec'd by an unprivileged user (no
// disk cost, most of a second each to hash) must not delay the verdict of
// a root-owned binary: the user's files get a lower size limit, and when
// they fit it, root's files still go first.
func TestUserFilesDoNotStarveRootHashes(t *testing.T) {
	const uid = 4321
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	var procs []*procfs.Proc
	for i := range 24 {
		p := filepath.Join(dir, "u"+string(rune('a'+i)))
		copyFile(t, "/usr/bin/sleep", p, []byte{byte(i)})
		if err := os.Truncate(p, 1<<30); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, uid, uid)
		os.Chmod(p, 0o755)
		procs = append(procs, runningAs(t, uid, p, "30"))
	}
	rootBin := filepath.Join(dir, "rootbin")
	copyFile(t, "/usr/bin/sleep", rootBin, []byte("root"))
	_, rp := running(t, rootBin, "30")

	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"user size limit", Config{}},
		{"root first", Config{MaxBytesUser: 1 << 30}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := newInspector(t, c.cfg, nil, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			g0 := runtime.NumGoroutine()
			var wg sync.WaitGroup
			for _, p := range procs {
				wg.Add(1)
				go func() { defer wg.Done(); in.Inspect(ctx, request(p)) }()
			}
			time.Sleep(200 * time.Millisecond) // the user's requests are queued first
			start := time.Now()
			b := in.Inspect(context.Background(), request(rp))
			took := time.Since(start)
			t.Logf("root-owned binary's verdict after %v behind %d user files", took, len(procs))
			if b.Verdict != event.VerdictUnsigned || b.SHA256 == "" {
				t.Errorf("root binary = %+v", b)
			}
			if took > 3*time.Second {
				t.Errorf("a root-owned binary waited %v behind a user's files", took)
			}
			cancel()
			wg.Wait()
			if g := runtime.NumGoroutine(); g > g0+2 {
				t.Errorf("goroutines %d after the requests ended, %d before", g, g0)
			}
			if in.sched.free != in.cfg.Workers || in.sched.queued != 0 {
				t.Errorf("slots free %d of %d, %d queued", in.sched.free, in.cfg.Workers, in.sched.queued)
			}
		})
	}
}

// The queue is bounded per user and in total; a waiter whose context ends
// leaves it.
func TestHashQueueBounds(t *testing.T) {
	s := newSched(2, 4, 2)
	if err := s.acquire(context.Background(), true, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.acquire(context.Background(), false, 7); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 8)
	for range 2 {
		go func() { errs <- s.acquire(ctx, false, 7) }()
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.acquire(ctx, false, 7); err != errQueueFull {
		t.Errorf("third waiter of one user: %v", err)
	}
	for range 2 {
		go func() { errs <- s.acquire(ctx, false, 8) }()
	}
	time.Sleep(50 * time.Millisecond)
	// Full: a root-owned file still gets in, ahead of the users.
	hi := make(chan error, 1)
	go func() { hi <- s.acquire(context.Background(), true, 0) }()
	if err := <-errs; err != errQueueFull {
		t.Errorf("evicted waiter: %v", err)
	}
	s.release(true)
	if err := <-hi; err != nil {
		t.Errorf("high waiter: %v", err)
	}
	s.release(true)
	cancel()
	for range 3 {
		if err := <-errs; err != context.Canceled {
			t.Errorf("cancelled waiter: %v", err)
		}
	}
	s.release(false)
	if s.free != 2 || s.lowBusy != 0 || s.queued != 0 || len(s.low) != 0 || len(s.turn) != 0 {
		t.Errorf("after: %+v", s)
	}
}
