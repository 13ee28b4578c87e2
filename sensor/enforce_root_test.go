//go:build linux

package sensor

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRootDenyExec runs denied and allowed copies of /bin/true from a
// session member (this test process, put into the kernel sessions map, so
// its children inherit membership at fork) and from a non-member. Which
// outcome is right depends on the path the sensor took, which it reports:
// lsm (the exec fails with EPERM, record "blocked") or tracepoint (the
// image dies of SIGKILL, record "killed"). The subtest is named after the
// path, so a kernel-matrix table shows which one ran on each kernel.
func TestRootDenyExec(t *testing.T) {
	requireRoot(t)
	trueBin, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	denied := copyTo(t, trueBin, filepath.Join(dir, "denied", "true-denied"))
	prefix := filepath.Join(dir, "denydir") + "/"
	underPrefix := copyTo(t, trueBin, filepath.Join(dir, "denydir", "sub", "tool"))
	allowed := copyTo(t, trueBin, filepath.Join(dir, "allowed", "true-denied"))
	// A sibling whose name extends the prefix's directory name is not
	// under it.
	lookalike := copyTo(t, trueBin, filepath.Join(dir, "denydir-not", "tool"))

	h := startSensor(t, Config{Scope: ScopeAll, DenyExec: []string{denied, prefix}})
	name, reason := h.s.Hooks()
	t.Logf("enforcement: %s", HooksDetail(name, reason))
	switch name {
	case HooksLSM:
		// The sensor only keeps the LSM path when the kernel runs it.
		if ok, err := bpfLSMActive(lsmListFile); !ok {
			t.Fatalf("sensor chose the LSM path but %v", err)
		}
	case HooksTracepoint:
		if reason == "" {
			t.Fatal("tracepoint path without a reason")
		}
	default:
		t.Fatalf("unknown hooks %q", name)
	}
	t.Run(name, func(t *testing.T) { denyExecCases(t, h, name, denied, prefix, underPrefix, allowed, lookalike) })
}

func denyExecCases(t *testing.T, h *harness, hooks, denied, prefix, underPrefix, allowed, lookalike string) {
	self := uint32(os.Getpid())
	ref := SessionRef{Root: ProcKey{PID: self, StartNs: tickNs}, Agent: AgentClaudeCode}
	if err := h.s.AddSessionMembers(map[uint32]SessionRef{self: ref}); err != nil {
		t.Fatal(err)
	}
	member := true
	leave := func() {
		if member {
			if err := h.s.maps.Sessions.Delete(self); err != nil {
				t.Errorf("leave session: %v", err)
			}
			member = false
		}
	}
	defer leave()

	type run struct {
		path, rule string
		pid        uint32
	}
	var deniedRuns []run
	for _, c := range []struct{ path, rule string }{{denied, denied}, {underPrefix, prefix}} {
		cmd := exec.Command(c.path)
		err := cmd.Run()
		switch hooks {
		case HooksLSM:
			if !errors.Is(err, syscall.EPERM) {
				t.Errorf("member exec of %s: %v, want EPERM", c.path, err)
			}
			deniedRuns = append(deniedRuns, run{c.path, c.rule, 0})
		case HooksTracepoint:
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("member exec of %s: %v, want death by SIGKILL", c.path, err)
			}
			ws := ee.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Errorf("member exec of %s: wait status %v, want killed by SIGKILL", c.path, ws)
			}
			deniedRuns = append(deniedRuns, run{c.path, c.rule, uint32(cmd.Process.Pid)})
		}
	}
	var allowedPids []uint32
	for _, p := range []string{allowed, lookalike} {
		cmd := exec.Command(p)
		if err := cmd.Run(); err != nil {
			t.Errorf("member exec of allowed %s: %v", p, err)
		}
		allowedPids = append(allowedPids, uint32(cmd.Process.Pid))
	}
	leave()
	outside := exec.Command(denied)
	if err := outside.Run(); err != nil {
		t.Errorf("non-member exec of the denied path: %v, want it to run", err)
	}
	outPid := uint32(outside.Process.Pid)

	m := marker(t)
	mustRun(t, exec.Command("/bin/true", m))
	_, evs := h.untilExecArg(m)

	denies := find(evs, func(ev Event) bool { return ev.Kind == KindDeny })
	for _, d := range denies {
		t.Logf("deny: pid %d %q rule %q action %s", d.Proc.PID, d.Deny.Path, d.Deny.Rule, d.Deny.Action)
	}
	if len(denies) != len(deniedRuns) {
		t.Fatalf("%d deny records, want %d", len(denies), len(deniedRuns))
	}
	want := DenyKilled
	if hooks == HooksLSM {
		want = DenyBlocked
	}
	for i, r := range deniedRuns {
		d := denies[i]
		if d.Deny.Path != r.path || d.Deny.Rule != r.rule || d.Deny.Action != want || d.Deny.PathTruncated {
			t.Errorf("deny record %+v, want path %q rule %q action %s", *d.Deny, r.path, r.rule, want)
		}
		if d.Session != ref {
			t.Errorf("deny record session %+v, want %+v", d.Session, ref)
		}
		if hooks == HooksLSM {
			// The exec failed: the forked child reports, still running
			// the test binary's image; no exec of the denied file.
			if n := len(find(evs, func(ev Event) bool { return ev.Exec != nil && ev.Exec.Exe == r.path })); n != 0 {
				t.Errorf("%d exec records of blocked %s", n, r.path)
			}
			continue
		}
		if d.Proc.PID != r.pid {
			t.Errorf("deny record names pid %d, want %d", d.Proc.PID, r.pid)
		}
		if x := find(evs, execOf(r.pid)); len(x) != 1 || x[0].Exec.Exe != r.path {
			t.Errorf("exec records of killed pid %d: %d", r.pid, len(x))
		}
		if e := find(evs, exitOf(r.pid)); len(e) != 1 || e[0].Exit.Signal != int32(syscall.SIGKILL) {
			t.Errorf("exit of killed pid %d: %+v", r.pid, e)
		}
	}
	for _, pid := range append(allowedPids, outPid) {
		if e := find(evs, exitOf(pid)); len(e) != 1 || e[0].Exit.Code != 0 || e[0].Exit.Signal != 0 {
			t.Errorf("exit of allowed pid %d: %+v", pid, e)
		}
	}
}
