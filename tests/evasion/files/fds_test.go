//go:build linux && amd64

package files

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
)

func init() {
	helpers["fd-swap"] = func(dir string) error { return fdRace(dir, "swap") }
	helpers["fd-close"] = func(dir string) error { return fdRace(dir, "close") }
	helpers["fd-quiet"] = func(dir string) error { return fdRace(dir, "") }
	helpers["fd-handoff"] = fdHandoff
}

// handoffRounds is how many times fdHandoff passes a number between its
// threads.
const handoffRounds = 200

// fdHandoff: the everyday reuse of a descriptor number by two threads of
// one program, no race in it. Thread A, on one CPU, opens <dir>/a and
// closes it; thread B, on another, then at once opens <dir>/b (the lowest
// free number: A's), fchmods and futimens it (utimensat on the
// descriptor) and closes it. Nothing changes a descriptor during any of
// B's calls. Prints the rounds.
func fdHandoff(dir string) error {
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return err
		}
	}
	runtime.GOMAXPROCS(4)
	var turn atomic.Int32 // 0: A's, 1: B's; -1: stop
	errc := make(chan error, 2)
	thread := func(cpu int, mine int32, do func() error) {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		unix.SchedSetaffinity(0, &set)
		for r := 0; r < handoffRounds; r++ {
			// Spin, giving the CPU up to anything else that wants it
			// (the sensor's reader, in a slow guest): on an idle CPU
			// sched_yield returns at once and the other thread's turn
			// starts microseconds after this one ends.
			for turn.Load() != mine {
				unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
			if err := do(); err != nil {
				turn.Store(-1)
				errc <- err
				return
			}
			turn.Store(1 - mine)
			if mine == 1 && r%32 == 31 {
				time.Sleep(time.Millisecond) // a pace the ring buffer's reader keeps up with
			}
		}
		errc <- nil
	}
	go thread(0, 0, func() error {
		fd, err := unix.Open(a, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	})
	go thread(1, 1, func() error {
		fd, err := unix.Open(b, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Fchmod(fd, 0o640); err != nil {
			return err
		}
		if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, 0, 0, 0, 0); e != 0 {
			return fmt.Errorf("futimens: %w", e)
		}
		return nil
	})
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			return err
		}
	}
	fmt.Println(handoffRounds)
	return nil
}

// openRaw opens p (NUL-terminated) read-only with a bare openat.
func openRaw(p []byte) int {
	atFDCWD := unix.AT_FDCWD
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&p[0])), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return -1
	}
	return int(fd)
}

// fdRace: one thread opens <dir>/secret again and again, getting the same
// descriptor number n each time (the lowest free one), while another
// thread, with race "swap", dup2s a descriptor of <dir>/decoy onto n, or,
// with "close", closes n: the sensor reads an open's file by its number
// when the call ends, so the first can make it name the decoy and the
// second hide the file. With no race, the opens alone. Prints n.
func fdRace(dir, race string) error {
	runtime.GOMAXPROCS(4)
	secret, decoy := filepath.Join(dir, "secret"), filepath.Join(dir, "decoy")
	for _, p := range []string{secret, decoy} {
		if err := os.WriteFile(p, []byte(p), 0o600); err != nil {
			return err
		}
	}
	d, err := unix.Open(decoy, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	name := cstr(secret)
	n := openRaw(name)
	if n < 0 {
		return fmt.Errorf("open %s", secret)
	}
	unix.Close(n)
	pin := func(cpu int) {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		unix.SchedSetaffinity(0, &set)
	}
	var stop, started atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		if race == "" {
			return
		}
		pin(1)
		started.Store(true)
		for !stop.Load() {
			if race == "swap" {
				unix.Dup3(d, n, unix.O_CLOEXEC)
			} else {
				unix.Close(n)
			}
		}
	}()
	pin(0)
	for race != "" && !started.Load() {
		runtime.Gosched()
	}
	i := 0
	// Twice the name races' time: in a slow guest a few in a thousand
	// opens are hit.
	for start := time.Now(); i < raceCalls || time.Since(start) < 2*raceFor; i++ {
		unix.Close(n) // free n again (the decoy's copy, or the last open)
		if fd := openRaw(name); fd >= 0 && fd != n {
			unix.Close(fd)
		}
		if i%64 == 63 {
			time.Sleep(time.Millisecond) // a pace the ring buffer's reader keeps up with
		}
	}
	stop.Store(true)
	<-done
	fmt.Println(n)
	return nil
}

