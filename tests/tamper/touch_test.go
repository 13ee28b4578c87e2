//go:build linux

package tamper

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// runHelperPtrace attaches to the pid in LINEAGED_TAMPER_TARGET with
// PTRACE_SEIZE and detaches, once a line arrives on stdin.
func runHelperPtrace() {
	io.ReadAll(io.LimitReader(os.Stdin, 3))
	pid, _ := strconv.Atoi(os.Getenv("LINEAGED_TAMPER_TARGET"))
	if err := unix.PtraceSeize(pid); err != nil {
		fmt.Fprintln(os.Stderr, "ptrace:", err)
		os.Exit(3)
	}
	unix.PtraceDetach(pid)
	os.Exit(0)
}

// member starts cmd stopped on stdin, puts it into the session ref in the
// running sensor and lets it run to its end.
func runMember(t *testing.T, s *kernel.Sensor, ref sensor.SessionRef, cmd *exec.Cmd) int {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSessionMembers(map[uint32]sensor.SessionRef{uint32(cmd.Process.Pid): ref}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return cmd.Process.Pid
}

// tamperBy waits for a tamper record of op by pid and returns it.
func tamperBy(t *testing.T, ls *liveSensor, op sensor.TamperOp, pid int) sensor.Event {
	t.Helper()
	var hit *sensor.Event
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%s record of pid %d", op, pid), func() bool {
		for _, ev := range ls.events() {
			if ev.Kind == sensor.KindTamper && ev.Tamper.Op == op && ev.Proc.PID == uint32(pid) {
				hit = &ev
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("%d events", len(ls.events())) })
	return *hit
}

// TestRootTouchingTheSensor: session members that read and change the
// sensor's maps with bpftool, and attach to it with ptrace, are each
// reported with their session; the session's later execs still carry it.
func TestRootTouchingTheSensor(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	bpftool := testutil.Bpftool(t)
	path := pinPath(t)
	ls := startKernel(t, kernel.Config{PinPath: path, ProcessOnly: true})
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: uint32(os.Getpid()), StartNs: 10_000_000}, Agent: sensor.AgentClaudeCode}
	me := uint32(os.Getpid())
	// Where the bpf LSM runs, bpf() on the sensor's objects and ptrace of
	// it are refused, and the record says so; elsewhere they are reported.
	hooks, why := ls.s.TamperHooks()
	refusing := tamperRefused(t, hooks, why)

	// Erase its own membership: a delete on the sessions map.
	sh := exec.Command("/bin/sh", "-c", `read go; exec "$0" map delete pinned "$1" key $(printf '%d' $$ | od -An -tx1 >/dev/null; echo 0 0 0 0)`, bpftool, path+"/map_sessions")
	pid, err := runMemberAllowFail(t, ls.s, ref, sh)
	if refusing && err == nil {
		t.Errorf("bpftool map delete on the sensor's sessions map succeeded although the BPF LSM refuses it")
	}
	del := tamperBy(t, ls, sensor.TamperBPF, pid)
	if del.Session != ref || del.Tamper.Object != "map" || del.Tamper.Target.PID != me || del.Tamper.Refused != refusing ||
		!refusing && del.Tamper.Arg != 3 /* BPF_MAP_DELETE_ELEM */ {
		t.Errorf("map delete: %+v %+v", del.Header, del.Tamper)
	}

	// Read the recognisers: get fd by id and lookups, one record each.
	dump := exec.Command("/bin/sh", "-c", `read go; exec "$0" map dump pinned "$1"`, bpftool, path+"/map_recognisers")
	pid, err = runMemberAllowFail(t, ls.s, ref, dump)
	if refusing && err == nil {
		t.Errorf("bpftool map dump of the sensor's recognisers succeeded although the BPF LSM refuses it")
	}
	rd := tamperBy(t, ls, sensor.TamperBPF, pid)
	if rd.Session != ref || rd.Tamper.Object != "map" {
		t.Errorf("map dump: %+v %+v", rd.Header, rd.Tamper)
	}

	// Attach a debugger.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pt := exec.Command(self, "-test.run=^$")
	pt.Env = append(os.Environ(), helperEnv+"=ptrace", "LINEAGED_TAMPER_TARGET="+strconv.Itoa(os.Getpid()))
	pid, err = runMemberAllowFail(t, ls.s, ref, pt)
	if refusing && err == nil {
		t.Errorf("PTRACE_SEIZE of the sensor succeeded although the BPF LSM refuses it")
	}
	tr := tamperBy(t, ls, sensor.TamperPtrace, pid)
	if tr.Session != ref || tr.Tamper.Refused != refusing || !refusing && tr.Tamper.Arg != unix.PTRACE_SEIZE {
		t.Errorf("ptrace: %+v %+v", tr.Header, tr.Tamper)
	}

	// A signal.
	sig := exec.Command("/bin/sh", "-c", fmt.Sprintf(`read go; kill -CONT %d; /bin/true after-tamper`, me))
	pid = runMember(t, ls.s, ref, sig)
	sg := tamperBy(t, ls, sensor.TamperSignal, pid)
	if sg.Session != ref || sg.Tamper.Arg != uint32(unix.SIGCONT) {
		t.Errorf("signal: %+v %+v", sg.Header, sg.Tamper)
	}
	// The session's later actions are still reported in it.
	testutil.WaitFor(t, 10*time.Second, "the exec after the tamper", func() bool {
		s, ok := execsWith(ls.events(), "after-tamper")["after-tamper"]
		return ok && s == ref
	}, func() string { return "" })
}

// runMemberAllowFail is runMember for a command that may fail (refused by
// the BPF LSM): it returns the pid and how the command ended.
func runMemberAllowFail(t *testing.T, s *kernel.Sensor, ref sensor.SessionRef, cmd *exec.Cmd) (int, error) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSessionMembers(map[uint32]sensor.SessionRef{uint32(cmd.Process.Pid): ref}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	stdin.Close()
	err = cmd.Wait()
	return cmd.Process.Pid, err
}
