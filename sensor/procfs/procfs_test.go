package procfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeProc writes a /proc/<pid> directory with the given files.
func fakeProc(t *testing.T, root string, pid int, files map[string]string, links map[string]string) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func statLine(pid int, comm string, ppid, ttyNr, flags, start int) string {
	// Fields 3.. : state ppid pgrp session tty_nr tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice num_threads
	// itrealvalue starttime vsize ...
	return strconv.Itoa(pid) + " (" + comm + ") S " + strconv.Itoa(ppid) + " 100 100 " +
		strconv.Itoa(ttyNr) + " -1 " + strconv.Itoa(flags) + " 0 0 0 0 1 2 0 0 20 0 1 0 " +
		strconv.Itoa(start) + " 123456 200 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
}

const statusTmpl = "Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\nPid:\t42\nPPid:\t1\n" +
	"Uid:\t1000\t0\t0\t0\nGid:\t100\t101\t101\t101\nGroups:\t\n"

func TestReadFake(t *testing.T) {
	root := t.TempDir()
	target := filepath.Join(root, "bin-python3")
	if err := os.WriteFile(target, []byte("#!binary"), 0o700); err != nil {
		t.Fatal(err)
	}
	pts := 136<<8 | 3
	fakeProc(t, root, 42, map[string]string{
		"stat":      statLine(42, "we (ird) ) name", 7, pts, 0x400100, 12345),
		"status":    statusTmpl,
		"loginuid":  "1000",
		"sessionid": "4",
		"cmdline":   "python3\x00-c\x00print(1)\x00\x00\xff\xfe\x00",
		"cgroup":    "0::/user.slice/user-1000.slice/session-4.scope\n",
		"environ":   "HOME=/root\x00CLAUDE_CODE_SESSION_ID=abc-123\x00EMPTY=\x00",
	}, map[string]string{
		"exe": target,
		"cwd": "/home/u/dir with space",
	})
	p, err := Read(root, 42)
	if err != nil {
		t.Fatal(err)
	}
	if p.Comm != "we (ird) ) name" {
		t.Errorf("comm = %q", p.Comm)
	}
	if p.PPID != 7 || p.Key.PID != 42 || p.Key.StartNs != 12345*TicksToNs || p.StartTicks != 12345 {
		t.Errorf("ppid/key = %d %+v", p.PPID, p.Key)
	}
	if p.UID != 1000 || p.EUID != 0 || p.GID != 100 || p.EGID != 101 {
		t.Errorf("ids = %d %d %d %d", p.UID, p.EUID, p.GID, p.EGID)
	}
	if p.LoginUID != 1000 || p.AuditSessionID != 4 {
		t.Errorf("loginuid/session = %d %d", p.LoginUID, p.AuditSessionID)
	}
	wantArgv := []string{"python3", "-c", "print(1)", "", "\xff\xfe"}
	if !reflect.DeepEqual(p.Argv, wantArgv) {
		t.Errorf("argv = %q, want %q", p.Argv, wantArgv)
	}
	if p.Exe != target || p.ExeDeleted {
		t.Errorf("exe = %q deleted=%v", p.Exe, p.ExeDeleted)
	}
	if p.Cwd != "/home/u/dir with space" {
		t.Errorf("cwd = %q", p.Cwd)
	}
	if p.TTY != "pts/3" || p.TTYNr != uint32(pts) {
		t.Errorf("tty = %q (%d)", p.TTY, p.TTYNr)
	}
	if p.Cgroup != "/user.slice/user-1000.slice/session-4.scope" {
		t.Errorf("cgroup = %q", p.Cgroup)
	}
	if p.Kthread {
		t.Error("not a kernel thread")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(target, &st); err != nil {
		t.Fatal(err)
	}
	if !p.HasBinary || p.Binary != FileStatOf(&st) || p.Binary.Size != 8 {
		t.Errorf("binary = %+v, want %+v", p.Binary, FileStatOf(&st))
	}

	v, ok, err := Env(root, 42, "CLAUDE_CODE_SESSION_ID")
	if err != nil || !ok || v != "abc-123" {
		t.Errorf("Env = %q %v %v", v, ok, err)
	}
	v, ok, err = Env(root, 42, "EMPTY")
	if err != nil || !ok || v != "" {
		t.Errorf("Env EMPTY = %q %v %v", v, ok, err)
	}
	if _, ok, err := Env(root, 42, "HOM"); ok || err != nil {
		t.Errorf("Env prefix must not match: ok=%v err=%v", ok, err)
	}
	if _, _, err := Env(root, 43, "HOME"); !errors.Is(err, ErrGone) {
		t.Errorf("Env of missing pid: %v", err)
	}
}

func TestReadDeletedExeAndKthread(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 5, map[string]string{
		"stat":   statLine(5, "sh", 1, 0, 0, 10),
		"status": statusTmpl,
	}, map[string]string{"exe": "/tmp/gone (deleted)"})
	fakeProc(t, root, 9, map[string]string{
		"stat":   statLine(9, "kworker/0:1", 2, 0, 0x00208040, 3),
		"status": statusTmpl,
	}, nil)
	p, err := Read(root, 5)
	if err != nil {
		t.Fatal(err)
	}
	if p.Exe != "/tmp/gone" || !p.ExeDeleted || p.HasBinary {
		t.Errorf("exe=%q deleted=%v hasBinary=%v", p.Exe, p.ExeDeleted, p.HasBinary)
	}
	if p.ExeErr != nil {
		t.Errorf("exe error %v", p.ExeErr)
	}
	if p.LoginUID != UnsetID || p.AuditSessionID != UnsetID {
		t.Errorf("unset ids = %d %d", p.LoginUID, p.AuditSessionID)
	}
	fakeProc(t, root, 6, map[string]string{"stat": statLine(6, "hidden", 1, 0, 0, 10), "status": statusTmpl}, nil)
	h, err := Read(root, 6)
	if err != nil || h.ExeErr == nil || h.Exe != "" {
		t.Errorf("unreadable exe: %+v, %v", h, err)
	}
	k, err := Read(root, 9)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Kthread || k.Exe != "" || k.Argv != nil || k.ExeErr != nil {
		t.Errorf("kthread = %+v", k)
	}
}

