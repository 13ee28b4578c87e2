//go:build linux

package kernel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

// These tests load the real programs: they need root (CI runs as root).
// Every test ends with a marker exec and waits for it; the timeout below is
// only a guard against a hang, never a synchronisation.
const guard = 30 * time.Second

// harness runs one sensor and collects its events.
type harness struct {
	t      *testing.T
	s      *Sensor
	cancel context.CancelFunc
	done   chan error
	out    chan sensor.Event
	seen   []sensor.Event
}

func startSensor(t *testing.T, cfg Config) *harness {
	t.Helper()
	testutil.RequireRoot(t, "to load BPF programs")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Recognisers == nil {
		cfg.Recognisers = testRecognisers()
	}
	s, err := New(cfg, log)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Logf("%+v", ve)
		}
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, s: s, cancel: cancel, done: make(chan error, 1), out: make(chan sensor.Event, 4096)}
	go func() { h.done <- s.Run(ctx, h.out) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.cancel = nil
	if err := h.s.Close(); err != nil {
		h.t.Errorf("Close: %v", err)
	}
}

// until collects events until pred holds for one of them (inclusive).
func (h *harness) until(pred func(sensor.Event) bool) []sensor.Event {
	h.t.Helper()
	evs, ok := h.within(pred, guard)
	if !ok {
		h.t.Fatalf("no matching event within %s (%d events seen; program runs the kernel skipped: %v)", guard, len(evs), h.s.MissedRuns())
	}
	return evs
}

// within collects events until pred holds for one of them (inclusive) or
// d has passed: the events seen, and whether the last is the match.
func (h *harness) within(pred func(sensor.Event) bool, d time.Duration) ([]sensor.Event, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	start := len(h.seen)
	for {
		select {
		case ev := <-h.out:
			h.seen = append(h.seen, ev)
			if pred(ev) {
				return h.seen[start:], true
			}
		case <-timer.C:
			return h.seen[start:], false
		}
	}
}

// execArg matches an exec whose argv contains arg.
func execArg(arg string) func(sensor.Event) bool {
	return func(ev sensor.Event) bool { return ev.Exec != nil && slices.Contains(ev.Exec.Argv, arg) }
}

// untilExecArg waits for an exec whose argv contains arg.
func (h *harness) untilExecArg(arg string) (sensor.Event, []sensor.Event) {
	h.t.Helper()
	evs := h.until(execArg(arg))
	return evs[len(evs)-1], evs
}

func marker(t *testing.T) string {
	return fmt.Sprintf("lineaged-marker-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
}

func mustRun(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", cmd.Args, err, out)
	}
}

func find(evs []sensor.Event, pred func(sensor.Event) bool) []sensor.Event {
	var out []sensor.Event
	for _, ev := range evs {
		if pred(ev) {
			out = append(out, ev)
		}
	}
	return out
}

func execOf(pid uint32) func(sensor.Event) bool {
	return func(ev sensor.Event) bool { return ev.Exec != nil && ev.Proc.PID == pid }
}

func exitOf(pid uint32) func(sensor.Event) bool {
	return func(ev sensor.Event) bool { return ev.Exit != nil && ev.Proc.PID == pid }
}

