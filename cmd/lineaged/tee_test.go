package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/capture"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// teeService is a real `lineaged run` with its programs pinned under a
// temporary bpffs directory and its control socket in a temporary one.
type teeService struct {
	dir, cfg, live, sock string
	cmd                  *exec.Cmd
	stderr               *testutil.SyncBuffer
}

func startTeeService(t *testing.T, extra string, env ...string) *teeService {
	t.Helper()
	testutil.RequireRoot(t, "to load BPF programs")
	dir, err := os.MkdirTemp("", "lineaged-tee-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // nobody reads the capture
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	pin := "/sys/fs/bpf/lineaged-test-tee-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := kernel.Unpin(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("unpin %s: %v", pin, err)
		}
	})
	s := &teeService{dir: dir, cfg: filepath.Join(dir, "lineaged.yaml"), live: filepath.Join(dir, "live.jsonl"),
		sock: filepath.Join(dir, "ctl", "control.sock"), stderr: &testutil.SyncBuffer{}}
	conf := fmt.Sprintf("audit:\n  enabled: false\npolicy:\n  rules: \"\"\nhook:\n  socket: \"\"\nmetrics:\n  listen: \"\"\nkernel:\n  pin_path: %s\ncontrol:\n  socket: %s\n%s",
		pin, s.sock, extra)
	if err := os.WriteFile(s.cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(binary, "run", "--config", s.cfg, "--output", s.live)
	s.cmd.Env = append(append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir()), env...)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	testutil.WaitForText(t, 30*time.Second, s.stderr, "sensor started")
	return s
}

// stop ends the service with SIGTERM and checks it stopped cleanly.
func (s *teeService) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, s.stderr.String())
	}
}

// checkNothingLost: the service's output numbers its events 1..n with no
// gap and reports no loss.
func checkNothingLost(t *testing.T, path string) map[uint64]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bySeq := map[uint64]string{}
	var last uint64
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var ev struct {
			Seq  uint64 `json:"seq"`
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("live output line: %v: %s", err, line)
		}
		if ev.Seq != last+1 {
			t.Fatalf("live output: seq %d follows %d", ev.Seq, last)
		}
		if ev.Kind == "sensor.loss" {
			t.Fatalf("live output reports a loss: %s", line)
		}
		last = ev.Seq
		bySeq[ev.Seq] = line
	}
	return bySeq
}

// bpfFDs lists the BPF objects (programs, maps, links) pid holds.
func bpfFDs(pid int) []string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err == nil && strings.HasPrefix(l, "anon_inode:bpf") {
			out = append(out, l)
		}
	}
	return out
}

// With a sensor running, `lineaged capture` tees its stream over the
// control socket instead of loading programs: the capture replays (as
// nobody, with no /proc) to exactly the events the service wrote for that
// window, sensor.source aside, and the service's output lost nothing.
func TestCaptureTeesFromTheRunningService(t *testing.T) {
	s := startTeeService(t, "")
	for path, want := range map[string]os.FileMode{s.sock: 0o600, filepath.Dir(s.sock): 0o700} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want mode %o", path, st, err, want)
		}
	}
	agentPath := testutil.AgentPath(s.dir)
	testutil.CopyFile(t, "/bin/dash", agentPath, 0o755)
	capPath := filepath.Join(s.dir, "tee.lcap")
	capCmd := exec.Command(binary, "capture", "--config", s.cfg, "-o", capPath, "--duration", "5s")
	capErr := &testutil.SyncBuffer{}
	capCmd.Stderr = capErr
	if err := capCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer capCmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, capErr, "teeing the running sensor's stream")
	if fds := bpfFDs(capCmd.Process.Pid); len(fds) > 0 {
		t.Fatalf("the capture client holds BPF objects: %v", fds)
	}
	work := filepath.Join(s.dir, "work")
	script := "mkdir " + work + " && cd " + work + " && cat /etc/hostname >/dev/null && echo hi > f && mv f g && rm g && ls >/dev/null && /bin/true --password=hunter2-not-real && /bin/true tee-marker"
	if out, err := exec.Command(agentPath, "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("agent stand-in: %v\n%s", err, out)
	}
	if fds := bpfFDs(capCmd.Process.Pid); len(fds) > 0 {
		t.Fatalf("the capture client holds BPF objects: %v", fds)
	}
	if err := capCmd.Wait(); err != nil {
		t.Fatalf("capture: %v\n%s", err, capErr.String())
	}
	if !strings.Contains(capErr.String(), "capture written to "+capPath) || strings.Contains(capErr.String(), "own, unpinned programs") {
		t.Fatalf("capture stderr:\n%s", capErr.String())
	}
	if st, err := os.Stat(capPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("capture mode: %v %v", st, err)
	}
	testutil.WaitFor(t, 20*time.Second, "the marker in the live output", func() bool { return fileHasExec(t, s.live, "tee-marker") }, s.stderr.String)
	s.stop(t)
	live := checkNothingLost(t, s.live)
	if err := os.Chmod(capPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if n := captureHolds(t, capPath, "hunter2-not-real"); n != 0 {
		t.Fatalf("the secret argument is in %d records of the tee", n)
	}
	got, errOut, code := replayNoProc(t, "--config", s.cfg, capPath)
	if code != 0 {
		t.Fatalf("replay exit %d:\n%s", code, errOut)
	}
	lines := sameAsLive(t, live, got)
	marker := false
	for _, line := range lines {
		marker = marker || strings.Contains(line, `"tee-marker"`)
	}
	if !marker {
		t.Fatalf("the replayed tee (%d events) lacks the session's marker exec", len(lines))
	}
	t.Logf("tee replayed to %d events identical to the live ones", len(lines))
}

