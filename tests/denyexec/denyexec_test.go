//go:build linux

// Package denyexec tests deny-exec end to end through the sensor's public
// API, on this host and in every kernel-matrix guest (tests/vmtest
// -pkgs ./tests/denyexec). The expected outcome follows the enforcement
// path the sensor reports: "lsm" (the exec fails with EPERM, record
// "blocked") or "tracepoint" (the image dies of SIGKILL, record "killed").
// The subtest is named after that path, so the matrix table shows which
// one each kernel ran.
package denyexec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/kerneltest"
	"github.com/lineaged/lineaged/tests/testutil"
)

// TestMain lifts RLIMIT_MEMLOCK: kernels before 5.11 charge BPF maps
// against it, and the sensor's maps do not fit the default.
func TestMain(m *testing.M) { testutil.Main(m) }

// guard only stops a hung test; the test ends on a marker exec.
const guard = 60 * time.Second

// member is a shell blocked on stdin that, once put into the kernel
// sessions map, execs path: the denied image replaces the member itself,
// so its wait status is the test's to read.
type member struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr strings.Builder
}

func startMember(t *testing.T, s *kernel.Sensor, ref sensor.SessionRef, path string, args ...string) *member {
	t.Helper()
	m := &member{cmd: exec.Command("/bin/sh", append([]string{"-c", `read go; exec "$0" "$@"`, path}, args...)...)}
	m.cmd.Stderr = &m.stderr
	var err error
	if m.stdin, err = m.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(m.cmd.Process.Pid)
	if ref.InSession() {
		if err := s.AddSessionMembers(map[uint32]sensor.SessionRef{pid: ref}); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// run lets the member exec and returns its wait error.
func (m *member) run() error {
	io.WriteString(m.stdin, "go\n")
	m.stdin.Close()
	return m.cmd.Wait()
}

func (m *member) pid() uint32 { return uint32(m.cmd.Process.Pid) }

func TestRootDenyExec(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	trueBin, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	denied := testutil.CopyFile(t, trueBin, filepath.Join(dir, "denied", "true-denied"), 0o700)
	prefix := filepath.Join(dir, "denydir") + "/"
	underPrefix := testutil.CopyFile(t, trueBin, filepath.Join(dir, "denydir", "sub", "tool"), 0o700)
	// Same file name as the denied one, elsewhere; and a sibling whose
	// name extends the prefix's directory name: neither is denied.
	allowed := testutil.CopyFile(t, trueBin, filepath.Join(dir, "allowed", "true-denied"), 0o700)
	lookalike := testutil.CopyFile(t, trueBin, filepath.Join(dir, "denydir-not", "tool"), 0o700)
	// A hard link to the denied file: the same inode under a name no path
	// rule holds, denied by the file's identity on its first exec.
	hardlink := filepath.Join(dir, "elsewhere", "linked")
	if err := os.MkdirAll(filepath.Dir(hardlink), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(denied, hardlink); err != nil {
		t.Fatal(err)
	}
	entries := []string{denied, prefix}

	s, out := runSensor(t, kernel.Config{
		Scope:      kernel.ScopeAll,
		DenyKeys:   policy.DenyKeys(entries, filepath.EvalSymlinks),
		DenyInodes: denyInodes(entries),
	})

	hooks, reason := s.Hooks()
	t.Logf("enforcement: %s", kernel.HooksDetail(hooks, reason))
	lsmList, lerr := os.ReadFile("/sys/kernel/security/lsm")
	t.Logf("active LSMs: %q (%v)", strings.TrimSpace(string(lsmList)), lerr)
	switch hooks {
	case kernel.HooksLSM:
		if !slices.Contains(strings.Split(strings.TrimSpace(string(lsmList)), ","), "bpf") {
			t.Fatalf("sensor chose the LSM path but the active LSMs are %q", lsmList)
		}
	case kernel.HooksTracepoint:
		if reason == "" {
			t.Fatal("tracepoint path without a reason")
		}
		if active, list := bpfLSMActive(); active {
			t.Fatalf("bpf is an active LSM (%s) but the sensor took the tracepoint fallback (%s): the LSM path must be used here", list, reason)
		}
	default:
		t.Fatalf("unknown enforcement path %q", hooks)
	}
	t.Run(hooks, func(t *testing.T) {
		cases(t, s, out, hooks, denied, hardlink, underPrefix, allowed, lookalike)
	})
}

func cases(t *testing.T, s *kernel.Sensor, out <-chan sensor.Event, hooks, denied, hardlink, underPrefix, allowed, lookalike string) {
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: uint32(os.Getpid()), StartNs: 10_000_000}, Agent: sensor.AgentClaudeCode}

	type deniedRun struct {
		path string
		rule uint32 // index of the deny_exec entry
		pid  uint32
	}
	var denies []deniedRun
	for _, c := range []struct {
		path string
		rule uint32
	}{{denied, 0}, {underPrefix, 1}, {hardlink, 0}} {
		m := startMember(t, s, ref, c.path)
		err := m.run()
		denies = append(denies, deniedRun{c.path, c.rule, m.pid()})
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("member exec of %s: %v, want it denied", c.path, err)
			continue
		}
		ws := ee.Sys().(syscall.WaitStatus)
		switch hooks {
		case kernel.HooksLSM:
			// The shell's exec failed: it exits 126 naming EPERM.
			if ws.Signaled() || ws.ExitStatus() != 126 || !strings.Contains(strings.ToLower(m.stderr.String()), "not permitted") {
				t.Errorf("member exec of %s: %v, stderr %q; want exit 126 and EPERM", c.path, ws, m.stderr.String())
			}
		case kernel.HooksTracepoint:
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Errorf("member exec of %s: wait status %v, want killed by SIGKILL", c.path, ws)
			}
		}
	}
	var fine []uint32
	for _, p := range []string{allowed, lookalike} {
		m := startMember(t, s, ref, p)
		if err := m.run(); err != nil {
			t.Errorf("member exec of allowed %s: %v %s", p, err, m.stderr.String())
		}
		fine = append(fine, m.pid())
	}
	outside := startMember(t, s, sensor.SessionRef{}, denied)
	if err := outside.run(); err != nil {
		t.Errorf("non-member exec of the denied path: %v %s, want it to run", err, outside.stderr.String())
	}
	fine = append(fine, outside.pid())

	marker := fmt.Sprintf("lineaged-denyexec-marker-%d", time.Now().UnixNano())
	if err := exec.Command("/bin/true", marker).Run(); err != nil {
		t.Fatal(err)
	}
	var evs []sensor.Event
	timer := time.NewTimer(guard)
	defer timer.Stop()