// shellBinary is the real file behind /bin/sh (dash on Debian, busybox in
// the kernel-matrix guests). Copies of it play agents.
func shellBinary(t *testing.T) string {
	t.Helper()
	// dash where it exists (the host; the matrix guests get it as a host
	// binary): busybox, the guests' /bin/sh, runs its applets by
	// re-executing /proc/self/exe, and a copy of it at an agent's path
	// would then start a nested agent session for every "sleep".
	if p, err := filepath.EvalSymlinks("/bin/dash"); err == nil {
		return p
	}
	p, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// shellCmd runs a copy of the shell with argv[0] "sh", which busybox needs
// to pick its applet; dash ignores it.
func shellCmd(path string, args ...string) *exec.Cmd {
	return &exec.Cmd{Path: path, Args: append([]string{"sh"}, args...)}
}

// fakeAgentPath copies the shell to a Claude-Code-shaped path, so the
// recognisers see a native install.
func fakeAgentPath(t *testing.T) string {
	t.Helper()
	return testutil.CopyFile(t, shellBinary(t), testutil.AgentPath(filepath.Join(t.TempDir(), "home")), 0o700)
}

// dataFile is a file for workloads to open.
func dataFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data file")
	if err := os.WriteFile(p, []byte("lineaged\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// agentShell is a fake agent reading shell commands from stdin, one per line.
type agentShell struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
	mu    sync.Mutex
}

func startAgentShell(t *testing.T, path string) *agentShell {
	t.Helper()
	cmd := shellCmd(path, "-c", `while read -r line; do eval "$line"; done`)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentShell{cmd: cmd, stdin: in, lines: bufio.NewScanner(out)}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	return a
}

func (a *agentShell) pid() uint32 { return uint32(a.cmd.Process.Pid) }

func (a *agentShell) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(a.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// readLine waits for the agent to print a line (a handshake).
func (a *agentShell) readLine(t *testing.T) string {
	t.Helper()
	if !a.lines.Scan() {
		t.Fatalf("agent output ended: %v", a.lines.Err())
	}
	return a.lines.Text()
}

// inSession reports whether ev belongs to the session rooted at root.
func inSession(ev sensor.Event, root uint32) bool {
	return ev.Session.InSession() && ev.Session.Root.PID == root
}

func TestRootExecArgvForkExit(t *testing.T) {
	h := startSensor(t, Config{Scope: ScopeAll})
	hostile := []string{"plain", "with space", "new\nline", "\xff\xfeinvalid-utf8", "", "tab\there", "last"}
	cmd := exec.Command("/bin/echo", hostile...)
	mustRun(t, cmd)
	pid := uint32(cmd.Process.Pid)

	// Exit code and signal, from children of known pids.
	code := exec.Command("/bin/sh", "-c", "exit 7")
	if err := code.Run(); err == nil {
		t.Fatal("exit 7 reported success")
	}
	sig := exec.Command("/bin/sleep", "1000")
	if err := sig.Start(); err != nil {
		t.Fatal(err)
	}
	sig.Process.Kill()
	sig.Wait()

	m := marker(t)
	mustRun(t, exec.Command("/bin/true", m))
	_, evs := h.untilExecArg(m)

	execs := find(evs, execOf(pid))
	if len(execs) != 1 {
		t.Fatalf("%d exec events for pid %d, want 1", len(execs), pid)
	}
	x := execs[0].Exec
	want := append([]string{"/bin/echo"}, hostile...)
	if !slices.Equal(x.Argv, want) {
		t.Errorf("argv = %q, want %q", x.Argv, want)
	}
	if x.ArgvTruncated {
		t.Error("short argv marked truncated")
	}
	if x.Filename != "/bin/echo" {
		t.Errorf("filename %q", x.Filename)
	}
	// Exe is resolved (/bin is a symlink to usr/bin on Debian; echo is
	// busybox in the kernel-matrix guests).
	echo, err := filepath.EvalSymlinks("/bin/echo")
	if err != nil {
		t.Fatal(err)
	}
	if x.Exe != echo {
		t.Errorf("exe %q, want %q", x.Exe, echo)
	}
	if x.Comm != "echo" {
		t.Errorf("comm %q", x.Comm)
	}
	if x.Parent.PID != uint32(os.Getpid()) {
		t.Errorf("ppid %d, want %d", x.Parent.PID, os.Getpid())
	}
	if x.UID != 0 || x.EUID != 0 || x.GID != 0 {
		t.Errorf("creds %d/%d/%d, want root", x.UID, x.EUID, x.GID)
	}
	st, err := os.Stat(echo)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if x.Binary.Inode != sys.Ino || x.Binary.Dev != sys.Dev || x.Binary.Size != sys.Size ||
		x.Binary.MtimeNs != sys.Mtim.Nano() || x.Binary.CtimeNs != sys.Ctim.Nano() {
		t.Errorf("binary %+v, stat ino %d dev %d size %d mtime %d ctime %d",
			x.Binary, sys.Ino, sys.Dev, sys.Size, sys.Mtim.Nano(), sys.Ctim.Nano())
	}
	if x.CgroupID == 0 {
		t.Error("no cgroup id")
	}
	// The mount namespace echo ran in: this test's.
	if ns, err := os.Readlink("/proc/self/ns/mnt"); err != nil {
		t.Fatal(err)
	} else if want := fmt.Sprintf("mnt:[%d]", x.MntNS); ns != want {
		t.Errorf("mount namespace %s, this process's %s", want, ns)
	}
	// Process identity agrees with /proc's resolution.
	if execs[0].Proc.StartNs%tickNs != 0 || execs[0].Proc.StartNs == 0 {
		t.Errorf("start %d not at tick resolution", execs[0].Proc.StartNs)
	}

	// The child was forked by this test process, which has several
	// threads: its fork record is sent at fork, not parked (a shell's
	// child that execs has none: TestRootParkedForkSentBeforeChildRecords).
	if forks := find(evs, func(ev sensor.Event) bool { return ev.Fork != nil && ev.Proc.PID == pid }); len(forks) != 1 {
		t.Errorf("fork records for %d, forked by a multi-threaded parent: %+v", pid, forks)
	}
	exits := find(evs, exitOf(pid))
	if len(exits) != 1 || exits[0].Exit.Code != 0 || exits[0].Exit.Signal != 0 {
		t.Errorf("exit events for %d: %+v", pid, exits)
	}
	if e := find(evs, exitOf(uint32(code.Process.Pid))); len(e) != 1 || e[0].Exit.Code != 7 || e[0].Exit.Signal != 0 {
		t.Errorf("exit 7: %+v", e)
	}
	if e := find(evs, exitOf(uint32(sig.Process.Pid))); len(e) != 1 || e[0].Exit.Signal != int32(syscall.SIGKILL) {
		t.Errorf("SIGKILL exit: %+v", e)
	}
}

func TestRootLongArgvTruncated(t *testing.T) {
	h := startSensor(t, Config{Scope: ScopeAll})
	var args []string
	for i := range 400 {
		args = append(args, fmt.Sprintf("argument-%04d-%s", i, strings.Repeat("x", 20)))
	}
	cmd := exec.Command("/bin/true", args...)
	mustRun(t, cmd)
	m := marker(t)
	mustRun(t, exec.Command("/bin/true", m))
	_, evs := h.untilExecArg(m)
	execs := find(evs, execOf(uint32(cmd.Process.Pid)))
	if len(execs) != 1 {
		t.Fatalf("%d execs", len(execs))
	}
	x := execs[0].Exec
	if !x.ArgvTruncated {
		t.Fatal("argv of 12 KiB not marked truncated")
	}
	if len(x.Argv) < 2 || len(x.Argv) >= len(args)+1 {
		t.Fatalf("%d args kept of %d", len(x.Argv), len(args)+1)
	}
	full := append([]string{"/bin/true"}, args...)
	n := len(x.Argv)
	if !slices.Equal(x.Argv[:n-1], full[:n-1]) || !strings.HasPrefix(full[n-1], x.Argv[n-1]) {
		t.Errorf("truncated argv is not a prefix of the real one: last kept %q", x.Argv[n-1])
	}
}

// threadsHelper is run as a child: it starts threads, then exits 3.
func threadsHelper() {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			runtime.LockOSThread() // a thread of its own, never reused
			wg.Done()
			select {}
		}()
	}
	wg.Wait()
	os.Exit(3)
}

func TestMain(m *testing.M) {
	// LINEAGED_TEST_WALKER=bounded runs the suite on the bounded-loop
	// build of the path-walking objects where the kernel has bpf_loop
	// (walker.go), which otherwise only kernels before 5.17 run.
	walkerOverride = os.Getenv("LINEAGED_TEST_WALKER")
	switch os.Getenv("LINEAGED_SENSOR_HELPER") {
	case "threads":
		threadsHelper()
	case "unprivileged":
		newUnprivilegedHelper()
	case "node": // an interpreter: run the script in argv[1] as a child
		os.Exit(runChild(exec.Command("/bin/sh", os.Args[1])))
	case "spawn": // run the last argument with sh -c as a child
		os.Exit(runChild(exec.Command("/bin/sh", "-c", os.Args[len(os.Args)-1])))
	case "fill":
		fillHelper()
	case "exe": // exec in the ways the exe path root rule covers
		os.Exit(exeHelper())
	case "daemon1":
		daemon1Helper()
	case "daemon2":
		daemon2Helper()
	case "execv": // exec argv[1] with argv[2:], which then spawns
		env := []string{"LINEAGED_SENSOR_HELPER=spawn"}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "LINEAGED_SENSOR_HELPER=") {
				env = append(env, kv)
			}
		}
		err := syscall.Exec(os.Args[1], os.Args[2:], env)
		fmt.Fprintln(os.Stderr, "execv:", err)
		os.Exit(1)
	}
	// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK: lift it for
	// every test, not only for those that run after one that lifted it.
	testutil.Main(m)
}