// sameAsLive checks that each line of a replayed tee is the live event of
// its seq (sensor.source aside) and that the seqs follow one another; it
// returns the lines.
func sameAsLive(t *testing.T, live map[uint64]string, got string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	for i, line := range lines {
		var ev struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("replay line %d: %v", i+1, err)
		}
		want := strings.ReplaceAll(live[ev.Seq], `"source":"live"`, `"source":"replay"`)
		if line != want {
			at := 0
			for at < min(len(line), len(want)) && line[at] == want[at] {
				at++
			}
			t.Fatalf("replay line %d (seq %d, of %d replayed) differs from the live event at byte %d:\nlive:   ...%s\nreplay: ...%s", i+1, ev.Seq, len(lines), at, want[max(at-300, 0):], line[max(at-300, 0):])
		}
		if i > 0 && !strings.Contains(lines[i-1], fmt.Sprintf(`"seq":%d,`, ev.Seq-1)) {
			t.Fatalf("replay line %d: seq %d does not follow the line before", i+1, ev.Seq)
		}
	}
	return lines
}

// Processes the service knew before the tee started act inside it: the
// session's root (seen exec'ing before the tee) runs a command and exits,
// and a child forked by a process that exited before the tee (so in the
// engine's table, gone from /proc) execs. The tee, replayed as nobody with
// no /proc, equals the service's events of its window line for line: the
// replay starts from the engine's table, not from /proc. With scope all,
// every process on the host is in it, and a loop of execs runs across the
// tee's start.
func TestTeeReplaysProcessesOlderThanTheTee(t *testing.T) {
	for _, scope := range []string{"agents", "all"} {
		t.Run(scope, func(t *testing.T) { teeOlderProcesses(t, scope) })
	}
}

