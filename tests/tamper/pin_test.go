//go:build linux

// Package tamper runs the techniques of docs/threat-model.md ("Tamper")
// against the real sensor, as root with real BPF: each from inside an agent
// session, each asserting what the sensor reports and that the session's
// later actions are still reported with their session.
package tamper

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/sensor/procfs"
	"github.com/lineaged/lineaged/tests/testutil"
)

// TestMain lifts RLIMIT_MEMLOCK for kernels that charge BPF maps to it.
func TestMain(m *testing.M) { testutil.Main(m) }

// pinPath is a pin directory of the test's own, unpinned at its end.
func pinPath(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	p := "/sys/fs/bpf/lineaged-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := kernel.Unpin(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("unpin %s: %v", p, err)
		}
	})
	return p
}

// liveSensor is a kernel.Sensor whose events are collected.
type liveSensor struct {
	s      *kernel.Sensor
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	evs    []sensor.Event
}

func startKernel(t *testing.T, cfg kernel.Config) *liveSensor {
	t.Helper()
	s, err := kernel.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ls := &liveSensor{s: s, cancel: cancel, done: make(chan error, 1)}
	out := make(chan sensor.Event, 1024)
	go func() { ls.done <- s.Run(ctx, out) }()
	go func() {
		for ev := range out {
			ls.mu.Lock()
			ls.evs = append(ls.evs, ev)
			ls.mu.Unlock()
		}
	}()
	t.Cleanup(ls.stop)
	return ls
}

func (ls *liveSensor) stop() {
	if ls.cancel == nil {
		return
	}
	ls.cancel()
	<-ls.done
	ls.s.Close()
	ls.cancel = nil
}

func (ls *liveSensor) events() []sensor.Event {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append([]sensor.Event(nil), ls.evs...)
}

// execsWith returns the argv[1] values starting with prefix of the exec
// events seen, with their session.
func execsWith(evs []sensor.Event, prefix string) map[string]sensor.SessionRef {
	got := map[string]sensor.SessionRef{}
	for _, ev := range evs {
		if ev.Kind == sensor.KindExec && ev.Exec != nil && len(ev.Exec.Argv) > 1 && strings.HasPrefix(ev.Exec.Argv[1], prefix) {
			got[ev.Exec.Argv[1]] = ev.Session
		}
	}
	return got
}

// TestRootPinnedStateOutlivesSensor: a session member keeps exec'ing while
// no sensor runs; the next sensor on the same pin path reuses the pinned
// programs (their attachments were kept) and reads every one of those
// execs from the pinned ring, in its session. A second sensor on the path
// is refused; another configuration reloads.
func TestRootPinnedStateOutlivesSensor(t *testing.T) {
	testutil.RequireRoot(t, "to load and pin BPF programs")
	path := pinPath(t)
	cfg := kernel.Config{PinPath: path, ProcessOnly: true}

	first := startKernel(t, cfg)
	if st := first.s.PinState(); st != kernel.PinFresh {
		t.Fatalf("first start: pin state %q, want %q", st, kernel.PinFresh)
	}
	if _, err := kernel.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); !errors.Is(err, kernel.ErrPinLocked) {
		t.Fatalf("second sensor on %s: err %v, want ErrPinLocked", path, err)
	}

	const n = 200
	member := exec.Command("/bin/sh", "-c", fmt.Sprintf(`read go; i=0; while [ $i -lt %d ]; do i=$((i+1)); /bin/true down-$i; done`, n))
	stdin, err := member.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: uint32(os.Getpid()), StartNs: 10_000_000}, Agent: sensor.AgentClaudeCode}
	if err := first.s.AddSessionMembers(map[uint32]sensor.SessionRef{uint32(member.Process.Pid): ref}); err != nil {
		t.Fatal(err)
	}
	first.stop()

	// No sensor runs: the member's execs go to the pinned ring.
	io.WriteString(stdin, "go\n")
	stdin.Close()
	if err := member.Wait(); err != nil {
		t.Fatal(err)
	}

	second := startKernel(t, cfg)
	if st := second.s.PinState(); st != kernel.PinReused {
		t.Fatalf("restart: pin state %q, want %q", st, kernel.PinReused)
	}
	if st := kernel.PinStatus(cfg); !strings.Contains(st, "last start: reused") || !strings.Contains(st, "held by a running sensor") {
		t.Errorf("doctor's pinned state: %q", st)
	}
	var got map[string]sensor.SessionRef
	testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("%d execs made while no sensor ran", n), func() bool {
		got = execsWith(second.events(), "down-")
		return len(got) == n
	}, func() string { return fmt.Sprintf("%d of %d", len(got), n) })
	for i := 1; i <= n; i++ {
		k := fmt.Sprintf("down-%d", i)
		if s, ok := got[k]; !ok || s.Root.PID != ref.Root.PID || s.Agent != ref.Agent {
			t.Errorf("%s: session %+v (present %v), want %+v", k, s, ok, ref)
		}
	}
	second.stop()

	// Another ring size: the pinned objects are of another version.
	cfg.RingBufferSize = 4 << 20
	third := startKernel(t, cfg)
	if st := third.s.PinState(); st != kernel.PinReloadedVersion {
		t.Fatalf("other configuration: pin state %q, want %q", st, kernel.PinReloadedVersion)
	}
	third.stop()
}