func runChild(cmd *exec.Cmd) int {
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if cmd.ProcessState != nil {
			return cmd.ProcessState.ExitCode()
		}
		return 1
	}
	return 0
}

func testBinary(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRootThreadsAreNotProcesses(t *testing.T) {
	h := startSensor(t, Config{Scope: ScopeAll})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "LINEAGED_SENSOR_HELPER=threads")
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("helper: %v", err)
	}
	pid := uint32(cmd.Process.Pid)
	m := marker(t)
	mustRun(t, exec.Command("/bin/true", m))
	_, evs := h.untilExecArg(m)

	if n := len(find(evs, execOf(pid))); n != 1 {
		t.Errorf("%d execs of the helper, want 1", n)
	}
	// Its threads share its tgid: no fork event may name the helper as
	// parent, and exactly one exit (the group's) is reported.
	if f := find(evs, func(ev sensor.Event) bool { return ev.Fork != nil && ev.Fork.Parent.PID == pid }); len(f) != 0 {
		t.Errorf("threads reported as processes: %d forks from the helper", len(f))
	}
	exits := find(evs, exitOf(pid))
	if len(exits) != 1 || exits[0].Exit.Code != 3 {
		t.Errorf("helper exits: %+v, want one with code 3", exits)
	}
}

func TestRootOutsideSessionSilent(t *testing.T) {
	h := startSensor(t, Config{})
	agent := startAgentShell(t, fakeAgentPath(t))
	cmd := exec.Command("/bin/cat", dataFile(t)) // exec, open, exit: none reported
	mustRun(t, cmd)
	// Where tracepoint callbacks can be preempted (7.3), the kernel may
	// skip a run of the exec program (reported as loss): the marker is
	// sent again then, up to three times.
	var ev sensor.Event
	var evs []sensor.Event
	for try := 1; ; try++ {
		base := h.s.MissedRuns()[processProgHandleExec]
		m := marker(t)
		agent.send(t, "/bin/true "+m)
		got, ok := h.within(execArg(m), 10*time.Second)
		evs = append(evs, got...)
		if ok {
			ev = got[len(got)-1]
			break
		}
		if skipped := h.s.MissedRuns()[processProgHandleExec] - base; skipped == 0 || try == 3 {
			t.Fatalf("no exec of the marker within 10s, %d skipped exec-program runs (try %d)", skipped, try)
		}
	}
	if !inSession(ev, agent.pid()) {
		t.Fatalf("marker not in the agent's session: %+v", ev.Header)
	}
	for _, e := range evs {
		if e.Proc.PID == uint32(cmd.Process.Pid) {
			t.Errorf("process outside any session reported: %+v", e)
		}
		// Losses, and tamper records, which name any process touching
		// the sensor (another package's sensor walking the kernel's
		// links at the same time, in a full go test run), are not
		// session records.
		if !e.Session.InSession() && e.Kind != sensor.KindLoss && e.Kind != sensor.KindTamper {
			t.Errorf("default scope reported a non-member: %+v", e.Header)
		}
	}
}