// raceOpens returns the records of the racing opens of <dir>/secret: read
// only, on the descriptor number n the helper printed (its setup's opens
// and the runtime's are others).
func raceOpens(t *testing.T, files []*sensor.File, printed []string) (opens []*sensor.File, n int32) {
	t.Helper()
	v, err := strconv.Atoi(printed[len(printed)-1])
	if err != nil {
		t.Fatalf("helper printed %q", printed)
	}
	for _, f := range ops(files, sensor.FileOpen) {
		if f.Flags&(unix.O_ACCMODE|unix.O_CREAT) == unix.O_RDONLY && (f.Result == int32(v) || f.Result < 0 && !f.PathUnresolved) {
			opens = append(opens, f)
		}
	}
	return opens, int32(v)
}

// A sibling thread dup2s another file onto the descriptor an open is
// about to return, or closes it, while the sensor has yet to read the
// open's file by that number at the call's end. Every record that names
// the decoy for an open of the secret says the descriptor changed during
// the call, as does every record of an open whose descriptor was closed
// before it was read, which names the file as the caller gave it; the
// same opens with no sibling are never flagged. A record naming any other
// file without the flag is a change the sensor did not see, accepted only
// where the kernel skipped runs (straysSkipped).
func TestRootDescriptorChangedDuringOpen(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("the racing thread needs a second CPU")
	}
	s, out := runSensor(t)

	dir := tempDir(t)
	secret, decoy := filepath.Join(dir, "secret"), filepath.Join(dir, "decoy")
	h := startMember(t, s, out, "fd-swap", dir)
	files, printed := h.finish(t, out, dir)
	opens, n := raceOpens(t, files, printed)
	swapped, flagged := 0, 0
	var strays []*sensor.File
	for _, f := range opens {
		if f.FDChanged {
			flagged++
		}
		switch {
		case f.Path == decoy:
			swapped++
			if !f.FDChanged {
				t.Errorf("an open of %s reported as the decoy without fd_changed: %s", secret, describe(f))
			}
		case f.Path != secret && !f.FDChanged:
			strays = append(strays, f)
		}
	}
	straysSkipped(t, out, h.skipBase, strays)
	t.Logf("dup2 race on descriptor %d: %d opens, %d named the decoy, %d flagged fd_changed; skipped program runs %v", n, len(opens), swapped, flagged, s.MissedRuns())
	if swapped == 0 {
		t.Errorf("none of %d opens was reported as the decoy: the race never hit", len(opens))
	}

	dir = tempDir(t)
	secret = filepath.Join(dir, "secret")
	h = startMember(t, s, out, "fd-close", dir)
	files, printed = h.finish(t, out, dir)
	opens, n = raceOpens(t, files, printed)
	hidden := 0
	strays = nil
	for _, f := range opens {
		if f.PathUnresolved {
			hidden++
			if !f.FDChanged || f.Path != secret {
				t.Errorf("an open whose descriptor was closed before it was read: %s, want %s flagged fd_changed", describe(f), secret)
			}
		} else if f.Path != secret && !f.FDChanged {
			strays = append(strays, f)
		}
	}
	straysSkipped(t, out, h.skipBase, strays)
	t.Logf("close race on descriptor %d: %d opens, %d closed before the sensor read them", n, len(opens), hidden)
	if hidden == 0 {
		t.Errorf("none of %d opens had its descriptor closed before the sensor read it: the race never hit", len(opens))
	}

	dir = tempDir(t)
	files, printed = member(t, s, out, "fd-quiet", dir)
	opens, _ = raceOpens(t, files, printed)
	if len(opens) < raceCalls/2 {
		t.Errorf("%d open records without a racer, want about %d", len(opens), raceCalls)
	}
	for _, f := range opens {
		if f.FDChanged || f.Path != filepath.Join(dir, "secret") {
			t.Fatalf("no racer: %s", describe(f))
		}
	}
}