wait:
	for {
		select {
		case ev := <-out:
			evs = append(evs, ev)
			if ev.Exec != nil && slices.Contains(ev.Exec.Argv, marker) {
				break wait
			}
		case <-timer.C:
			t.Fatalf("no marker within %s (%d events)", guard, len(evs))
		}
	}
	find := func(pred func(sensor.Event) bool) []sensor.Event {
		var r []sensor.Event
		for _, ev := range evs {
			if pred(ev) {
				r = append(r, ev)
			}
		}
		return r
	}

	got := find(func(ev sensor.Event) bool { return ev.Kind == sensor.KindDeny })
	for _, d := range got {
		t.Logf("deny: pid %d %q rule %d action %s", d.Proc.PID, d.Deny.Path, d.Deny.RuleIndex, d.Deny.Action)
	}
	if len(got) != len(denies) {
		t.Fatalf("%d deny records, want %d", len(got), len(denies))
	}
	want := sensor.DenyKilled
	if hooks == kernel.HooksLSM {
		want = sensor.DenyBlocked
	}
	for i, r := range denies {
		d := got[i]
		if d.Proc.PID != r.pid || d.Deny.Path != r.path || d.Deny.RuleIndex != r.rule || d.Deny.Action != want || d.Deny.PathTruncated {
			t.Errorf("deny record pid %d %+v, want pid %d path %q rule %d action %s", d.Proc.PID, *d.Deny, r.pid, r.path, r.rule, want)
		}
		if d.Session != ref {
			t.Errorf("deny record session %+v, want %+v", d.Session, ref)
		}
		execs := find(func(ev sensor.Event) bool { return ev.Exec != nil && ev.Proc.PID == r.pid && ev.Exec.Exe == r.path })
		exits := find(func(ev sensor.Event) bool { return ev.Exit != nil && ev.Proc.PID == r.pid })
		if len(exits) != 1 {
			t.Errorf("%d exit records of pid %d", len(exits), r.pid)
			continue
		}
		switch hooks {
		case kernel.HooksLSM:
			// Nothing ran: no exec record of the denied file.
			if len(execs) != 0 || exits[0].Exit.Code != 126 {
				t.Errorf("blocked %s: %d exec records, exit %+v", r.path, len(execs), *exits[0].Exit)
			}
		case kernel.HooksTracepoint:
			// Past the point of no return: the exec is reported, then the
			// death by SIGKILL.
			if len(execs) != 1 || exits[0].Exit.Signal != int32(syscall.SIGKILL) {
				t.Errorf("killed %s: %d exec records, exit %+v", r.path, len(execs), *exits[0].Exit)
			}
		}
	}
	for _, pid := range fine {
		e := find(func(ev sensor.Event) bool { return ev.Exit != nil && ev.Proc.PID == pid })
		if len(e) != 1 || e[0].Exit.Code != 0 || e[0].Exit.Signal != 0 {
			t.Errorf("exit of allowed pid %d: %+v", pid, e)
		}
	}
}