func TestRootSessionRecognisedAtExec(t *testing.T) {
	h := startSensor(t, Config{})
	path := fakeAgentPath(t)
	m := marker(t)
	// The agent forks a child at once; the child must already be a member.
	cmd := shellCmd(path, "-c", "/bin/true first-child; exec /bin/true "+m)
	mustRun(t, cmd)
	pid := uint32(cmd.Process.Pid)
	_, evs := h.untilExecArg(m)

	roots := find(evs, execOf(pid))
	if len(roots) < 1 {
		t.Fatal("agent exec not reported")
	}
	r := roots[0]
	if r.Exec.Recognised != sensor.AgentClaudeCode || r.Session.Root != r.Proc || r.Session.Agent != sensor.AgentClaudeCode {
		t.Fatalf("agent exec: recognised %v, session %+v, proc %+v", r.Exec.Recognised, r.Session, r.Proc)
	}
	if r.Exec.ParentSession.InSession() {
		t.Errorf("top-level agent has a parent session %+v", r.Exec.ParentSession)
	}
	if r.Exec.Exe != path {
		t.Errorf("exe %q, want %q", r.Exec.Exe, path)
	}
	child := find(evs, func(ev sensor.Event) bool { return ev.Exec != nil && slices.Contains(ev.Exec.Argv, "first-child") })
	if len(child) != 1 || !inSession(child[0], pid) || child[0].Exec.Parent.PID != pid {
		t.Errorf("first child: %+v", child)
	}
	// Its one child exec'd at once: its exec carries the parent, no fork
	// record is sent.
	if forks := find(evs, func(ev sensor.Event) bool { return ev.Fork != nil && ev.Fork.Parent.PID == pid }); len(forks) != 0 {
		t.Errorf("agent's fork records: %+v", forks)
	}
}