func TestReadErrors(t *testing.T) {
	root := t.TempDir()
	if _, err := Read(root, 77); !errors.Is(err, ErrGone) {
		t.Errorf("missing pid: %v", err)
	}
	fakeProc(t, root, 10, map[string]string{"stat": "10 no-parens S 1", "status": statusTmpl}, nil)
	if _, err := Read(root, 10); err == nil || !strings.Contains(err.Error(), "no (comm)") {
		t.Errorf("malformed stat: %v", err)
	}
	fakeProc(t, root, 11, map[string]string{"stat": "11 (x) S 1 2", "status": statusTmpl}, nil)
	if _, err := Read(root, 11); err == nil || !strings.Contains(err.Error(), "want field") {
		t.Errorf("short stat: %v", err)
	}
	fakeProc(t, root, 12, map[string]string{"stat": statLine(12, "x", 1, 0, 0, 1), "status": "Name:\tx\n"}, nil)
	if _, err := Read(root, 12); err == nil || !strings.Contains(err.Error(), "missing Uid") {
		t.Errorf("status without Uid: %v", err)
	}
	fakeProc(t, root, 13, map[string]string{"stat": statLine(13, "x", 1, 0, 0, 1), "status": "Uid:\tabc\t0\nGid:\t0\t0\n"}, nil)
	if _, err := Read(root, 13); err == nil || !strings.Contains(err.Error(), "Uid") {
		t.Errorf("bad Uid: %v", err)
	}
	// Stat present but status gone: the process exited mid-read.
	fakeProc(t, root, 14, map[string]string{"stat": statLine(14, "x", 1, 0, 0, 1)}, nil)
	if _, err := Read(root, 14); !errors.Is(err, ErrGone) {
		t.Errorf("vanished mid-read: %v", err)
	}
}

