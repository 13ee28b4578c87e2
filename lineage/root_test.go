package lineage_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/binid"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
	"github.com/lineaged/lineaged/tests/testutil"
)

// liveEngine is the engine with every live dependency, as cmd/lineaged
// wires it.
func liveEngine(t *testing.T) *lineage.Engine {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	in, err := binid.New(binid.Config{}, nil, &binid.Dpkg{Dir: "/var/lib/dpkg"}, log)
	if err != nil {
		t.Fatal(err)
	}
	// The wait is generous: this checks hashes, not speed, and the seed
	// hashes every binary on the host while other builds share the CPUs.
	e, err := lineage.New(lineage.Config{Scope: lineage.ScopeAll, EnrichWait: 2 * time.Minute}, lineage.Deps{
		Host: lineage.LocalHost{}, Boot: lineage.LocalBoot{}, Proc: lineage.ProcFS{Root: "/proc"},
		Binaries: in, Users: &lineage.Passwd{Path: "/etc/passwd"},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func readProc(t *testing.T, pid int) *procfs.Proc {
	t.Helper()
	for range 2000 {
		p, err := procfs.Read("/proc", uint32(pid))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Argv) > 0 {
			return p
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("pid %d never completed its exec", pid)
	return nil
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// childOf waits for the first child of pid to exec.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	for range 2000 {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			c, _ := strconv.Atoi(f[0])
			if p := readProc(t, c); p.Exe != "" && !strings.HasSuffix(p.Exe, "/dash") && !strings.HasSuffix(p.Exe, "/sh") {
				return c
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no child")
	return 0
}

func execOf(p *procfs.Proc, parent sensor.ProcKey) sensor.Event {
	return sensor.Event{
		Header: sensor.Header{Kind: sensor.KindExec, KtimeNs: p.Key.StartNs + 1, Proc: p.Key, TID: p.PID},
		Exec: &sensor.Exec{Parent: parent, UID: p.UID, EUID: p.EUID, GID: p.GID, LoginUID: p.LoginUID,
			AuditSessionID: p.AuditSessionID, Comm: p.Comm, Filename: p.Exe, Exe: p.Exe, Argv: p.Argv, Binary: p.Binary},
	}
}

// TestLiveWorkloadAncestry drives the engine with events synthesized from a
// real child tree (sh -> sleep) and checks ancestry against /proc and every
// hash against an independent read of the file.
func TestLiveWorkloadAncestry(t *testing.T) {
	testutil.RequireRoot(t, "to read every ancestor's /proc/<pid>/exe")
	e := liveEngine(t)
	procs, err := procfs.Scan("/proc")
	if err != nil {
		t.Fatal(err)
	}
	e.Seed(procs)

	cmd := exec.Command("/bin/sh", "-c", "/bin/sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sh := readProc(t, cmd.Process.Pid)
	sl := readProc(t, childOf(t, cmd.Process.Pid))
	self := readProc(t, os.Getpid())

	in := make(chan sensor.Event, 8)
	in <- execOf(sh, self.Key)
	in <- sensor.Event{Header: sensor.Header{Kind: sensor.KindFork, KtimeNs: sl.Key.StartNs, Proc: sl.Key}, Fork: &sensor.Fork{Parent: sh.Key}}
	in <- execOf(sl, sh.Key)
	in <- sensor.Event{Header: sensor.Header{Kind: sensor.KindOpen, KtimeNs: sl.Key.StartNs + 2, Proc: sl.Key},
		File: &sensor.File{Op: sensor.FileOpen, Path: "/marker"}}
	close(in)
	out := make(chan *event.Event, 16)
	if err := e.Run(context.Background(), in, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	var last *event.Event
	for ev := range out {
		last = ev
	}
	if last == nil || last.File == nil || last.File.Path != "/marker" {
		t.Fatalf("marker not seen: %+v", last)
	}
	if len(last.Partial) != 0 {
		t.Errorf("partial %v", last.Partial)
	}
	p := last.Process
	if p.PID != sl.PID || p.Exe != "/usr/bin/sleep" || p.Binary == nil || p.Binary.SHA256 != fileSHA(t, "/usr/bin/sleep") {
		t.Fatalf("process = %+v binary %+v", p, p.Binary)
	}
	if p.Binary.Verdict != event.VerdictPackageVerified || p.Binary.Package != "coreutils" {
		t.Errorf("sleep verdict = %+v", p.Binary)
	}
	if p.User != "root" || last.Identity.User != "root" {
		t.Errorf("user = %q", p.User)
	}
	// Ancestry = the /proc parent chain of sleep, up to pid 1.
	var want []uint32
	for pid := sl.PPID; pid != 0; {
		q, err := procfs.Read("/proc", pid)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, pid)
		pid = q.PPID
	}
	var got []uint32
	for _, a := range last.Ancestry {
		got = append(got, a.PID)
	}
	if !slicesEqual(got, want) || got[len(got)-1] != 1 {
		t.Fatalf("ancestry %v, /proc says %v", got, want)
	}
	for _, a := range last.Ancestry {
		if _, err := os.Readlink("/proc/" + strconv.Itoa(int(a.PID)) + "/exe"); err != nil {
			// Not even root may read it (pid 1 of some sandboxes): the
			// event must say why rather than carry nothing.
			if a.Binary == nil || a.Binary.Verdict != event.VerdictError || !strings.Contains(a.Binary.Reason, "permission denied") {
				t.Errorf("ancestor %d with unreadable exe: binary %+v", a.PID, a.Binary)
			}
			continue
		}
		if a.Binary == nil || a.Binary.SHA256 == "" {
			t.Errorf("ancestor %d %s: binary %+v", a.PID, a.Exe, a.Binary)
			continue
		}
		path := a.Exe
		if _, err := os.Stat(path); err != nil {
			// memfd or deleted: only the process holds it.
			path = "/proc/" + strconv.Itoa(int(a.PID)) + "/exe"
		}
		if a.Binary.SHA256 != fileSHA(t, path) {
			t.Errorf("ancestor %d %s: sha %s differs from the file's", a.PID, a.Exe, a.Binary.SHA256)
		}
		if a.ExecID == "" || len(a.Argv) == 0 {
			t.Errorf("ancestor %d: exec id %q argv %q", a.PID, a.ExecID, a.Argv)
		}
	}
	if last.Ancestry[0].Exe != sh.Exe || last.Ancestry[1].PID != uint32(os.Getpid()) {
		t.Errorf("first ancestors = %s, %d", last.Ancestry[0].Exe, last.Ancestry[1].PID)
	}
	if last.Host.BootID == "" || last.Time.Before(time.Now().Add(-time.Minute)) || last.Time.After(time.Now()) {
		t.Errorf("host %+v time %v", last.Host, last.Time)
	}
}

func slicesEqual(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
