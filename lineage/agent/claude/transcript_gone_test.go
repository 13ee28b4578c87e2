package claude

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// The agent exits before its transcript is first read (a headless session
// whose last tool call starts milliseconds before the agent ends): its
// /proc/<pid>/root is gone. With the host's namespace as FallbackRoot the
// record of that call is still read; without it, every poll fails, as it
// did for every such call before.
func TestTranscriptReadAfterTheAgentExited(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.jsonl")
	if err := os.WriteFile(p, []byte(toolLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join("/proc", strconv.Itoa(gone.Process.Pid), "root")
	if _, err := os.Stat(root); err == nil {
		t.Skipf("pid %d is in use again", gone.Process.Pid)
	}

	without := NewTranscript(p, 0)
	defer without.Close()
	without.SetGuard(TranscriptGuard{Root: root})
	if err := without.Poll(context.Background()); !errors.Is(err, errRootGone) {
		t.Fatalf("poll through an exited agent's root: %v, want it gone", err)
	}

	with := NewTranscript(p, 0)
	defer with.Close()
	with.SetGuard(TranscriptGuard{Root: root, FallbackRoot: "/"})
	if err := with.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(with.Calls()) != 1 {
		t.Fatalf("the call was not read once the agent had exited: %+v", with.Stats())
	}
}

// sameMountNS takes the sensor's own namespace for the host's where pid 1's
// cannot be read, as lineage.HostMountNS does, and answers no when the
// sensor's own cannot be read.
func TestSameMountNS(t *testing.T) {
	ours, _ := os.Readlink("/proc/self/ns/mnt")
	host, err := os.Readlink("/proc/1/ns/mnt")
	if want := err != nil || host == ours; sameMountNS("/proc") != want {
		t.Errorf("sameMountNS = %v, want %v (ours %q, pid 1's %q, %v)", !want, want, ours, host, err)
	}
	if sameMountNS(t.TempDir()) {
		t.Error("no /proc to read: want false")
	}
}
