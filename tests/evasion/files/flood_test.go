//go:build linux && amd64

package files

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/kerneltest"
)

func init() {
	helpers["flood-opens"] = floodOpens
	helpers["exec-true"] = execTrue
}

// floodFor is how long the flooding member opens a missing file.
const floodFor = 4 * time.Second

// floodOpens opens a file that does not exist, as fast as it can, for
// floodFor, and prints how many times.
func floodOpens(dir string) error {
	p := filepath.Join(dir, "missing")
	n := 0
	for end := time.Now().Add(floodFor); time.Now().Before(end); {
		for range 1000 {
			if fd, err := unix.Open(p, unix.O_RDONLY, 0); err == nil {
				unix.Close(fd)
				return fmt.Errorf("%s exists", p)
			}
		}
		n += 1000
	}
	fmt.Println(n)
	return nil
}

// execTruePrograms is how many /bin/true the exec member runs.
const execTruePrograms = 100

// execTrue runs /bin/true execTruePrograms times, one after another.
func execTrue(string) error {
	for range execTruePrograms {
		if err := exec.Command("/bin/true").Run(); err != nil {
			return err
		}
	}
	fmt.Println(execTruePrograms)
	return nil
}

// TestRootFileFloodKeepsProcessRecords: one session floods failed opens
// while nothing reads the sensor's output, so its ring fills; a second
// session runs 100 programs meanwhile. Every exec, fork and exit record of
// the second session must come through, and the file records that made
// way for them must be reported as shed (above the shed level) or as the
// flooding session's over its budget (above half the ring). Before ring
// priority the reader's full queue dropped records of every kind alike.
func TestRootFileFloodKeepsProcessRecords(t *testing.T) {
	s, out := floodSensor(t)

	dir := tempDir(t)
	none := &records{byPID: map[uint32][]*sensor.File{}}
	flooder := startMember(t, s, none, "flood-opens", dir)
	time.Sleep(300 * time.Millisecond)
	runner := startMember(t, s, none, "exec-true", dir)
	for _, h := range []*helper{runner, flooder} {
		h.stdin.Close()
		if err := h.cmd.Wait(); err != nil {
			t.Fatalf("member: %v\nstderr: %s", err, h.stderr.String())
		}
	}
	opens, err := strconv.Atoi(strings.TrimSpace(flooder.stdout.String()))
	if err != nil {
		t.Fatalf("the flooder's count %q: %v", flooder.stdout.String(), err)
	}

	// Now read: the runner's records up to its own exit, and the loss
	// reports up to one that names shed open records.
	var execs, forks, exits, floodOpens int
	var shed, overBudget, lostProcess, queueDrops uint64
	runnerExited := false
	deadline := time.After(guard)
	for !runnerExited || shed+overBudget == 0 {
		var ev sensor.Event
		select {
		case ev = <-out:
		case <-deadline:
			t.Fatalf("after %s: runner exited %v, shed %d, over budget %d; %d execs, %d forks, %d exits of the runner's session; counters %+v",
				guard, runnerExited, shed, overBudget, execs, forks, exits, s.Stats())
		}
		if l := ev.Loss; l != nil {
			switch {
			case l.Where == "shed" && l.Of == sensor.KindOpen:
				shed += l.Count
			case l.Where == "session-budget" && ev.Session.Root.PID == flooder.pid:
				overBudget += l.Count
			case l.Where == "ringbuf" && (l.Of == sensor.KindExec || l.Of == sensor.KindFork || l.Of == sensor.KindExit):
				lostProcess += l.Count
			case l.Where == "queue":
				queueDrops += l.Count
			}
			continue
		}
		if ev.Proc.PID == flooder.pid && ev.File != nil {
			floodOpens++
		}
		if ev.Session.Root.PID != runner.pid {
			continue
		}
		switch {
		case ev.Exec != nil:
			// The runner's own exec can land in its session too
			// (made a member while its exec was finishing): only
			// its programs count.
			if ev.Exec.Filename == "/bin/true" {
				execs++
			}
		case ev.Fork != nil:
			forks++
		case ev.Exit != nil:
			if ev.Proc.PID == runner.pid {
				runnerExited = true
			} else {
				exits++
			}
		}
	}
	t.Logf("flooder: %d failed opens, %d reported, %d shed, %d over its budget, %d dropped at the queue; runner: %d execs, %d exits; process records lost in the ring %d",
		opens, floodOpens, shed, overBudget, queueDrops, execs, exits, lostProcess)
	if execs != execTruePrograms || exits < execTruePrograms {
		t.Errorf("the runner's session: %d exec and %d exit records of its %d programs (forks %d)", execs, exits, execTruePrograms, forks)
	}
	if lostProcess != 0 {
		t.Errorf("%d process records lost in the ring", lostProcess)
	}
	if st := s.Stats(); st.Shed < shed || st.OverBudget < overBudget {
		t.Errorf("Stats() shed %d and over budget %d, reported %d and %d", st.Shed, st.OverBudget, shed, overBudget)
	}
	if shed+overBudget == 0 {
		t.Error("no shed or over-budget open records reported")
	}
}

// floodSensor starts a sensor with a 2 MiB ring and a 64-event queue whose
// output channel the test reads only once its members are done, so the
// ring fills while they run; it is stopped at the test's end.
func floodSensor(t *testing.T) (*kernel.Sensor, chan sensor.Event) {
	t.Helper()
	return kerneltest.Run(t, kernel.Config{RepeatOpens: true, RingBufferSize: 2 << 20, QueueSize: 64}, 0)
}
