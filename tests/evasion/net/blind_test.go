//go:build linux && amd64

package net

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// parked is more threads than the per-thread table of syscall arguments
// the file program keeps for opens (fio_args, 4096 entries).
const parked = 4200

// TestBlindingConnects: one session parks more threads in open() of a FIFO
// with no writer than the file program's per-thread argument table holds.
// Before connect kept no enter-state, every later connect of every session
// found that table full and was dropped (counted only as a ring-buffer
// loss of kind connect); before an open whose entry finds the table full
// was decoded at its exit, so were its opens. A second session's connects
// and opens are all reported, and the sensor counts the opens that found
// the table full (Stats.OpenArgsFull).
func TestBlindingConnects(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	attacker := sensor.SessionRef{Root: sensor.ProcKey{PID: 1_000_001, StartNs: 20_000_000}, Agent: sensor.AgentClaudeCode}
	roomForThreads(t, parked+1000)
	cmd := exec.Command(os.Args[0], fifo, strconv.Itoa(parked))
	cmd.Env = append(os.Environ(), helperEnv+"=park")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var release sync.Once
	unpark := func() {
		release.Do(func() {
			// Opening the write end lets every reader's open return
			// (non-blocking: a member that never parked has no reader
			// there); a member still waiting for "go" is killed.
			stdin.Close()
			if f, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
				f.Close()
			} else {
				cmd.Process.Kill()
			}
			cmd.Wait()
		})
	}
	t.Cleanup(unpark)
	if err := e.s.AddSessionMembers(map[uint32]sensor.SessionRef{uint32(cmd.Process.Pid): attacker}); err != nil {
		t.Fatal(err)
	}
	roomForOpens(t, cmd.Process.Pid, parked+fdSlack)
	io.WriteString(stdin, "go\n")
	stdin.Close()
	deadline := time.Now().Add(guard)
	for n := 0; n < parked; n = inOpen(cmd.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d threads parked in open after %s (%s)\n%s", n, parked, guard, threadStates(cmd.Process.Pid), stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	dst := listenInet(t, unix.SOCK_STREAM)
	_, evs := e.runMemberOf(t, e.ref, "connect", strconv.Itoa(int(dst.Port())), "3")
	var got int
	for _, c := range netRecords(evs) {
		if c.Op == sensor.NetConnect && c.Dst == dst && c.Result == 0 {
			got++
		}
	}
	if got != 3 {
		t.Errorf("%d of the second session's 3 connects reported while %d threads of the first are parked in open", got, parked)
	}

	// Three files: repeated read-only opens of one file are folded.
	file := filepath.Join(dir, "file")
	for i := range 3 {
		if err := os.WriteFile(file+strconv.Itoa(i), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := e.s.Stats().OpenArgsFull
	_, evs = e.runMemberOf(t, e.ref, "open", file, "3")
	got = 0
	for _, ev := range evs {
		if ev.Kind == sensor.KindOpen && strings.HasPrefix(ev.File.Path, file) && ev.File.Result >= 0 {
			got++
		}
	}
	if got != 3 {
		t.Errorf("%d of the second session's 3 opens reported while %d threads of the first are parked in open", got, parked)
	}
	if after := e.s.Stats().OpenArgsFull; after < before+3 {
		t.Errorf("opens that found the table full: %d before the second session's, %d after: want at least 3 more", before, after)
	}
	unpark()
}

// openFile runs in a member: opens args[0]+"0", args[0]+"1", ... for
// reading, args[1] files.
func openFile(args []string) (result, error) {
	n, _ := strconv.Atoi(args[1])
	for i := range n {
		fd, err := unix.Open(args[0]+strconv.Itoa(i), unix.O_RDONLY, 0)
		if err != nil {
			return result{}, err
		}
		unix.Close(fd)
	}
	return result{}, nil
}

// inOpen counts pid's threads inside openat(2) (/proc/<pid>/task/*/syscall).
func inOpen(pid int) int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if err == nil && strings.HasPrefix(string(b), strconv.Itoa(unix.SYS_OPENAT)+" ") {
			n++
		}
	}
	return n
}