// straysSkipped checks the opens of the secret whose records name another
// file without fd_changed: the sensor did not see the descriptor change.
// That happens only where the kernel skipped the run of a change's program
// (7.3 skips a run on a CPU where a preempted one is still running; the
// sensor reports each): the close went unseen, and the file the open's
// record was read from had been closed and its memory reused for another
// (in a run here, the sensor's own /proc/self/fdinfo read). Each such
// record must be covered by a skipped run reported during the member;
// anywhere else there are none.
func straysSkipped(t *testing.T, out *records, base uint64, strays []*sensor.File) {
	t.Helper()
	if len(strays) == 0 {
		return
	}
	skipped := out.skippedAtLeast(base+uint64(len(strays))) - base
	if skipped >= uint64(len(strays)) {
		t.Logf("%d opens named another file without fd_changed, covered by %d skipped program runs reported during the member: %s", len(strays), skipped, describe(strays[0]))
		return
	}
	for _, f := range strays {
		t.Errorf("an open names another file without fd_changed: %s", describe(f))
	}
	t.Errorf("%d such opens, %d skipped program runs reported during the member", len(strays), skipped)
}

// Two threads of a member hand a descriptor number back and forth, the
// way any multi-threaded program reuses the lowest free number: one
// closes it, the other's next open gets it at once, on another CPU. No
// descriptor changes during the second thread's open, fchmod or futimens,
// and none of their records says one did (the close ends microseconds
// before the open begins, closer than the clocks of two CPUs can order).
//
// Where the kernel skips program runs (7.3 skips a run on a CPU where a
// preempted one is still running, and the sensor reports each), a close
// whose exit run was skipped counts as in flight until its thread's next
// change, the next round's close: the round in between is flagged, by
// design. There a flagged round is accepted when the sensor reported
// skipped runs and the round after it is clear; a number left flagged for
// good (two rounds in a row) fails.
func TestRootDescriptorReusedByAnotherThreadNotFlagged(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("the two threads need two CPUs")
	}
	s, out := runSensor(t)
	dir := tempDir(t)
	h := startMember(t, s, out, "fd-handoff", dir)
	files, _ := h.finish(t, out, dir)
	b := filepath.Join(dir, "b")
	count := map[sensor.FileOp]int{}
	// Rounds in order: each begins with its read-only open of b.
	var flaggedRounds []int
	var flagged []*sensor.File
	round := -1 // the open creating b comes first
	for _, f := range files {
		if f.Path != b {
			continue
		}
		count[f.Op]++
		if f.Op == sensor.FileOpen && f.Flags&unix.O_CREAT == 0 {
			round++
		}
		if f.FDChanged {
			flagged = append(flagged, f)
			if len(flaggedRounds) == 0 || flaggedRounds[len(flaggedRounds)-1] != round {
				flaggedRounds = append(flaggedRounds, round)
			}
		}
	}
	t.Logf("records of %s: %d opens, %d fchmods, %d futimens; flagged rounds %v", b, count[sensor.FileOpen], count[sensor.FileChmod], count[sensor.FileUtimes], flaggedRounds)
	// Each round's open, fchmod and futimens, and the open creating b:
	// all there, or each missing one a run the kernel skipped (7.3).
	recordsOrSkipped(t, s, out, h.skipBase, count[sensor.FileOpen]+count[sensor.FileChmod]+count[sensor.FileUtimes], 3*handoffRounds+1)
	if count[sensor.FileChmod] == 0 || count[sensor.FileUtimes] == 0 {
		t.Fatalf("records of %s: %v, want fchmods and futimens", b, count)
	}
	if len(flagged) == 0 {
		return
	}
	// The sensor reports skipped runs once a loss interval: a skip in the
	// member's last second is reported after its marker's record.
	skipped := out.skippedAtLeast(h.skipBase+uint64(len(flaggedRounds))) - h.skipBase
	stuck := false
	for i := 1; i < len(flaggedRounds); i++ {
		if flaggedRounds[i] == flaggedRounds[i-1]+1 {
			stuck = true
		}
	}
	if skipped == 0 || stuck || uint64(len(flaggedRounds)) > skipped {
		for _, f := range flagged {
			t.Errorf("descriptor reused by another thread, nothing changed during the call: %s", describe(f))
		}
		t.Fatalf("%d rounds flagged (%v), %d skipped program runs reported during the member; skipped runs since the sensor's start %v",
			len(flaggedRounds), flaggedRounds, skipped, s.MissedRuns())
	}
	t.Logf("%d rounds flagged, each after a skipped run (%d reported) and cleared by the next round", len(flaggedRounds), skipped)
}
