//go:build linux

package tamper

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// runHelperRecognisers overwrites every slot of the pinned recognisers map
// in LINEAGED_TAMPER_PIN with zeros (no agent is recognised any more), once
// a line arrives on stdin.
func runHelperRecognisers() {
	var b [3]byte
	os.Stdin.Read(b[:])
	m, err := ebpf.LoadPinnedMap(filepath.Join(os.Getenv("LINEAGED_TAMPER_PIN"), "map_recognisers"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	zero := make([]byte, m.ValueSize())
	for i := uint32(0); i < m.MaxEntries(); i++ {
		if err := m.Update(i, zero, ebpf.UpdateAny); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
	os.Exit(0)
}

// tamperOp waits for a tamper event of op and returns it.
func tamperOp(t *testing.T, ls *liveSensor, op sensor.TamperOp) sensor.Event {
	t.Helper()
	var hit *sensor.Event
	testutil.WaitFor(t, 10*time.Second, op.String()+" event", func() bool {
		for _, ev := range ls.events() {
			if ev.Kind == sensor.KindTamper && ev.Tamper.Op == op {
				hit = &ev
				return true
			}
		}
		return false
	}, func() string { return "" })
	return *hit
}

// TestRootSelfCheckRepairs: a session member deletes its own entry from the
// sessions map, another overwrites the recognisers, and the sensor's link
// pins are removed and their descriptors closed in the sensor (what a
// debugger attached to it does). Within the self-check interval each is
// found, repaired and reported, and the session's later execs are still
// reported in it. Where the BPF LSM runs, the two map writes are refused
// (and reported so) instead; links have no LSM hook, so the detach is
// repaired on both paths.
func TestRootSelfCheckRepairs(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	bpftool := testutil.Bpftool(t)
	path := pinPath(t)
	ls := startKernel(t, kernel.Config{PinPath: path, ProcessOnly: true, SelfCheckInterval: 200 * time.Millisecond,
		Recognisers: agent.DefaultTable().Kernel()})
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: uint32(os.Getpid()), StartNs: 10_000_000}, Agent: sensor.AgentClaudeCode}

	hooks, why := ls.s.TamperHooks()
	refusing := tamperRefused(t, hooks, why)

	// 1. Erase its own membership, wait past a self-check, exec. Where
	// the BPF LSM refuses bpf() on the sensor's maps the erasure fails and
	// is reported refused; elsewhere it happens and the self-check
	// restores the membership.
	sh := exec.Command("/bin/sh", "-c", `read go; "$0" map delete pinned "$1" key $(printf '%08x' $$ | sed 's/\(..\)\(..\)\(..\)\(..\)/0x\4 0x\3 0x\2 0x\1/'); rc=$?; sleep 1; /bin/true after-erase; exit $rc`,
		bpftool, path+"/map_sessions")
	pid, err := runMemberAllowFail(t, ls.s, ref, sh)
	if refusing {
		if err == nil {
			t.Errorf("bpftool map delete of its own membership succeeded although the BPF LSM refuses it")
		}
		// bpftool runs as the member's child: the record names it, in
		// the member's session.
		refusedIn(t, ls, ref, "map")
	} else {
		if err != nil {
			t.Fatalf("bpftool map delete: %v", err)
		}
		m := tamperOp(t, ls, sensor.TamperMembership)
		if m.Proc.PID != uint32(pid) || m.Session != ref {
			t.Errorf("membership: %+v, want member %d in %+v", m.Header, pid, ref)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "the exec after the erasure, in the session", func() bool {
		s, ok := execsWith(ls.events(), "after-erase")["after-erase"]
		return ok && s == ref
	}, func() string { return "" })

	// 2. Blind later sessions: zero the recognisers (refused under the
	// BPF LSM, else overwritten and restored by the self-check).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rc := exec.Command(self, "-test.run=^$")
	rc.Env = append(os.Environ(), helperEnv+"=recognisers", "LINEAGED_TAMPER_PIN="+path)
	pid, err = runMemberAllowFail(t, ls.s, ref, rc)
	if refusing {
		if err == nil {
			t.Errorf("overwriting the recognisers succeeded although the BPF LSM refuses it")
		}
		if r := tamperBy(t, ls, sensor.TamperBPF, pid); !r.Tamper.Refused || r.Session != ref {
			t.Errorf("refused overwrite: %+v %+v, want refused in %+v", r.Header, r.Tamper, ref)
		}
	} else {
		if err != nil {
			t.Fatalf("recognisers helper: %v", err)
		}
		tamperOp(t, ls, sensor.TamperRecognisers)
	}
	rm, err := ebpf.LoadPinnedMap(path+"/map_recognisers", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	first := make([]byte, rm.ValueSize())
	if err := rm.Lookup(uint32(0), first); err != nil {
		t.Fatal(err)
	}
	if first[0] == 0 { // the first rule names its agent
		t.Errorf("recogniser 0 not restored: % x", first[:16])
	}

	// 3. Detach: a member removes the link pins; the link descriptors
	// are closed inside the sensor.
	// Only what the self-check finds from here on is this detach's.
	mark := len(ls.events())
	rmPins := exec.Command("/bin/sh", "-c", `read go; rm -f "$0"/link_*`, path)
	runMember(t, ls.s, ref, rmPins)
	closeLinkFDs(t)
	testutil.WaitFor(t, 10*time.Second, "handle_exec found detached, and the loss marker of its blind interval", func() bool {
		var found, lost bool
		for _, ev := range ls.events()[mark:] {
			switch {
			case ev.Kind == sensor.KindTamper && ev.Tamper.Op == sensor.TamperDetached && ev.Tamper.Program == "handle_exec":
				found = true
			case ev.Kind == sensor.KindLoss && ev.Loss.Where == "detached" && ev.Loss.ToNs > ev.Loss.FromNs:
				lost = true
			}
		}
		return found && lost
	}, func() string { return repairDiagnosis(ls, "after-detach") })
	after := exec.Command("/bin/sh", "-c", `read go; /bin/true after-detach`)
	runMember(t, ls.s, ref, after)
	// Generous: on a host where other test packages load BPF at the same
	// time, the ring is read late.
	testutil.WaitFor(t, 30*time.Second, "the exec after re-attaching, in the session", func() bool {
		s, ok := execsWith(ls.events(), "after-detach")["after-detach"]
		return ok && s == ref
	}, func() string { return repairDiagnosis(ls, "after-detach") })
	if _, err := os.Stat(path + "/link_handle_exec"); err != nil {
		t.Errorf("the re-attached link is not pinned again: %v", err)
	}
}

// refusedIn waits for a refused bpf() tamper record on an object of kind
// object ("map", "prog") made in session ref.
func refusedIn(t *testing.T, ls *liveSensor, ref sensor.SessionRef, object string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "a refused bpf() record in the session", func() bool {
		for _, ev := range ls.events() {
			if ev.Kind == sensor.KindTamper && ev.Tamper.Op == sensor.TamperBPF && ev.Tamper.Refused &&
				ev.Session == ref && ev.Tamper.Object == object {
				return true
			}
		}
		return false
	}, func() string {
		var b strings.Builder
		for _, ev := range ls.events() {
			if ev.Kind == sensor.KindTamper {
				fmt.Fprintf(&b, "%+v %+v\n", ev.Header, *ev.Tamper)
			}
		}
		return b.String()
	})
}

// closeLinkFDs closes every BPF link descriptor of this process, as code
// injected into the sensor would.
func closeLinkFDs(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.Contains(target, "bpf_link") {
			continue
		}
		var fd int
		fmt.Sscan(e.Name(), &fd)
		unix.Close(fd)
		n++
	}
	if n == 0 {
		t.Fatal("no bpf_link descriptor found")
	}
}

// TestRootLoginUIDChange: the agent writes its own /proc/self/loginuid and
// runs a command. The change is a tamper event naming the value written
// and the session's; the command's exec keeps the session's login uid and
// its session.
func TestRootLoginUIDChange(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs and write a login uid")
	if _, err := os.Stat("/proc/self/loginuid"); err != nil {
		t.Skip("no audit login uid on this kernel")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	agentPath := testutil.CopyFile(t, "/bin/dash", testutil.AgentPath(dir), 0o755)
	ls := startKernel(t, kernel.Config{ProcessOnly: true, Recognisers: agent.DefaultTable().Kernel()})
	cmd := exec.Command(agentPath, "-c", `/bin/true before-loginuid; echo 4242 > /proc/self/loginuid || exit 3; /bin/true after-loginuid`)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("agent: %v\n%s", err, b)
	}
	var before, after *sensor.Event
	testutil.WaitFor(t, 10*time.Second, "the agent's execs", func() bool {
		for _, ev := range ls.events() {
			if ev.Kind == sensor.KindExec && len(ev.Exec.Argv) > 1 {
				switch ev.Exec.Argv[1] {
				case "before-loginuid":
					before = &ev
				case "after-loginuid":
					after = &ev
				}
			}
		}
		return before != nil && after != nil
	}, func() string { return "" })
	if after.Exec.LoginUID != before.Exec.LoginUID || after.Session != before.Session || !after.Session.InSession() {
		t.Errorf("after the write: login uid %d session %+v, want the session's %d and %+v",
			after.Exec.LoginUID, after.Session, before.Exec.LoginUID, before.Session)
	}
	ch := tamperOp(t, ls, sensor.TamperLoginUID)
	if ch.Tamper.Arg != 4242 || uint32(ch.Tamper.Code) != before.Exec.LoginUID || ch.Session != before.Session {
		t.Errorf("loginuid event: %+v %+v, want 4242 over %d in %+v", ch.Header, ch.Tamper, before.Exec.LoginUID, before.Session)
	}
}

// TestRootRepairNeverClosesReusedDescriptors: whoever detaches the sensor
// by closing its link descriptors frees their numbers, and the next files
// the sensor's process opens take them. The repair drops the lost link
// objects; it must never close those numbers afterwards (cilium/ebpf
// closes the descriptor of an object nobody holds when the garbage
// collector finds it), or it closes whatever holds them now: a pipe of an
// exec, the ring's epoll, the link attached in the lost one's place.
func TestRootRepairNeverClosesReusedDescriptors(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	path := pinPath(t)
	ls := startKernel(t, kernel.Config{PinPath: path, ProcessOnly: true, SelfCheckInterval: 200 * time.Millisecond,
		Recognisers: agent.DefaultTable().Kernel()})
	pins, _ := filepath.Glob(path + "/link_*")
	for _, p := range pins {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	closeLinkFDs(t)
	// Pipes take the lowest free numbers: the closed links' among them.
	type pipeEnd struct {
		fd  int
		ino uint64
	}
	var ends []pipeEnd
	for range 16 {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		for _, fd := range p {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				t.Fatal(err)
			}
			ends = append(ends, pipeEnd{fd, st.Ino})
			defer unix.Close(fd)
		}
	}
	tamperOp(t, ls, sensor.TamperDetached)
	testutil.WaitFor(t, 10*time.Second, "the self-check's repair, confirmed", func() bool {
		return ls.s.SelfCheckProblem() == ""
	}, ls.s.SelfCheckProblem)
	// Let the garbage collector find the dropped objects and run their
	// cleanups.
	for range 5 {
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
	for _, e := range ends {
		var st unix.Stat_t
		if err := unix.Fstat(e.fd, &st); err != nil || st.Ino != e.ino {
			t.Errorf("descriptor %d (a pipe) was closed or replaced after the repair: %v", e.fd, err)
		}
	}
	// The sensor still sees a member's exec: its own descriptors are intact.
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: uint32(os.Getpid()), StartNs: 10_000_000}, Agent: sensor.AgentClaudeCode}
	runMember(t, ls.s, ref, exec.Command("/bin/sh", "-c", `read go; /bin/true after-repair`))
	testutil.WaitFor(t, 30*time.Second, "the exec after the repair, in the session", func() bool {
		s, ok := execsWith(ls.events(), "after-repair")["after-repair"]
		return ok && s == ref
	}, func() string { return "" })
}

// repairDiagnosis says what a failed wait after a repair saw: the exec of
// marker (and its session), the loss and tamper records, the self-check's
// finding and the attached programs.
func repairDiagnosis(ls *liveSensor, marker string) string {
	var b strings.Builder
	evs := ls.events()
	s, ok := execsWith(evs, marker)[marker]
	fmt.Fprintf(&b, "%d events; exec %s seen %v in %+v;", len(evs), marker, ok, s)
	for _, ev := range evs {
		switch {
		case ev.Loss != nil:
			fmt.Fprintf(&b, " loss %s/%v:%d;", ev.Loss.Where, ev.Loss.Of, ev.Loss.Count)
		case ev.Kind == sensor.KindTamper:
			fmt.Fprintf(&b, " tamper %v %s;", ev.Tamper.Op, ev.Tamper.Program)
		}
	}
	want, have, err := ls.s.AttachedPrograms()
	fmt.Fprintf(&b, " self-check %q; programs want %v have %v (%v)", ls.s.SelfCheckProblem(), want, have, err)
	return b.String()
}
