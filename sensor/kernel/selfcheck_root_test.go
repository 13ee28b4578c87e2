//go:build linux

package kernel

import (
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// TestRootAttachedPrograms: every program the sensor loaded runs behind a
// link in the kernel's list; once a link is gone, the self check names its
// program.
func TestRootAttachedPrograms(t *testing.T) {
	h := startSensor(t, Config{})
	want, have, err := h.s.AttachedPrograms()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(want, have) {
		t.Fatalf("want %v, have %v", want, have)
	}
	for _, name := range []string{processProgHandleExec, processProgHandleFork, processProgHandleExit} {
		if !slices.Contains(want, name) {
			t.Errorf("%s missing from %v", name, want)
		}
	}
	t.Logf("attached: %v", want)

	// The kernel refuses BPF_LINK_DETACH on these links (raw tracepoint
	// links do not implement it), so losing one means its last reference
	// was closed: stage that for handle_fork.
	i := slices.Index(h.s.linkNames, processProgHandleFork)
	if i < 0 {
		t.Fatal("no link runs handle_fork")
	}
	if err := h.s.links[i].Close(); err != nil {
		t.Fatal(err)
	}
	// links and linkNames stay side by side, as integrity.go keeps them.
	h.s.links = slices.Delete(slices.Clone(h.s.links), i, i+1)
	h.s.linkNames = slices.Delete(slices.Clone(h.s.linkNames), i, i+1)
	want, have, err = h.s.AttachedPrograms()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(want, processProgHandleFork) || slices.Contains(have, processProgHandleFork) || len(have) != len(want)-1 {
		t.Errorf("after closing handle_fork's link: want %v, have %v", want, have)
	}
}

// TestRootInSession: the session-map lookup posture's no_agent_listener
// uses sees exactly the members the kernel holds.
func TestRootInSession(t *testing.T) {
	h := startSensor(t, Config{})
	self := os.Getpid()
	if h.s.InSession(int32(self)) {
		t.Fatal("the test process is in a session before being added")
	}
	root, err := procfs.Read("/proc", uint32(self))
	if err != nil {
		t.Fatal(err)
	}
	ref := sensor.SessionRef{Root: root.Key, Agent: sensor.AgentClaudeCode}
	if err := h.s.AddSessionMembers(map[uint32]sensor.SessionRef{uint32(self): ref}); err != nil {
		t.Fatal(err)
	}
	if !h.s.InSession(int32(self)) {
		t.Error("member not found in the session map")
	}
	if h.s.InSession(0) || h.s.InSession(-1) {
		t.Error("pid 0 or -1 reported in a session")
	}
}

// heartbeatRounds runs the self-check's attachment check every 20ms for d
// and returns each round's findings.
func heartbeatRounds(h *harness, d time.Duration) [][]string {
	var st integrityState
	var rounds [][]string
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		gone, known := h.s.detached(&st)
		if !known {
			h.t.Fatal("the kernel's link list is unreadable")
		}
		rounds = append(rounds, gone)
	}
	return rounds
}

// TestRootSlowThreadExitIsNotDetach: on a loaded host the thread the
// self-check ends to move the heartbeat takes its time to exit. Until it
// has, a heartbeat that has not moved says nothing: no round may report
// the exit program as not firing while every program runs.
func TestRootSlowThreadExitIsNotDetach(t *testing.T) {
	h := startSensor(t, Config{SelfCheckInterval: -1})
	// The thread exits 150ms after the check asked for it, as one that
	// waits for a CPU does.
	h.s.endThreadFunc = func() int {
		tid := make(chan int, 1)
		go func() {
			runtime.LockOSThread()
			tid <- unix.Gettid()
			time.Sleep(150 * time.Millisecond)
		}()
		return <-tid
	}
	for i, gone := range heartbeatRounds(h, 2*time.Second) {
		if len(gone) > 0 {
			t.Fatalf("round %d: %v reported not firing while every program is attached", i, gone)
		}
	}
}

// TestRootThreadEndingAfterTheBeatIsNotDetach: the thread the self-check
// ended exits just after the check read the heartbeat and before it looks
// for the thread (seen on a loaded 6.1 guest): gone from the task list, it
// was counted by the exit program after that read. No round may report
// the exit program as not firing.
func TestRootThreadEndingAfterTheBeatIsNotDetach(t *testing.T) {
	h := startSensor(t, Config{SelfCheckInterval: -1})
	var release chan struct{}
	var tid int
	h.s.endThreadFunc = func() int {
		release = make(chan struct{})
		ch := make(chan int, 1)
		r := release
		go func() {
			runtime.LockOSThread()
			ch <- unix.Gettid()
			<-r
		}()
		tid = <-ch
		if tid == os.Getpid() {
			// The main thread never ends (the check asks again).
			close(release)
			release = nil
		}
		return tid
	}
	// The thread ends between the beat's read and the look for it.
	h.s.afterBeatFunc = func() {
		if release == nil {
			return
		}
		close(release)
		release = nil
		for deadline := time.Now().Add(10 * time.Second); taskAlive(tid); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("thread %d did not end", tid)
			}
		}
	}
	for i, gone := range heartbeatRounds(h, 2*time.Second) {
		if len(gone) > 0 {
			t.Fatalf("round %d: %v reported not firing while every program is attached", i, gone)
		}
	}
}

// TestRootExitProgramNotFiringFound: the fork, exec and exit programs stop
// running while the sensor still counts them attached (their links closed,
// unknown to the link walk): the heartbeat stands still even after the
// check ended a thread of its own, and the check names the exit program.
func TestRootExitProgramNotFiringFound(t *testing.T) {
	h := startSensor(t, Config{SelfCheckInterval: -1})
	for _, name := range []string{processProgHandleExec, processProgHandleFork, processProgHandleExit} {
		i := slices.Index(h.s.linkNames, name)
		if i < 0 {
			t.Fatalf("no link runs %s", name)
		}
		if err := h.s.links[i].Close(); err != nil {
			t.Fatal(err)
		}
		h.s.links = slices.Delete(slices.Clone(h.s.links), i, i+1)
		h.s.linkNames = slices.Delete(slices.Clone(h.s.linkNames), i, i+1)
	}
	rounds := heartbeatRounds(h, 2*time.Second)
	for _, gone := range rounds {
		if slices.Contains(gone, processProgHandleExit) {
			return
		}
	}
	t.Fatalf("the exit program never reported not firing in %d rounds: %v", len(rounds), rounds)
}