func TestRootDoubleForkSetsidStaysInSession(t *testing.T) {
	h := startSensor(t, Config{})
	agent := startAgentShell(t, fakeAgentPath(t))
	m := marker(t)
	// The grandchild daemonises: its parent exits at once and it calls
	// setsid (the "daemon" helpers). Command substitution waits for it to
	// close stdout, which the shell it becomes does only by exiting
	// (coreutils close stdout before they exit, too early to order their
	// exit), before the marker runs.
	data := dataFile(t)
	agent.send(t, fmt.Sprintf(`x=$(LINEAGED_SENSOR_HELPER=daemon1 %s '%s'); /bin/true %s`, testBinary(t), data, m))
	ev, evs := h.untilExecArg(m)
	if !inSession(ev, agent.pid()) {
		t.Fatalf("marker outside the session: %+v", ev.Header)
	}
	d := find(evs, func(ev sensor.Event) bool { return ev.Exec != nil && slices.Contains(ev.Exec.Argv, "daemonised") })
	if len(d) != 1 {
		t.Fatalf("%d execs of the daemonised grandchild", len(d))
	}
	if !inSession(d[0], agent.pid()) {
		t.Errorf("daemonised grandchild left the session: %+v", d[0].Header)
	}
	if x := find(evs, exitOf(d[0].Proc.PID)); len(x) != 1 || !inSession(x[0], agent.pid()) || x[0].Exit.Code != 5 {
		t.Errorf("grandchild's exit: %+v", x)
	}
	// Its file events come through the same session (the file object
	// shares the sessions map), on amd64 where that object is built.
	if len(extraObjects()) > 0 {
		o := find(evs, func(ev sensor.Event) bool {
			return ev.File != nil && ev.Proc.PID == d[0].Proc.PID && ev.File.Path == data
		})
		if len(o) != 1 || !inSession(o[0], agent.pid()) || o[0].File.Op != sensor.FileOpen {
			t.Errorf("daemonised grandchild's open of %s: %+v", data, o)
		}
	}
}