// denyInodes is what cmd/lineaged hands the kernel for entries.
func denyInodes(entries []string) map[kernel.DenyInode]uint32 {
	m := map[kernel.DenyInode]uint32{}
	for f, i := range policy.DenyInodes(entries, policy.StatFile) {
		m[kernel.DenyInode(f)] = i
	}
	return m
}

// TestRootDoctorEnforcement: doctor's enforcement row names the path a
// sensor with a deny list really takes, and its fentry row is there. A
// kernel that runs BPF LSM programs has BPF trampolines, so fentry must
// attach wherever the LSM path is taken.
func TestRootDoctorEnforcement(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	r := kernel.Doctor(kernel.Config{}, nil)
	if err := r.Err(); err != nil {
		t.Fatalf("doctor: %v", err)
	}
	rows := map[string]kernel.Check{}
	for _, c := range r.Checks {
		rows[c.Name] = c
	}
	enf, ok := rows["enforcement"]
	if !ok || !enf.OK {
		t.Fatalf("enforcement row %+v", enf)
	}
	fentry, ok := rows["attach fentry"]
	if !ok || fentry.Detail == "" {
		t.Fatalf("fentry row %+v", fentry)
	}
	t.Logf("doctor: enforcement: %s; fentry: ok=%v %s", enf.Detail, fentry.OK, fentry.Detail)

	s, err := kernel.New(kernel.Config{DenyKeys: map[string]uint32{"/nonexistent/denied": 0}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if want := kernel.HooksDetail(s.Hooks()); enf.Detail != want {
		t.Errorf("doctor says %q, the sensor took %q", enf.Detail, want)
	}
	if name, _ := s.Hooks(); name == kernel.HooksLSM && !fentry.OK {
		t.Errorf("LSM path in use but fentry failed: %s", fentry.Detail)
	}
}

// bpfLSMActive reports whether bpf is among the active LSMs, with the list
// read from /sys/kernel/security/lsm. Where it is, the sensor must take the
// LSM path, and a fallback to the tracepoint path is a regression (the LSM
// program was refused or not chosen), not an alternative. Without
// securityfs the list cannot be read and nothing is asserted.
func bpfLSMActive() (active bool, list string) {
	b, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		return false, ""
	}
	list = strings.TrimSpace(string(b))
	return slices.Contains(strings.Split(list, ","), "bpf"), list
}

// actuator kills through the sensor, as cmd/lineaged's does.
type actuator struct{ s *kernel.Sensor }

func (a actuator) KillProcess(key sensor.ProcKey) error { return a.s.KillProcess("/proc", key) }
func (a actuator) KillSession(root sensor.ProcKey) (int, error) {
	return a.s.KillSession("/proc", root)
}

// TestRootDenyExecCopyByHash: a renamed copy of a binary denied by SHA-256
// (a new inode no rule names) runs on its first exec in a session until
// the policy stage sees its hash, kills it and adds its (dev, inode) to the
// kernel map; its second exec is then refused in the kernel. Outside the
// session it runs. The exec event the stage judges is built here as
// lineage builds it: the kernel's exec record with binid's identity of
// /proc/<pid>/exe (SHA-256 of the file, stat(2) dev and inode).
func TestRootDenyExecCopyByHash(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	sleepBin, err := filepath.EvalSymlinks("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	copied := testutil.CopyFile(t, sleepBin, filepath.Join(dir, "renamed", "snooze"), 0o700)
	sum, err := fileSHA256(sleepBin)
	if err != nil {
		t.Fatal(err)
	}
	entries := []string{"/nonexistent/other", policy.SHA256Prefix + sum}
	if err := policy.ValidateDenyExec(entries); err != nil {
		t.Fatal(err)
	}

	s, out := runSensor(t, kernel.Config{
		Scope:      kernel.ScopeAll,
		DenyKeys:   policy.DenyKeys(entries, filepath.EvalSymlinks),
		DenyInodes: denyInodes(entries),
		DenyLater:  policy.DenyByHash(entries),
	})
	hooks, reason := s.Hooks()
	t.Logf("enforcement: %s", kernel.HooksDetail(hooks, reason))

	boot := time.Unix(1_700_000_000, 0)
	var actions []*event.Event
	var mu sync.Mutex
	killer, err := policy.NewKiller(policy.KillConfig{Actuator: actuator{s}, Boot: boot, Emit: func(ev *event.Event) {
		mu.Lock()
		actions = append(actions, ev)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close()
	stage, err := policy.New(policy.Config{DenyExec: entries, Kill: killer,
		DenyFile: func(f policy.DenyFile, idx uint32) error { return s.DenyInode(kernel.DenyInode(f), idx) }})
	if err != nil {
		t.Fatal(err)
	}

	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: uint32(os.Getpid()), StartNs: 10_000_000}, Agent: sensor.AgentClaudeCode}
	execOf := func(pid uint32) sensor.Event {
		t.Helper()
		timer := time.NewTimer(guard)
		defer timer.Stop()
		for {
			select {
			case ev := <-out:
				if ev.Exec != nil && ev.Proc.PID == pid && ev.Exec.Exe == copied {
					return ev
				}
			case <-timer.C:
				t.Fatalf("no exec record of pid %d within %s", pid, guard)
			}
		}
	}

	// First exec in the session: the copy runs until the stage, given its
	// hash, kills it.
	first := startMember(t, s, ref, copied, "30")
	io.WriteString(first.stdin, "go\n")
	first.stdin.Close()
	rec := execOf(first.pid())
	st, err := os.Stat(fmt.Sprintf("/proc/%d/exe", first.pid()))
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	exeSum, err := fileSHA256(fmt.Sprintf("/proc/%d/exe", first.pid()))
	if err != nil {
		t.Fatal(err)
	}
	ev := &event.Event{
		Kind: event.KindProcessExec,
		Process: &event.Process{PID: rec.Proc.PID, ExecID: "copy-1", StartTime: boot.Add(time.Duration(rec.Proc.StartNs)),
			Exe: copied, Binary: &event.Binary{Path: copied, SHA256: exeSum, Dev: uint64(sys.Dev), Inode: sys.Ino}},
		Agent: &event.Agent{Name: "claude-code", RootExecID: "root", Role: event.RoleTool},
	}
	res := stage.Process(ev)
	var kinds []string
	for _, r := range res[1:] {
		kinds = append(kinds, r.Kind+"/"+r.Alert.Action+"/"+r.Alert.Result)
	}
	t.Logf("stage: %v", kinds)
	if len(res) != 3 || res[1].Kind != event.KindPolicyAlert || res[2].Alert.Action != policy.ActionDenyExec || res[2].Alert.Result != policy.ResultDone {
		t.Fatalf("stage gave %v, want the alert and a done deny-exec action", kinds)
	}
	err = first.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("first exec of the copy: %v, want it killed by the stage", err)
	}
	killer.Close()
	mu.Lock()
	if len(actions) != 1 || actions[0].Alert.Action != policy.ActionKillProcess || actions[0].Alert.Result != policy.ResultDone {
		t.Errorf("kill actions %d: %+v", len(actions), actions)
	}
	mu.Unlock()

	// Second exec in the session: refused in the kernel by the copy's
	// identity, reported with the sha256 entry's index.
	second := startMember(t, s, ref, copied, "0")
	err = second.run()
	if !errors.As(err, &ee) {
		t.Fatalf("second exec of the copy: %v, want it denied in the kernel", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	switch hooks {
	case kernel.HooksLSM:
		if ws.Signaled() || ws.ExitStatus() != 126 {
			t.Errorf("second exec: %v, stderr %q; want exit 126 (EPERM)", ws, second.stderr.String())
		}
	case kernel.HooksTracepoint:
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("second exec: %v, want SIGKILL", ws)
		}
	}
	// Outside the session the copy runs.
	outside := startMember(t, s, sensor.SessionRef{}, copied, "0")
	if err := outside.run(); err != nil {
		t.Errorf("non-member exec of the copy: %v %s, want it to run", err, outside.stderr.String())
	}
	timer := time.NewTimer(guard)
	defer timer.Stop()
	for {
		select {
		case ev := <-out:
			if ev.Kind != sensor.KindDeny {
				continue
			}
			if ev.Proc.PID != second.pid() || ev.Deny.Path != copied || ev.Deny.RuleIndex != 1 {
				t.Errorf("deny record pid %d %+v, want pid %d path %q rule 1", ev.Proc.PID, *ev.Deny, second.pid(), copied)
			}
			return
		case <-timer.C:
			t.Fatalf("no deny record within %s", guard)
		}
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// runSensor loads the sensor with cfg and runs it until the test ends,
// when it is stopped and closed; out receives its events.
func runSensor(t *testing.T, cfg kernel.Config) (*kernel.Sensor, chan sensor.Event) {
	t.Helper()
	return kerneltest.Run(t, cfg, 4096)
}
