//go:build linux && amd64

package files

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
)

func init() {
	helpers["open-some"] = openSome
}

// quietOpens is how many opens the quiet session makes: their records
// (about 150 bytes each) fit between half the ring and the shed level.
const quietOpens = 500

// openSome opens <dir>/present quietOpens times and prints how many.
func openSome(dir string) error {
	p := filepath.Join(dir, "present")
	for range quietOpens {
		fd, err := unix.Open(p, unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	fmt.Println(quietOpens)
	return nil
}

// TestRootSessionFloodSparesOtherSessionsFiles: one session floods failed
// opens while nothing reads the sensor's output, so the ring fills; a
// second session opens a file 500 times meanwhile. Every one of the
// second session's opens must come through, and the flood's records that
// made way must be reported as its session's, over its budget. Before the
// session budget, above three quarters of the ring every session's file
// records were shed alike: the quiet session lost its opens to the
// flood.
func TestRootSessionFloodSparesOtherSessionsFiles(t *testing.T) {
	s, out := floodSensor(t)

	dir, quietDir := tempDir(t), tempDir(t)
	present := filepath.Join(quietDir, "present")
	if err := os.WriteFile(present, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	none := &records{byPID: map[uint32][]*sensor.File{}}
	missedBefore := fileioMisses(s)
	flooder := startMember(t, s, none, "flood-opens", dir)
	time.Sleep(500 * time.Millisecond) // the ring is full by now
	quiet := startMember(t, s, none, "open-some", quietDir)
	quiet.stdin.Close()
	if err := quiet.cmd.Wait(); err != nil {
		t.Fatalf("quiet member: %v\nstderr: %s", err, quiet.stderr.String())
	}
	if n, err := strconv.Atoi(strings.TrimSpace(quiet.stdout.String())); err != nil || n != quietOpens {
		t.Fatalf("the quiet member's count %q: %v", quiet.stdout.String(), err)
	}
	flooder.stdin.Close()
	if err := flooder.cmd.Wait(); err != nil {
		t.Fatalf("flooder: %v\nstderr: %s", err, flooder.stderr.String())
	}

	// Now read: the quiet member's records up to its exit, and the loss
	// reports up to one that names the flooder's session.
	var opens int
	var overBudget, otherBudget, shedOpens, ringOpens uint64
	quietExited := false
	deadline := time.After(guard)
	for !quietExited || overBudget == 0 {
		var ev sensor.Event
		select {
		case ev = <-out:
		case <-deadline:
			t.Fatalf("after %s: quiet member exited %v, %d of its %d opens; flooder's session over budget %d; counters %+v",
				guard, quietExited, opens, quietOpens, overBudget, s.Stats())
		}
		if l := ev.Loss; l != nil {
			switch {
			case l.Where == "session-budget" && ev.Session.Root.PID == flooder.pid:
				overBudget += l.Count
			case l.Where == "session-budget":
				otherBudget += l.Count
			case l.Where == "shed" && l.Of == sensor.KindOpen:
				shedOpens += l.Count
			case l.Where == "ringbuf" && l.Of == sensor.KindOpen:
				ringOpens += l.Count
			}
			continue
		}
		if ev.Proc.PID != quiet.pid {
			continue
		}
		switch {
		case ev.File != nil && ev.File.Path == present:
			opens++
		case ev.Exit != nil:
			quietExited = true
		}
	}
	// Where tracepoint callbacks can be preempted (7.3), the kernel skips
	// a run of a program already running on that CPU (the flooder's,
	// preempted): an open whose enter or exit run was skipped has no
	// record, and the sensor reports the skipped runs. That loss is not
	// the budget's.
	skipped := fileioMisses(s) - missedBefore
	t.Logf("quiet session: %d of %d opens; flooder's session over budget %d; other budget losses %d; shed opens %d; ring-full opens %d; skipped file program runs %d",
		opens, quietOpens, overBudget, otherBudget, shedOpens, ringOpens, skipped)
	if short := uint64(quietOpens - opens); opens > quietOpens || short > skipped {
		t.Errorf("the quiet session's opens: %d records of %d (%d skipped runs of the file programs)", opens, quietOpens, skipped)
	}
	if otherBudget != 0 {
		t.Errorf("%d records of sessions other than the flooder's dropped over budget", otherBudget)
	}
	if st := s.Stats(); st.OverBudget < overBudget {
		t.Errorf("Stats().OverBudget %d, reported %d", st.OverBudget, overBudget)
	}
}

// fileioMisses is the runs of the file programs' syscall tracepoints the
// kernel skipped so far.
func fileioMisses(s *kernel.Sensor) uint64 {
	m := s.MissedRuns()
	return m["fileio_sys_enter"] + m["fileio_sys_exit"]
}