// helperEnv makes the test binary a helper process instead of running
// tests (TestMain): "sensor" runs a pinned sensor until killed.
const helperEnv = "LINEAGED_TAMPER_HELPER"

func init() {
	switch os.Getenv(helperEnv) {
	case "sensor":
		runHelperSensor()
	case "ptrace":
		runHelperPtrace()
	case "recognisers":
		runHelperRecognisers()
	}
}

// runHelperSensor is a sensor process of its own on the pin path in
// LINEAGED_TAMPER_PIN: it reads the ring and discards what it reads, and
// prints "ready <hooks> <why>" once registered (Sensor.TamperHooks). Each
// pid then read from stdin is put into the test's session
// (LINEAGED_TAMPER_ROOT; helperRef) and answered "added <pid>": where the
// BPF LSM runs only the sensor itself may write its maps.
func runHelperSensor() {
	if err := rlimit.RemoveMemlock(); err != nil {
		fmt.Fprintln(os.Stderr, "helper sensor:", err)
		os.Exit(2)
	}
	s, err := kernel.New(kernel.Config{PinPath: os.Getenv("LINEAGED_TAMPER_PIN"), ProcessOnly: true},
		slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper sensor:", err)
		os.Exit(2)
	}
	out := make(chan sensor.Event, 1024)
	go func() {
		for range out {
		}
	}()
	root, _ := strconv.Atoi(os.Getenv("LINEAGED_TAMPER_ROOT"))
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
			if err == nil {
				err = s.AddSessionMembers(map[uint32]sensor.SessionRef{uint32(pid): helperRef(uint32(root))})
			}
			if err != nil {
				fmt.Println("add failed:", err)
				continue
			}
			fmt.Println("added", pid)
		}
	}()
	hooks, why := s.TamperHooks()
	fmt.Printf("ready %s %s\n", hooks, why)
	s.Run(context.Background(), out)
	os.Exit(0)
}

// helperRef is the session the helper sensor puts members into: the test
// process, by pid, as the other tests name it.
func helperRef(root uint32) sensor.SessionRef {
	return sensor.SessionRef{Root: sensor.ProcKey{PID: root, StartNs: 10_000_000}, Agent: sensor.AgentClaudeCode}
}