func teeOlderProcesses(t *testing.T, scope string) {
	s := startTeeService(t, "scope: "+scope+"\n")
	if scope == "all" {
		busy := exec.Command("/bin/sh", "-c", "while :; do /bin/true busy; sleep 0.01; done")
		if err := busy.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { busy.Process.Kill(); busy.Wait() }()
	}
	agentPath := testutil.AgentPath(s.dir)
	testutil.CopyFile(t, "/bin/dash", agentPath, 0o755)
	goRoot, goOrphan := filepath.Join(s.dir, "go-root"), filepath.Join(s.dir, "go-orphan")
	for _, f := range []string{goRoot, goOrphan} {
		if err := unix.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The root runs /bin/true before the tee, and a shell that forks a
	// subshell and exits; the subshell waits (a builtin read: it stays its
	// parent's image) and, once let go inside the tee, execs.
	script := `/bin/true pre-marker; /bin/sh -c '{ read x < "$1"; exec /bin/true orphan-marker; } & exit 0' sh "$2"; read y < "$1"; /bin/true tee-marker; exit 0`
	root := exec.Command(agentPath, "-c", script, "agent", goRoot, goOrphan)
	var rootOut bytes.Buffer
	root.Stdout, root.Stderr = &rootOut, &rootOut
	if err := root.Start(); err != nil {
		t.Fatal(err)
	}
	defer root.Process.Kill()
	testutil.WaitFor(t, 20*time.Second, "the root's first exec in the live output", func() bool { return fileHasExec(t, s.live, "pre-marker") }, s.stderr.String)
	testutil.WaitFor(t, 20*time.Second, "the orphan's parent to exit", func() bool { return fileHasKind(t, s.live, "process.exit", "/bin/sh") }, s.stderr.String)

	capPath := filepath.Join(s.dir, "tee.lcap")
	capCmd := exec.Command(binary, "capture", "--config", s.cfg, "-o", capPath, "--duration", "4s")
	capErr := &testutil.SyncBuffer{}
	capCmd.Stderr = capErr
	if err := capCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer capCmd.Process.Kill()
	testutil.WaitForText(t, 30*time.Second, capErr, "teeing the running sensor's stream")
	time.Sleep(1500 * time.Millisecond) // the tee's first step: the next input, within the settle
	for _, f := range []string{goOrphan, goRoot} {
		if err := os.WriteFile(f, []byte("go\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := root.Wait(); err != nil {
		t.Fatalf("agent stand-in: %v\n%s", err, rootOut.String())
	}
	if err := capCmd.Wait(); err != nil {
		t.Fatalf("capture: %v\n%s", err, capErr.String())
	}
	for _, m := range []string{"tee-marker", "orphan-marker"} {
		testutil.WaitFor(t, 20*time.Second, m+" in the live output", func() bool { return fileHasExec(t, s.live, m) }, s.stderr.String)
	}
	s.stop(t)
	live := checkNothingLost(t, s.live)
	if err := os.Chmod(capPath, 0o644); err != nil {
		t.Fatal(err)
	}
	got, errOut, code := replayNoProc(t, "--config", s.cfg, capPath)
	if code != 0 {
		t.Fatalf("replay exit %d:\n%s", code, errOut)
	}
	lines := sameAsLive(t, live, got)
	for _, want := range []string{`"pre-marker"`, `"orphan-marker"`, `"tee-marker"`} {
		n := 0
		for _, line := range lines {
			if strings.Contains(line, `"kind":"process.exec"`) && strings.Contains(line, want) {
				n++
			}
		}
		if (want == `"pre-marker"`) != (n == 0) {
			t.Fatalf("%d execs with %s in the replayed tee (%d events)", n, want, len(lines))
		}
	}
	t.Logf("tee replayed to %d events identical to the live ones", len(lines))
}

// fileHasKind reports whether out holds an event of kind whose process's
// argv starts with argv0.
func fileHasKind(t *testing.T, out, kind, argv0 string) bool {
	t.Helper()
	data, err := os.ReadFile(out)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		var ev struct {
			Kind    string `json:"kind"`
			Process struct {
				Argv []string `json:"argv"`
			} `json:"process"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Kind == kind && len(ev.Process.Argv) > 0 && ev.Process.Argv[0] == argv0 {
			return true
		}
	}
	return false
}

// teeClient asks the control socket for a tee into f, as `lineaged
// capture` does, and returns the connection and the first answer.
func teeClient(t *testing.T, sock string, f *os.File) (*net.UnixConn, *bufio.Reader, controlReply) {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.WriteMsgUnix([]byte(`{"op":"tee"}`+"\n"), unix.UnixRights(int(f.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	return c, r, readReply(t, c, r)
}

func readReply(t *testing.T, c *net.UnixConn, r *bufio.Reader) controlReply {
	t.Helper()
	rep, err := readReplyErr(c, r)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// readReplyErr is readReply for another goroutine than the test's.
func readReplyErr(c *net.UnixConn, r *bufio.Reader) (controlReply, error) {
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	line, err := r.ReadBytes('\n')
	if err != nil {
		return controlReply{}, fmt.Errorf("control answer: %w", err)
	}
	var rep controlReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return controlReply{}, fmt.Errorf("control answer %q: %w", line, err)
	}
	return rep, nil
}

// runExecs runs n short processes, then one carrying marker.
func runExecs(t *testing.T, n int, marker string) {
	t.Helper()
	script := "i=0; while [ $i -lt " + strconv.Itoa(n) + " ]; do /bin/true; i=$((i+1)); done; /bin/true " + marker
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("execs: %v\n%s", err, out)
	}
}

// A client that never reads its tee (a pipe nobody drains) is dropped
// once its bounded queue fills, with the reason at both ends; the service
// goes on and loses nothing.
func TestTeeSlowClientIsDropped(t *testing.T) {
	s := startTeeService(t, "scope: all\n", "LINEAGED_CONTROL_TEE_QUEUE=64")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	c, r, first := teeClient(t, s.sock, pw)
	pw.Close()
	defer c.Close()
	if !first.OK {
		t.Fatalf("tee refused: %+v", first)
	}
	// Rounds of execs until the queue behind the full pipe overflows: how
	// many that takes depends on how the capture's blocks fill, which
	// depends on the host's load (one round is enough on a quiet one).
	type answer struct {
		rep controlReply
		err error
	}
	replies := make(chan answer, 1)
	go func() {
		rep, err := readReplyErr(c, r)
		replies <- answer{rep, err}
	}()
	var got answer
	for round := 0; ; round++ {
		runExecs(t, 300, "slow-tee-marker-1")
		select {
		case got = <-replies:
		case <-time.After(2 * time.Second):
			if round < 20 {
				continue
			}
			got = <-replies
		}
		break
	}
	if got.err != nil {
		t.Fatal(got.err)
	}
	last := got.rep
	if !strings.Contains(last.Error, "tee dropped: the client fell behind") {
		t.Fatalf("final answer %+v, want the tee dropped", last)
	}
	testutil.WaitForText(t, 10*time.Second, s.stderr, "tee dropped: the client fell behind")
	// The service goes on: later events are written.
	runExecs(t, 1, "slow-tee-marker-2")
	testutil.WaitFor(t, 20*time.Second, "the later marker in the live output", func() bool { return fileHasExec(t, s.live, "slow-tee-marker-2") }, s.stderr.String)
	s.stop(t)
	checkNothingLost(t, s.live)
	if !fileHasExec(t, s.live, "slow-tee-marker-1") {
		t.Fatal("the service lost the events of the dropped tee's window")
	}
}

// A capture client killed mid-tee ends the tee: the service logs it, goes
// on, and the file holds a whole capture up to the end.
func TestTeeClientKilled(t *testing.T) {
	s := startTeeService(t, "scope: all\n")
	capPath := filepath.Join(s.dir, "killed.lcap")
	capCmd := exec.Command(binary, "capture", "--config", s.cfg, "-o", capPath)
	capErr := &testutil.SyncBuffer{}
	capCmd.Stderr = capErr
	if err := capCmd.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitForText(t, 30*time.Second, capErr, "teeing the running sensor's stream")
	runExecs(t, 5, "killed-tee-marker-1")
	if err := capCmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	capCmd.Wait()
	testutil.WaitForText(t, 10*time.Second, s.stderr, `"msg":"tee ended"`)
	runExecs(t, 1, "killed-tee-marker-2")
	testutil.WaitFor(t, 20*time.Second, "the later marker in the live output", func() bool { return fileHasExec(t, s.live, "killed-tee-marker-2") }, s.stderr.String)
	s.stop(t)
	checkNothingLost(t, s.live)
	if err := os.Chmod(capPath, 0o644); err != nil {
		t.Fatal(err)
	}
	// A whole capture: every block and record reads back, up to the stop
	// mark the sensor wrote when the client went away.
	f, err := os.Open(capPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cr, err := capture.NewReader(f, capture.ReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var lastRec capture.Record
	n := 0
	for {
		rec, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the killed client's tee, record %d: %v", n, err)
		}
		lastRec = capture.Record{Type: rec.Type, Payload: bytes.Clone(rec.Payload)}
		n++
	}
	if lastRec.Type != capture.TypeMark || !strings.Contains(string(lastRec.Payload), "the client stopped it") {
		t.Fatalf("the killed client's tee (%d records) does not end with the stop mark: %d %s", n, lastRec.Type, lastRec.Payload)
	}
}

// With no sensor on the control socket, capture says so and loads its own
// programs.
func TestCaptureWithoutServiceLoadsItsOwn(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir := t.TempDir()
	capPath := filepath.Join(dir, "own.lcap")
	cmd := exec.Command(binary, "capture", "-o", capPath, "--duration", "2s")
	cmd.Env = append(os.Environ(), "LINEAGED_CONTROL_SOCKET="+filepath.Join(dir, "none", "control.sock"),
		"LINEAGED_HOOK_SOCKET=", "LINEAGED_METRICS_LISTEN=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("capture: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "no running sensor answers on") || !strings.Contains(string(out), "own, unpinned programs") {
		t.Fatalf("capture did not say it loads its own programs:\n%s", out)
	}
}

// Only root or the sensor's own user may ask for a tee: another user that
// reaches the socket (its directory opened up here) is refused by its
// SO_PEERCRED credentials, and nothing is teed.
func TestTeeRefusesOtherUsers(t *testing.T) {
	s := startTeeService(t, "")
	if err := os.Chmod(filepath.Dir(s.sock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(s.dir, "nobody")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "capture", "-o", filepath.Join(out, "x.lcap"), "--duration", "1s")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LINEAGED_CONTROL_SOCKET=" + s.sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "uid 65534 may not use the control socket") {
		t.Fatalf("capture as nobody: %v\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(out, "x.lcap")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused tee left its file: %v", err)
	}
	testutil.WaitForText(t, 5*time.Second, s.stderr, "control caller refused")
}
