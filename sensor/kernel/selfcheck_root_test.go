//go:build linux

package kernel

import (
	"os"
	"slices"
	"testing"

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