// threadStates says where pid's threads are, for a failure message: how
// many are in each system call (by number; "running" when in none), with
// the system's thread limit and free memory.
func threadStates(pid int) string {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	by := map[string]int{}
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		f := strings.Fields(string(b))
		if len(f) == 0 {
			f = []string{"?"}
		}
		by[f[0]]++
	}
	max, _ := os.ReadFile("/proc/sys/kernel/threads-max")
	var avail string
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemAvailable:") {
				avail = strings.Join(strings.Fields(l)[1:], " ")
			}
		}
	}
	return fmt.Sprintf("%d threads, by syscall %v; threads-max %s, MemAvailable %s", len(tasks), by, strings.TrimSpace(string(max)), avail)
}

// park runs in the attacker's member: args[1] threads block opening the
// FIFO args[0] for reading until a writer opens it. Each blocked open holds
// a descriptor number (taken before the open waits), so the descriptor
// limit must exceed the thread count: the kernel's default hard limit
// (4096, which a kernel matrix guest's processes inherit from its /init)
// let only ~4089 park and the rest fail with EMFILE. The test raises the
// member's limit (roomForOpens); a failed open is written to stderr, which
// the test's failure shows.
func park(args []string) (result, error) {
	n, _ := strconv.Atoi(args[1])
	debug.SetMaxThreads(n + 1000)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return result{}, err
	}
	if want := uint64(n + fdSlack); lim.Cur < want {
		return result{}, fmt.Errorf("RLIMIT_NOFILE %d/%d: below %d for %d parked opens", lim.Cur, lim.Max, want, n)
	}
	var wg sync.WaitGroup
	var failed sync.Once
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fd, err := unix.Open(args[0], unix.O_RDONLY, 0)
			if err != nil {
				failed.Do(func() { fmt.Fprintln(os.Stderr, "park: open:", err) })
				return
			}
			unix.Close(fd)
		}()
	}
	wg.Wait()
	return result{}, nil
}

// connectTCP runs in a member: args[1] connects to 127.0.0.1:args[0].
func connectTCP(args []string) (result, error) {
	port, _ := strconv.Atoi(args[0])
	n, _ := strconv.Atoi(args[1])
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return result{}, err
		}
		if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: loopback, Port: port}); err != nil {
			return result{}, err
		}
		unix.Close(fd)
	}
	return result{}, nil
}

// fdSlack is the descriptors the parking member needs besides its parked
// opens (standard streams, the runtime's).
const fdSlack = 256

// roomForOpens raises pid's RLIMIT_NOFILE (soft and hard) to n when below:
// the member does not run with CAP_SYS_RESOURCE, the test does.
func roomForOpens(t *testing.T, pid, n int) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatalf("read the member's RLIMIT_NOFILE: %v", err)
	}
	if old.Cur >= uint64(n) {
		return
	}
	lim := unix.Rlimit{Cur: uint64(n), Max: max(old.Max, uint64(n))}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatalf("raise the member's RLIMIT_NOFILE from %d/%d to %d (needs CAP_SYS_RESOURCE): %v", old.Cur, old.Max, n, err)
	}
	t.Logf("member's RLIMIT_NOFILE raised from %d/%d to %d/%d", old.Cur, old.Max, lim.Cur, lim.Max)
}

// roomForThreads lets this test start n more threads: a small guest of the
// kernel matrix sizes kernel.threads-max from its memory, below what the
// blinding attempt parks. The old limit is put back at the end.
func roomForThreads(t *testing.T, n int) {
	t.Helper()
	const knob = "/proc/sys/kernel/threads-max"
	b, err := os.ReadFile(knob)
	if err != nil {
		t.Fatal(err)
	}
	old, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", knob, err)
	}
	if old >= 2*n {
		return
	}
	if err := os.WriteFile(knob, []byte(strconv.Itoa(2*n)), 0o644); err != nil {
		t.Fatalf("raise %s from %d: %v", knob, old, err)
	}
	t.Logf("%s raised from %d to %d", knob, old, 2*n)
	t.Cleanup(func() { _ = os.WriteFile(knob, []byte(strconv.Itoa(old)), 0o644) })
}