func TestScanSkipsVanishedAndNonNumeric(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 1, map[string]string{"stat": statLine(1, "init", 0, 0, 0, 1), "status": statusTmpl}, nil)
	fakeProc(t, root, 20, map[string]string{"stat": statLine(20, "a", 1, 0, 0, 5), "status": statusTmpl}, nil)
	// 21 vanished: directory exists but its files are gone.
	if err := os.MkdirAll(filepath.Join(root, "21"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"self", "sys", "0"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	var pids []uint32
	for _, p := range ps {
		pids = append(pids, p.PID)
	}
	if !reflect.DeepEqual(pids, []uint32{1, 20}) {
		t.Errorf("pids = %v", pids)
	}
	fakeProc(t, root, 22, map[string]string{"stat": "garbage", "status": statusTmpl}, nil)
	if _, err := Scan(root); err == nil || !strings.Contains(err.Error(), "pid 22") {
		t.Errorf("Scan must name the malformed entry: %v", err)
	}
}

func TestSplitCmdline(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a\x00", []string{"a"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
		{"no-trailing", []string{"no-trailing"}}, // a process that rewrote its argv
	}
	for _, c := range cases {
		if got := SplitCmdline([]byte(c.in)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitCmdline(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestTTYName(t *testing.T) {
	cases := map[uint32]string{
		0:                  "",
		136<<8 | 0:         "pts/0",
		137<<8 | 5:         "pts/261",
		4<<8 | 1:           "tty1",
		4<<8 | 64:          "ttyS0",
		5<<8 | 1:           "console",
		136<<8 | 0x300<<12: "pts/768", // minor above 255 uses the high bits
		8<<8 | 1:           "",
	}
	for nr, want := range cases {
		if got := TTYName(nr); got != want {
			t.Errorf("TTYName(%#x) = %q, want %q", nr, got, want)
		}
	}
}

func TestKernelDev(t *testing.T) {
	// 259:3 (nvme partition) and 0:33 (tmpfs/overlay anonymous).
	if got, want := KernelDev(259<<20|3), uint64(259<<8|3); got != want {
		t.Errorf("KernelDev(259:3) = %#x, want %#x", got, want)
	}
	if got, want := KernelDev(0<<20|0x1234), uint64(0x34|0x1200<<12); got != want {
		t.Errorf("KernelDev(0:0x1234) = %#x, want %#x", got, want)
	}
}

// TestReadSelfReal checks the parser against the real /proc on this test's
// own process and a child it starts.
func TestReadSelfReal(t *testing.T) {
	p, err := Read("/proc", uint32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if p.Exe != exe {
		t.Errorf("exe = %q, want %q", p.Exe, exe)
	}
	if p.PPID != uint32(os.Getppid()) || p.UID != uint32(os.Getuid()) || p.EUID != uint32(os.Geteuid()) {
		t.Errorf("ppid/uid = %d %d %d", p.PPID, p.UID, p.EUID)
	}
	if !reflect.DeepEqual(p.Argv, os.Args) {
		t.Errorf("argv = %q, want %q", p.Argv, os.Args)
	}
	wd, _ := os.Getwd()
	if p.Cwd != wd {
		t.Errorf("cwd = %q, want %q", p.Cwd, wd)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	if p.Binary != FileStatOf(&st) {
		t.Errorf("binary = %+v, want %+v", p.Binary, FileStatOf(&st))
	}
	if p.Key.StartNs == 0 || p.Key.StartNs%TicksToNs != 0 {
		t.Errorf("start = %d", p.Key.StartNs)
	}

	cmd := exec.Command("/bin/sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Start returns once exec closed the CLOEXEC pipe, which the kernel
	// does before it sets up the new argv: wait until the image is
	// complete (bounded), as a real /proc reader racing an exec would.
	var c *Proc
	for range 2000 {
		if c, err = Read("/proc", uint32(cmd.Process.Pid)); err != nil {
			t.Fatal(err)
		}
		if len(c.Argv) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if c.PPID != uint32(os.Getpid()) || !reflect.DeepEqual(c.Argv, []string{"/bin/sleep", "30"}) {
		t.Errorf("child = %+v", c)
	}
	if c.Key.StartNs < p.Key.StartNs {
		t.Errorf("child started before parent: %d < %d", c.Key.StartNs, p.Key.StartNs)
	}
	all, err := Scan("/proc")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, q := range all {
		if q.Key == c.Key {
			found = true
		}
		if q.PID == 2 && !q.Kthread {
			t.Error("kthreadd not marked as kernel thread")
		}
	}
	if !found {
		t.Error("Scan did not find the child")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := Read("/proc", uint32(cmd.Process.Pid)); !errors.Is(err, ErrGone) {
		t.Errorf("reaped child: %v", err)
	}
}