// daemon1Helper starts daemon2 in a new session and exits without waiting:
// the classic double fork, with setsid.
func daemon1Helper() {
	self, err := os.Executable()
	if err != nil {
		os.Exit(1)
	}
	env := []string{"LINEAGED_SENSOR_HELPER=daemon2"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LINEAGED_SENSOR_HELPER=") {
			env = append(env, kv)
		}
	}
	_, err = syscall.ForkExec(self, []string{self, os.Args[1]}, &syscall.ProcAttr{
		Env: env, Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemon1:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// daemon2Helper checks it leads a new session, reads the file it is given
// and becomes a shell that exits 5.
func daemon2Helper() {
	if sid, err := unix.Getsid(0); err != nil || sid != os.Getpid() {
		os.Exit(9)
	}
	if _, err := os.ReadFile(os.Args[1]); err != nil {
		os.Exit(8)
	}
	err := syscall.Exec("/bin/sh", []string{"sh", "-c", "exit 5", "daemonised"}, os.Environ())
	fmt.Fprintln(os.Stderr, "daemon2:", err)
	os.Exit(1)
}

func TestRootScopeAllReportsOutsiders(t *testing.T) {
	h := startSensor(t, Config{Scope: ScopeAll})
	cmd := exec.Command("/bin/true", "outsider")
	mustRun(t, cmd)
	m := marker(t)
	mustRun(t, exec.Command("/bin/true", m))
	_, evs := h.untilExecArg(m)
	x := find(evs, execOf(uint32(cmd.Process.Pid)))
	if len(x) != 1 || x[0].Session.InSession() || x[0].Exec.Recognised != sensor.AgentNone {
		t.Errorf("outsider under scope all: %+v", x)
	}
}

func TestRootNestedAgentStartsOwnSession(t *testing.T) {
	h := startSensor(t, Config{})
	outer := startAgentShell(t, fakeAgentPath(t))
	// The inner agent: this test binary at a VS Code extension path, in its
	// "spawn" helper mode (runs its last argument as a child).
	inner := testutil.CopyFile(t, testBinary(t), filepath.Join(t.TempDir(), ".vscode-server", "extensions",
		"anthropic.claude-code-2.0.1-linux-x64", "resources", "native-binary", "claude"), 0o700)
	m := marker(t)
	outer.send(t, "LINEAGED_SENSOR_HELPER=spawn "+inner+" '/bin/true inner-child'; /bin/true "+m)
	_, evs := h.untilExecArg(m)
	in := find(evs, func(ev sensor.Event) bool { return ev.Exec != nil && ev.Exec.Exe == inner })
	if len(in) != 1 {
		t.Fatalf("%d execs of the inner agent", len(in))
	}
	ie := in[0]
	if ie.Exec.Recognised != sensor.AgentClaudeCode || ie.Session.Root != ie.Proc {
		t.Errorf("inner agent did not start a session: %+v", ie.Header)
	}
	if ps := ie.Exec.ParentSession; ps.Root.PID != outer.pid() || ps.Agent != sensor.AgentClaudeCode {
		t.Errorf("inner agent's parent session %+v, want root %d", ps, outer.pid())
	}
	c := find(evs, func(ev sensor.Event) bool { return ev.Exec != nil && slices.Contains(ev.Exec.Argv, "inner-child") })
	if len(c) != 1 || !inSession(c[0], ie.Proc.PID) {
		t.Errorf("inner child: %+v", c)
	}
}

func TestRootScriptLauncherRecognised(t *testing.T) {
	h := startSensor(t, Config{})
	dir := t.TempDir()
	// A "node" that runs the script it is given (this test binary in its
	// "node" helper mode), and a cli.js where npm puts the legacy package.
	node := testutil.CopyFile(t, testBinary(t), filepath.Join(dir, "bin", "node"), 0o700)
	script := filepath.Join(dir, "lib", "node_modules", "@anthropic-ai", "claude-code", "cli.js")
	if err := os.MkdirAll(filepath.Dir(script), 0o700); err != nil {
		t.Fatal(err)
	}
	m := marker(t)
	if err := os.WriteFile(script, []byte("/bin/true "+m+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "LINEAGED_SENSOR_HELPER=node")
	mustRun(t, cmd)
	ev, evs := h.untilExecArg(m)
	pid := uint32(cmd.Process.Pid)
	if !inSession(ev, pid) {
		t.Fatalf("cli.js child not in the launcher's session: %+v", ev.Header)
	}
	if r := find(evs, execOf(pid)); len(r) != 1 || r[0].Exec.Recognised != sensor.AgentClaudeCode {
		t.Errorf("launcher exec: %+v", r)
	}
	if got := sensor.RecogniseWith(testRecognisers(), node, []string{node, script}); got != sensor.AgentClaudeCode {
		t.Errorf("Go recogniser disagrees: %v", got)
	}
}

func TestRootSeedFindsRunningAgent(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	path := fakeAgentPath(t)
	// Started before the sensor: the agent and a descendant.
	agent := startAgentShell(t, path)
	agent.send(t, "/bin/sleep 1000 & echo $!")
	sleepPID, err := strconv.Atoi(agent.readLine(t))
	if err != nil {
		t.Fatal(err)
	}

	h := startSensor(t, Config{})
	// Which running processes are members is lineage/agent's to say (its
	// seed test); the kernel's part is to hold the members it is given.
	root, err := procfs.Read("/proc", agent.pid())
	if err != nil {
		t.Fatal(err)
	}
	ref := sensor.SessionRef{Root: root.Key, Agent: sensor.AgentClaudeCode}
	if err := h.s.AddSessionMembers(map[uint32]sensor.SessionRef{agent.pid(): ref, uint32(sleepPID): ref}); err != nil {
		t.Fatal(err)
	}

	m := marker(t)
	agent.send(t, fmt.Sprintf("kill %d; wait; /bin/true %s", sleepPID, m))
	ev, evs := h.untilExecArg(m)
	if !inSession(ev, agent.pid()) || ev.Session.Root != ref.Root {
		t.Fatalf("seeded agent's child: %+v, want session %+v", ev.Header, ref)
	}
	x := find(evs, exitOf(uint32(sleepPID)))
	if len(x) != 1 || x[0].Exit.Signal != int32(syscall.SIGTERM) || x[0].Session.Root != ref.Root {
		t.Errorf("seeded descendant's exit: %+v", x)
	}
}

func TestRootStatsAndLoss(t *testing.T) {
	// A one-page ring buffer and an unread queue force both kinds of loss.
	testutil.RequireRoot(t, "to load BPF programs")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(Config{Scope: ScopeAll, RingBufferSize: uint32(os.Getpagesize()), QueueSize: 1,
		LossInterval: time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Fill the ring before anyone reads it.
	for range 40 {
		mustRun(t, exec.Command("/bin/true", strings.Repeat("fill-the-ring ", 40)))
	}
	if st := s.Stats(); st.KernelLost == 0 {
		t.Fatalf("no kernel loss counted with a %d-byte ring: %+v", os.Getpagesize(), st)
	}
	out := make(chan sensor.Event)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	var lost uint64
	timer := time.NewTimer(guard)
	defer timer.Stop()
	for lost < s.Stats().KernelLost {
		select {
		case ev := <-out:
			if ev.Loss != nil && ev.Loss.Where == "ringbuf" {
				// Process records, and tamper records: in scope all
				// every bpf() on the sensor's objects is one, and the
				// self-checks of other sensors on the host (other test
				// packages) walk its links.
				if ev.Loss.Of != sensor.KindExec && ev.Loss.Of != sensor.KindFork && ev.Loss.Of != sensor.KindExit &&
					ev.Loss.Of != sensor.KindTamper {
					t.Errorf("loss of kind %v", ev.Loss.Of)
				}
				lost += ev.Loss.Count
			}
		case <-timer.C:
			t.Fatalf("loss events sum to %d, kernel counted %d", lost, s.Stats().KernelLost)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRootNewFailsOneLineWithoutPrivileges(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	// Run the check in a child that dropped every capability.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The build directory is root's; give nobody a copy it can run.
	dir, err := os.MkdirTemp("", "lineaged-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := testutil.CopyFile(t, self, filepath.Join(dir, "sensor.test"), 0o700)
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LINEAGED_SENSOR_HELPER=unprivileged")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "NEWERR: sensor cannot run: missing CAP_BPF+CAP_PERFMON") {
		t.Errorf("unprivileged New error: %s", out)
	}
}

// newUnprivilegedHelper runs as the child above: it prints New's error.
func newUnprivilegedHelper() {
	_, err := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	switch {
	case err == nil:
		fmt.Println("New succeeded without privileges")
	case strings.Contains(err.Error(), "\n"):
		fmt.Printf("error spans lines: %q\n", err)
	default:
		fmt.Printf("NEWERR: %s\n", err)
	}
	os.Exit(0)
}

func TestRootDoctor(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	r := Doctor(Config{}, nil)
	if err := r.Err(); err != nil {
		t.Fatalf("doctor on a capable host: %v", err)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kernel version", "capabilities", "kernel BTF", "ring buffer map", "attach tp_btf", "load and attach programs", "path identity"} {
		found := false
		for _, c := range r.Checks {
			if c.Name == name {
				found = true
				if !c.OK {
					t.Errorf("%s failed: %s", name, c.Detail)
				}
			}
		}
		if !found || !strings.Contains(b.String(), name) {
			t.Errorf("check %q missing from report:\n%s", name, b.String())
		}
	}
}

func TestRootAgentAsEmbeddedToolIsNotASession(t *testing.T) {
	h := startSensor(t, Config{})
	agent := startAgentShell(t, fakeAgentPath(t))
	// The binary re-executed as ugrep: a copy of this test binary at an
	// install path, which (in its "spawn" helper mode) runs its last
	// argument as a child.
	path := testutil.CopyFile(t, testBinary(t), filepath.Join(t.TempDir(), "node_modules", "@anthropic-ai", "claude-code", "bin", "claude.exe"), 0o700)
	m := marker(t)
	// Claude Code re-executes its own binary as `ugrep` inside a tool
	// call; that must stay in the caller's session.
	agent.send(t, fmt.Sprintf(`LINEAGED_SENSOR_HELPER=execv %s %s ugrep -c '/bin/true vetoed-child'; /bin/true %s`, testBinary(t), path, m))
	_, evs := h.untilExecArg(m)
	ug := find(evs, func(ev sensor.Event) bool {
		return ev.Exec != nil && ev.Exec.Exe == path && len(ev.Exec.Argv) > 0 && ev.Exec.Argv[0] == "ugrep"
	})
	if len(ug) != 1 {
		t.Fatalf("%d execs of the agent as ugrep", len(ug))
	}
	if ug[0].Exec.Recognised != sensor.AgentNone || !inSession(ug[0], agent.pid()) || ug[0].Exec.ParentSession.InSession() {
		t.Errorf("agent binary as ugrep: recognised %v, session %+v", ug[0].Exec.Recognised, ug[0].Session)
	}
	c := find(evs, func(ev sensor.Event) bool { return ev.Exec != nil && slices.Contains(ev.Exec.Argv, "vetoed-child") })
	if len(c) != 1 || !inSession(c[0], agent.pid()) {
		t.Errorf("its child: %+v", c)
	}
}

// The kernel and sensor.RecogniseWith must agree on the rule format, or the
// /proc seed and live recognition would disagree about who is an agent.
// lineage/agent runs the same check over the product's table.
func TestRootKernelRecognisersAgreeWithGo(t *testing.T) {
	h := startSensor(t, Config{Scope: ScopeAll})
	dir := t.TempDir()
	nm := filepath.Join(dir, "lib", "node_modules")
	type run struct {
		exe  string
		argv []string
	}
	var runs []run
	for _, p := range []string{
		testutil.AgentPath(dir),
		filepath.Join(nm, "@anthropic-ai", "claude-code", "bin", "claude.exe"),
		filepath.Join(nm, "@anthropic-ai", "claude-code-linux-arm64-musl", "claude"),
		filepath.Join(dir, ".vscode", "extensions", "anthropic.claude-code-2.0.1", "resources", "native-binary", "claude"),
		filepath.Join(nm, "@openai", "codex", "vendor", "x86_64-unknown-linux-musl", "codex", "codex"),
		filepath.Join(nm, "@anthropic-ai", "claude-code", "vendor", "ripgrep", "rg"), // not an agent
		filepath.Join(dir, "claude", "versions", "1.0"),                              // not an agent
	} {
		testutil.CopyFile(t, shellBinary(t), p, 0o700)
		runs = append(runs, run{p, []string{p, "-c", "exit 0"}}, run{p, []string{"ugrep", "-c", "exit 0"}})
	}
	node := testutil.CopyFile(t, shellBinary(t), filepath.Join(dir, "bin", "node"), 0o700)
	for _, script := range []string{
		filepath.Join(nm, "@anthropic-ai", "claude-code", "cli.js"),
		filepath.Join(nm, "@google", "gemini-cli", "bundle", "gemini.js"),
		filepath.Join(nm, "@openai", "codex", "bin", "codex.js"),
		filepath.Join(dir, "bin", "claude"),
		filepath.Join(dir, "srv", "server.js"), // not an agent
	} {
		if err := os.MkdirAll(filepath.Dir(script), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(script, []byte("exit 0\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run{node, []string{"node", script}})
	}
	pids := map[uint32]run{}
	for _, r := range runs {
		// Only the exec matters: busybox fails later on argv[0]s that
		// are not its applets, after the kernel has seen the exec.
		cmd := &exec.Cmd{Path: r.exe, Args: r.argv}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		pids[uint32(cmd.Process.Pid)] = r
	}
	m := marker(t)
	mustRun(t, exec.Command("/bin/true", m))
	_, evs := h.untilExecArg(m)
	agents := 0
	for pid, r := range pids {
		x := find(evs, execOf(pid))
		if len(x) != 1 {
			t.Errorf("%v: %d execs", r.argv, len(x))
			continue
		}
		want := sensor.RecogniseWith(testRecognisers(), r.exe, r.argv)
		if x[0].Exec.Recognised != want {
			t.Errorf("%s %q: kernel %v, Go %v", r.exe, r.argv, x[0].Exec.Recognised, want)
		}
		if want != sensor.AgentNone {
			agents++
		}
	}
	// 5 native forms, codex again as "ugrep" (the veto is Claude's), 4 launchers.
	if agents != 10 {
		t.Errorf("%d runs recognised, want 10", agents)
	}
}

func TestRootQueueOverflowReported(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	// Sessions scope: only the test's own session is traced, so no other
	// process's exec, fork or exit (which wait for room) stalls the reader
	// before the file records it drops arrive. The session budget is off
	// (at the ring's size): with it, a file record of a session under its
	// budget waits for room too (TestRootSessionFloodSparesOtherSessionsFiles).
	s, err := New(Config{QueueSize: 1, LossInterval: time.Millisecond, RingBufferSize: 4 << 20, BudgetBytes: 4 << 20},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := make(chan sensor.Event) // nobody reads yet: Run blocks, the queue fills
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	// File records are dropped at a full queue (process records wait for
	// room: ring priority): the test process joins a session of its own
	// and opens a missing file.
	me := uint32(os.Getpid())
	if err := s.AddSessionMembers(map[uint32]sensor.SessionRef{me: {Root: sensor.ProcKey{PID: me, StartNs: 1}, Agent: sensor.AgentClaudeCode}}); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for range 200 {
		if f, err := os.Open(missing); err == nil {
			f.Close()
		}
	}
	// Wait (bounded) until the reader has dropped something: a condition,
	// not a sleep.
	deadline := time.Now().Add(guard)
	for s.Stats().QueueDrops == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no queue drops: %+v", s.Stats())
		}
		runtime.Gosched()
	}
	timer := time.NewTimer(guard)
	defer timer.Stop()
	for {
		select {
		case ev := <-out:
			if ev.Loss != nil && ev.Loss.Where == "queue" {
				if ev.Loss.Count == 0 {
					t.Errorf("empty loss event %+v", ev.Loss)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				return
			}
		case <-timer.C:
			t.Fatalf("no queue loss event; stats %+v", s.Stats())
		}
	}
}

func TestRootBatchedReadsDeliverEverything(t *testing.T) {
	// With batching the kernel does not wake the reader per record: the
	// flush deadline must still bring every record, the last one included.
	h := startSensor(t, Config{Scope: ScopeAll, FlushInterval: 2 * time.Millisecond})
	var pids []uint32
	for range 5 {
		cmd := exec.Command("/bin/true", "batched")
		mustRun(t, cmd)
		pids = append(pids, uint32(cmd.Process.Pid))
	}
	m := marker(t)
	mustRun(t, exec.Command("/bin/true", m))
	_, evs := h.untilExecArg(m)
	for _, pid := range pids {
		if len(find(evs, execOf(pid))) != 1 || len(find(evs, exitOf(pid))) != 1 {
			t.Errorf("pid %d: exec or exit missing", pid)
		}
	}
}