// TestRootKillDuringExecStorm: a session member kills the sensor with
// SIGKILL in the middle of an exec storm and goes on exec'ing. The next
// sensor on the pin path reads, from the pinned ring, every exec made
// after the kill, in the session, and the kill itself: the signal and the
// sensor's death, each naming the member and its session. Writing the
// running sensor's sessions map from another process is refused where the
// BPF LSM runs (the sensor adds the member itself), and works elsewhere.
func TestRootKillDuringExecStorm(t *testing.T) {
	testutil.RequireRoot(t, "to load and pin BPF programs")
	path := pinPath(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(self, "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"=sensor", "LINEAGED_TAMPER_PIN="+path,
		"LINEAGED_TAMPER_ROOT="+strconv.Itoa(os.Getpid()))
	helperOut := &testutil.SyncBuffer{}
	helper.Stdout, helper.Stderr = helperOut, helperOut
	helperIn, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	helperDone := make(chan error, 1)
	go func() { helperDone <- helper.Wait() }()
	t.Cleanup(func() { helper.Process.Kill() })
	testutil.WaitForText(t, 30*time.Second, helperOut, "ready ")
	hooks, why := helperHooks(t, helperOut.String())
	refusing := tamperRefused(t, hooks, why)
	spid := helper.Process.Pid

	// The member: execs before the kill, kills the sensor, waits for it
	// to be gone, and execs again while no sensor runs.
	const before, after = 300, 300
	script := fmt.Sprintf(`read go
i=0; while [ $i -lt %d ]; do i=$((i+1)); /bin/true up-$i; done
kill -9 %d
while [ -e /proc/%d/stat ] && [ "$(cut -d' ' -f3 /proc/%d/stat)" != Z ]; do /bin/true wait; done
i=0; while [ $i -lt %d ]; do i=$((i+1)); /bin/true down-$i; done`, before, spid, spid, spid, after)
	member := exec.Command("/bin/sh", "-c", script)
	stdin, err := member.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	ref := helperRef(uint32(os.Getpid()))
	err = addMember(path, uint32(member.Process.Pid), ref)
	switch {
	case refusing && !errors.Is(err, unix.EPERM):
		t.Fatalf("writing the running sensor's sessions map from another process: %v, want EPERM from the BPF LSM", err)
	case !refusing && err != nil:
		t.Fatalf("writing the sessions map (tampering only reported here): %v", err)
	}
	if refusing {
		fmt.Fprintf(helperIn, "%d\n", member.Process.Pid)
		testutil.WaitForText(t, 10*time.Second, helperOut, fmt.Sprintf("added %d\n", member.Process.Pid))
	}
	io.WriteString(stdin, "go\n")
	stdin.Close()
	if err := member.Wait(); err != nil {
		t.Fatal(err)
	}
	<-helperDone

	next := startKernel(t, kernel.Config{PinPath: path, ProcessOnly: true})
	if st := next.s.PinState(); st != kernel.PinReused {
		t.Fatalf("restart: pin state %q, want %q", st, kernel.PinReused)
	}
	var got map[string]sensor.SessionRef
	testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("%d execs made while no sensor ran", after), func() bool {
		got = execsWith(next.events(), "down-")
		return len(got) == after
	}, func() string { return fmt.Sprintf("%d of %d", len(got), after) })
	for k, s := range got {
		if s != ref {
			t.Errorf("%s: session %+v, want %+v", k, s, ref)
		}
	}
	var signal, death *sensor.Event
	testutil.WaitFor(t, 10*time.Second, "the kill's tamper records", func() bool {
		for _, ev := range next.events() {
			if ev.Kind != sensor.KindTamper {
				continue
			}
			switch ev.Tamper.Op {
			case sensor.TamperSignal:
				signal = &ev
			case sensor.TamperSensorExit:
				death = &ev
			}
		}
		return signal != nil && death != nil
	}, func() string {
		var b strings.Builder
		for _, ev := range next.events() {
			if ev.Kind == sensor.KindTamper {
				fmt.Fprintf(&b, "%+v %+v\n", ev.Header, *ev.Tamper)
			}
		}
		return b.String()
	})
	if signal.Proc.PID != uint32(member.Process.Pid) || signal.Session != ref || signal.Tamper.Arg != 9 || signal.Tamper.Target.PID != uint32(spid) {
		t.Errorf("signal record: %+v %+v, want SIGKILL to %d from member %d in %+v", signal.Header, signal.Tamper, spid, member.Process.Pid, ref)
	}
	// The death names the killer, the member, and its session.
	if death.Tamper.Target.PID != uint32(spid) || death.Tamper.Code&0x7f != 9 || death.Proc.PID != uint32(member.Process.Pid) || death.Session != ref {
		t.Errorf("death record: %+v %+v, want %d killed by signal 9 from member %d in %+v", death.Header, death.Tamper, spid, member.Process.Pid, ref)
	}
}

// helperHooks reads the tamper hooks from the helper sensor's "ready" line.
func helperHooks(t *testing.T, out string) (hooks, why string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "ready "); ok {
			hooks, why, _ = strings.Cut(rest, " ")
			return hooks, why
		}
	}
	t.Fatalf("no ready line from the helper sensor:\n%s", out)
	return "", ""
}

// addMember puts pid into the session ref in the pinned sessions map at
// path (bpf/lineaged.h struct session), as the sensor's seed would.
func addMember(path string, pid uint32, ref sensor.SessionRef) error {
	m, err := ebpf.LoadPinnedMap(path+"/map_sessions", nil)
	if err != nil {
		return err
	}
	defer m.Close()
	start, err := procfs.Read("/proc", pid)
	if err != nil {
		return err
	}
	// The member is named by its own start time, in /proc's ticks
	// (flag 1: compare at that precision).
	const tick = 10_000_000
	v := struct {
		RootPid     uint32
		Agent       uint8
		Flags       uint8
		Pad         uint16
		RootStart   uint64
		MemberStart uint64
	}{RootPid: ref.Root.PID, Agent: uint8(ref.Agent), Flags: 1, RootStart: ref.Root.StartNs,
		MemberStart: start.Key.StartNs / tick * tick}
	return m.Update(pid, &v, ebpf.UpdateAny)
}
