//go:build linux && amd64

// Package files is the file part of the adversarial suite (tests/evasion):
// a session member tries to make the sensor record another file than the
// one it touched, or nothing useful, and each test asserts what the sensor
// reports. Root, real BPF: the sensor is started through its public API and
// the member is this test binary re-executed in a helper mode, put into the
// kernel's sessions map before it acts, the way tests/denyexec starts one.
// amd64 only, like the file and network object, whose syscall numbers are
// x86-64's (the helpers make raw unlink, rename and rmdir calls).
package files

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/kerneltest"
	"github.com/lineaged/lineaged/tests/testutil"
)

// helperEnv names the technique the re-executed test binary runs.
const helperEnv = "LINEAGED_EVASION_FILES_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[len(os.Args)-1]))
	}
	testutil.Main(m)
}

// guard only stops a hung test; each ends on the member's marker unlink.
const guard = 60 * time.Second

// markerName is unlinked by every helper last: its record tells the test
// that all the member's records before it have been read.
const markerName = "lineaged-evasion-marker"

// records collects the file records of every process as the sensor
// delivers them.
type records struct {
	mu    sync.Mutex
	byPID map[uint32][]*sensor.File
	// rings are the io_uring records of every process.
	rings map[uint32][]*sensor.IOURing
	// skipped sums the sensor.loss counts of skipped file-program runs
	// (where "skipped"): records lost before they existed, but counted.
	skipped uint64
}

// runSensor starts the sensor (sessions scope: only members are traced).
func runSensor(t *testing.T) (*kernel.Sensor, *records) {
	t.Helper()
	s, out := kerneltest.Run(t, kernel.Config{RepeatOpens: true}, 1<<16)
	r := &records{byPID: map[uint32][]*sensor.File{}, rings: map[uint32][]*sensor.IOURing{}}
	go func() {
		for ev := range out {
			r.mu.Lock()
			if ev.File != nil {
				r.byPID[ev.Proc.PID] = append(r.byPID[ev.Proc.PID], ev.File)
			}
			if ev.IOURing != nil {
				r.rings[ev.Proc.PID] = append(r.rings[ev.Proc.PID], ev.IOURing)
			}
			if l := ev.Loss; l != nil && l.Where == "skipped" && strings.HasPrefix(l.What, "file and network records") {
				r.skipped += l.Count
			}
			r.mu.Unlock()
		}
	}()
	return s, r
}

// until returns pid's file records up to its unlink of marker. When the
// marker's record does not come but skipped file-program runs were
// reported since base (the kernel skipped runs: see recordsOrSkipped), it
// returns every record of pid once the reports have had time to arrive.
func (r *records) until(t *testing.T, pid uint32, marker string, base uint64) []*sensor.File {
	t.Helper()
	deadline := time.Now().Add(guard)
	var skippedSince time.Time
	for time.Now().Before(deadline) {
		r.mu.Lock()
		got, skipped := r.byPID[pid], r.skipped
		r.mu.Unlock()
		for i, f := range got {
			if f.Op == sensor.FileUnlink && f.Path == marker {
				return got[:i]
			}
		}
		if skipped > base && skippedSince.IsZero() {
			skippedSince = time.Now()
		}
		if !skippedSince.IsZero() && time.Since(skippedSince) > 3*kernel.DefaultLossInterval {
			t.Logf("no record of pid %d's marker unlink, and %d skipped file-program runs reported: taking its %d records", pid, skipped-base, len(got))
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no record of pid %d's marker unlink within %s", pid, guard)
	return nil
}

// skippedNow is the skipped file-program runs reported so far.
func (r *records) skippedNow() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped
}

// skippedAtLeast waits up to a few loss intervals for the sensor.loss
// reports of skipped file-program runs to reach n, and returns the sum.
func (r *records) skippedAtLeast(n uint64) uint64 {
	deadline := time.Now().Add(3 * kernel.DefaultLossInterval)
	for {
		r.mu.Lock()
		got := r.skipped
		r.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// helper is a session member running one technique (helpers_test.go).
type helper struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr testutil.SyncBuffer
	pid            uint32
	// skipBase is the skipped file-program runs reported before it ran.
	skipBase uint64
}

// startMember starts technique mode as a session member of its own
// session, with dir as its working directory, and lets it begin.
func startMember(t *testing.T, s *kernel.Sensor, r *records, mode, dir string) *helper {
	t.Helper()
	h := &helper{cmd: exec.Command(os.Args[0], "-test.run=^$", dir), skipBase: r.skippedNow()}
	h.cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	h.cmd.Dir = dir
	h.cmd.Stdout, h.cmd.Stderr = &h.stdout, &h.stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.pid = uint32(h.cmd.Process.Pid)
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: h.pid, StartNs: 1}, Agent: sensor.AgentClaudeCode}
	if err := s.AddSessionMembers(map[uint32]sensor.SessionRef{h.pid: ref}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(h.stdin, "go\n")
	return h
}

// finish waits for the helper and returns its file records up to its
// marker and what it printed.
func (h *helper) finish(t *testing.T, r *records, dir string) ([]*sensor.File, []string) {
	t.Helper()
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\nstderr: %s", err, h.stderr.String())
	}
	files := r.until(t, h.pid, filepath.Join(dir, markerName), h.skipBase)
	return files, strings.Split(strings.TrimSpace(h.stdout.String()), "\n")
}

// member runs technique mode as a session member to its end.
func member(t *testing.T, s *kernel.Sensor, r *records, mode, dir string) ([]*sensor.File, []string) {
	t.Helper()
	return startMember(t, s, r, mode, dir).finish(t, r, dir)
}

func tempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ops(files []*sensor.File, op sensor.FileOp) []*sensor.File {
	var r []*sensor.File
	for _, f := range files {
		if f.Op == op {
			r = append(r, f)
		}
	}
	return r
}

// stdin is the helper's: "go" when it is a member, then what its
// technique waits for.
var stdin = bufio.NewReader(os.Stdin)

// waitGo blocks the helper until the test has made it a member.
func waitGo() { stdin.ReadString('\n') }

func describe(f *sensor.File) string {
	return fmt.Sprintf("{op %d path %q new %q raw %q new_raw %q as_given %v changed %v unreadable %v unresolved %v fd_changed %v result %d}",
		f.Op, f.Path, f.NewPath, f.RawPath, f.NewRawPath, f.PathAsGiven, f.NameChanged, f.NameUnreadable, f.PathUnresolved, f.FDChanged, f.Result)
}
