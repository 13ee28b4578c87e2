//go:build linux

package tamper

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// TestRootProcMemWriteOfTheSensor: session members open the sensor's
// /proc/<pid>/mem, and one of its threads' mem, for reading and writing
// (what a patcher of its code does, without ptrace). Each is a
// sensor.tamper naming the member and its session; where the BPF LSM runs
// the open is refused and reported as the refused ptrace access. A read
// only open of the same file is no tamper event.
func TestRootProcMemWriteOfTheSensor(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	ls := startKernel(t, kernel.Config{PinPath: pinPath(t)})
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: uint32(os.Getpid()), StartNs: 10_000_000}, Agent: sensor.AgentClaudeCode}
	hooks, _ := ls.s.TamperHooks()
	refusing := hooks == kernel.HooksLSM
	me := strconv.Itoa(os.Getpid())

	for _, path := range []string{"/proc/" + me + "/mem", fmt.Sprintf("/proc/%s/task/%d/mem", me, threadOf(t))} {
		sh := exec.Command("/bin/sh", "-c", `read go; exec 3<>"$0"; /bin/true after-mem`, path)
		pid, _ := runMemberAllowFail(t, ls.s, ref, sh)
		if refusing {
			ev := tamperBy(t, ls, sensor.TamperPtrace, pid)
			if ev.Session != ref || !ev.Tamper.Refused {
				t.Errorf("%s: %+v %+v", path, ev.Header, ev.Tamper)
			}
			continue
		}
		ev := tamperBy(t, ls, sensor.TamperProcMem, pid)
		if ev.Session != ref || ev.Tamper.Path != path || ev.Tamper.Target.PID != uint32(os.Getpid()) || ev.Tamper.Code != 0 {
			t.Errorf("%s: %+v %+v", path, ev.Header, ev.Tamper)
		}
	}

	if refusing {
		// The BPF LSM refuses every ptrace-mode access to the sensor,
		// reading its memory too (TestRootTouchingTheSensor); what is
		// left to check is the report-only path's silence on reads.
		return
	}
	rd := exec.Command("/bin/sh", "-c", `read go; exec 3<"$0"; /bin/true after-read`, "/proc/"+me+"/mem")
	pid := runMember(t, ls.s, ref, rd)
	testutil.WaitFor(t, 10*time.Second, "the reader's exit", func() bool {
		for _, ev := range ls.events() {
			if ev.Kind == sensor.KindExit && ev.Proc.PID == uint32(pid) {
				return true
			}
		}
		return false
	}, nil)
	for _, ev := range ls.events() {
		if ev.Kind == sensor.KindTamper && ev.Proc.PID == uint32(pid) {
			t.Errorf("read-only open reported: %+v", ev.Tamper)
		}
	}
}

// threadOf is a thread of this process other than its leader.
func threadOf(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil && tid != os.Getpid() {
			return tid
		}
	}
	t.Skip("no second thread")
	return 0
}
