package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// memfdHelper is the attacker's technique, run by a session member: copy
// a binary into a memfd (sparse zeros appended: a large image that runs as
// the original), note the pid, and fexecve it. python3's os.execve takes
// the memfd's descriptor. With LINEAGED_HOLD_DELETED set the copy is a
// file, unlinked before the fexecve instead.
const memfdHelper = `import os, sys
src, pad, pidfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(src, "rb") as f:
    data = f.read()
if os.environ.get("LINEAGED_HOLD_DELETED"):
    path = pidfile + ".payload"
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o755)
    fd = os.open(path, os.O_RDONLY)
    os.unlink(path)
else:
    fd = os.memfd_create("payload", 0)
    while data:
        data = data[os.write(fd, data):]
    if pad:
        os.ftruncate(fd, os.fstat(fd).st_size + pad)
with open(pidfile, "w") as f:
    f.write(str(os.getpid()))
os.execve(fd, sys.argv[4:], dict(os.environ))
`

// holdRun is a lineaged run with a stand-in agent (a shell at Claude
// Code's install path) whose children run memfdHelper.
type holdRun struct {
	dir, out, agent string
	cmd             *exec.Cmd
	// deleted runs the image from an unlinked file instead of a memfd.
	deleted bool
	stderr  *testutil.SyncBuffer
}

func startHoldRun(t *testing.T, config string) *holdRun {
	t.Helper()
	testutil.RequireRoot(t, "to load BPF programs")
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 to run the memfd technique")
	}
	dir := t.TempDir()
	r := &holdRun{dir: dir, out: filepath.Join(dir, "events.jsonl"), stderr: &testutil.SyncBuffer{}}
	r.agent = testutil.CopyFile(t, "/bin/dash", testutil.AgentPath(dir), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "memfd.py"), []byte(memfdHelper), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "lineaged.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(binary, "run", "--config", cfgPath, "--output", r.out)
	r.cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir())
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill(); r.cmd.Wait() })
	testutil.WaitForText(t, 30*time.Second, r.stderr, "sensor started")
	return r
}

// memfd has the agent run src from a memfd with argv, pad zero bytes
// appended to the image, in the background; it returns the files where
// the member's pid and the shell's status of it will be.
func (r *holdRun) memfd(t *testing.T, src string, pad int64, argv ...string) (pidFile, statusFile string) {
	t.Helper()
	pidFile = filepath.Join(r.dir, fmt.Sprintf("pid-%d", time.Now().UnixNano()))
	statusFile = pidFile + ".status"
	script := fmt.Sprintf(`/usr/bin/python3 "$@"; echo $? > %s`, statusFile)
	args := append([]string{"-c", script, "agent", filepath.Join(r.dir, "memfd.py"), src, fmt.Sprint(pad), pidFile}, argv...)
	cmd := exec.Command(r.agent, args...)
	if r.deleted {
		cmd.Env = append(os.Environ(), "LINEAGED_HOLD_DELETED=1")
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("agent stand-in: %v", err)
	}
	return pidFile, statusFile
}

// status waits for the shell's status of the memfd program.
func status(t *testing.T, file string, d time.Duration) string {
	t.Helper()
	var s string
	testutil.WaitFor(t, d, "the memfd program's exit status", func() bool {
		b, err := os.ReadFile(file)
		s = strings.TrimSpace(string(b))
		return err == nil && strings.HasSuffix(string(b), "\n")
	}, func() string { return "" })
	return s
}

// memfdExec waits for the memfd program's process.exec (and its binary,
// from the exec or a process.binary follow-up).
func (r *holdRun) memfdExec(t *testing.T, pid int) (proc, bin map[string]any) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("the memfd exec of pid %d", pid), func() bool {
		b, _ := os.ReadFile(r.out)
		for _, line := range strings.Split(string(b), "\n") {
			var ev map[string]any
			if json.Unmarshal([]byte(line), &ev) != nil {
				continue
			}
			p, _ := ev["process"].(map[string]any)
			if p == nil || p["pid"] != float64(pid) || fmt.Sprint(p["exe"]) == "/usr/bin/python3.11" {
				continue
			}
			switch ev["kind"] {
			case "process.exec":
				proc = p
				if b, ok := p["binary"].(map[string]any); ok {
					bin = b
				}
			case "process.binary":
				bin, _ = p["binary"].(map[string]any)
			}
		}
		return proc != nil && bin != nil
	}, func() string { return r.stderr.String() })
	return proc, bin
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	var pid int
	testutil.WaitFor(t, 10*time.Second, "the member's pid", func() bool {
		b, err := os.ReadFile(file)
		_, serr := fmt.Sscan(string(b), &pid)
		return err == nil && serr == nil
	}, func() string { return "" })
	return pid
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// With hashing.hold_exec [memfd], a member's memfd copy of true that exits
// at once is hashed (it was held until it was), and its exec says held.
// Without the hold the same exec is never hashed ("never hashed: ...") and
// says nothing of a hold.
func TestRunHoldMemfdHashed(t *testing.T) {
	want := fileSHA256(t, "/bin/true")
	for _, c := range []struct {
		name, config string
		held         bool
	}{
		{"hold", "hashing:\n  hold_exec: [memfd]\n", true},
		{"no hold", "hashing:\n  hold_exec: []\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := startHoldRun(t, c.config)
			pidFile, statusFile := r.memfd(t, "/bin/true", 0, "true")
			if s := status(t, statusFile, 20*time.Second); s != "0" {
				t.Fatalf("memfd true: status %s", s)
			}
			proc, bin := r.memfdExec(t, readPid(t, pidFile))
			t.Logf("held %v, binary %v", proc["held"], bin)
			if c.held {
				if proc["held"] != true {
					t.Errorf("process.held = %v, want true", proc["held"])
				}
				if bin["sha256"] != want || bin["verdict"] == "error" {
					t.Errorf("binary %v: want sha256 %s, a verdict other than error", bin, want)
				}
				return
			}
			if _, ok := proc["held"]; ok {
				t.Errorf("process.held = %v without the hold, want absent", proc["held"])
			}
		})
	}
}

// hold_exec [deleted]: a member's exec of an unlinked copy of true (the
// file gone from every directory before the exec) is held and hashed;
// [memfd] alone does not hold it.
func TestRunHoldDeletedHashed(t *testing.T) {
	want := fileSHA256(t, "/bin/true")
	for _, c := range []struct {
		name, config string
		held         bool
	}{
		{"hold", "hashing:\n  hold_exec: [deleted]\n", true},
		{"memfd only", "hashing:\n  hold_exec: [memfd]\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := startHoldRun(t, c.config)
			r.deleted = true
			pidFile, statusFile := r.memfd(t, "/bin/true", 0, "true")
			if s := status(t, statusFile, 20*time.Second); s != "0" {
				t.Fatalf("deleted true: status %s", s)
			}
			proc, bin := r.memfdExec(t, readPid(t, pidFile))
			t.Logf("exe %v, flags %v, held %v, binary %v", proc["exe"], proc["exe_flags"], proc["held"], bin)
			if fmt.Sprint(proc["exe_flags"]) != "[deleted]" {
				t.Fatalf("exe_flags %v, want [deleted]", proc["exe_flags"])
			}
			if got := proc["held"] == true; got != c.held {
				t.Errorf("process.held = %v, want %v", proc["held"], c.held)
			}
			if c.held && (bin["sha256"] != want || bin["verdict"] == "error") {
				t.Errorf("binary %v: want sha256 %s, a verdict other than error", bin, want)
			}
		})
	}
}

// With the hold on and the SHA-256 of touch in deny_exec, a member's memfd
// copy of touch is killed before it runs: the file it was to make does not
// exist, the shell saw SIGKILL (137), and the deny is alerted on.
func TestRunHoldMemfdDeniedByHash(t *testing.T) {
	sum := fileSHA256(t, "/usr/bin/touch")
	r := startHoldRun(t, "hashing:\n  hold_exec: [memfd]\npolicy:\n  deny_exec: [\"sha256:"+sum+"\"]\n")
	marker := filepath.Join(r.dir, "touched")
	pidFile, statusFile := r.memfd(t, "/usr/bin/touch", 0, "touch", marker)
	if s := status(t, statusFile, 20*time.Second); s != "137" {
		t.Errorf("memfd touch: status %s, want 137 (SIGKILL)", s)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("%s exists: the denied memfd program ran", marker)
	}
	proc, bin := r.memfdExec(t, readPid(t, pidFile))
	if proc["held"] != true || bin["sha256"] != sum {
		t.Errorf("exec: held %v, binary %v; want held, sha256 %s", proc["held"], bin, sum)
	}
	testutil.WaitFor(t, 20*time.Second, "the deny_exec policy.alert", func() bool {
		ev := findEvent(t, r.out, "policy.alert")
		a, _ := ev["alert"].(map[string]any)
		return a != nil && a["rule"] == "deny_exec" && strings.Contains(fmt.Sprint(a["message"]), sum)
	}, func() string { return r.stderr.String() })
	testutil.WaitForText(t, 10*time.Second, r.stderr, "held process killed")
}

// A held process whose image is not hashed within hashing.hold_timeout
// runs on: a memfd touch with 4 GiB of zeros behind it, a 50ms hold.
func TestRunHoldTimeoutReleases(t *testing.T) {
	sum := fileSHA256(t, "/usr/bin/touch")
	r := startHoldRun(t, "hashing:\n  hold_exec: [memfd]\n  hold_timeout: 50ms\n  max_bytes: 68719476736\n  timeout: 60s\n"+
		"policy:\n  deny_exec: [\"sha256:"+sum+"\"]\n")
	marker := filepath.Join(r.dir, "touched")
	pidFile, statusFile := r.memfd(t, "/usr/bin/touch", 4<<30, "touch", marker)
	if s := status(t, statusFile, 20*time.Second); s != "0" {
		t.Fatalf("memfd touch: status %s, want 0 (released after the hold's timeout)", s)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the released program did not run: %v", err)
	}
	testutil.WaitForText(t, 10*time.Second, r.stderr, "not hashed within hashing.hold_timeout")
	proc, _ := r.memfdExec(t, readPid(t, pidFile))
	if proc["held"] != true {
		t.Errorf("process.held = %v, want true", proc["held"])
	}
}

// Stopping the sensor while a process is held (its 32 GiB image takes far
// longer to hash than the test waits) continues it before lineaged exits.
func TestRunHoldReleasedAtStop(t *testing.T) {
	r := startHoldRun(t, "hashing:\n  hold_exec: [memfd]\n  hold_timeout: 60s\n  max_bytes: 68719476736\n  timeout: 60s\n")
	marker := filepath.Join(r.dir, "touched")
	pidFile, statusFile := r.memfd(t, "/usr/bin/touch", 32<<30, "touch", marker)
	pid := readPid(t, pidFile)
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("pid %d stopped by the hold", pid), func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		return err == nil && len(f) > 0 && f[0] == "T"
	}, func() string { return r.stderr.String() })
	stopped := time.Now()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if s := status(t, statusFile, 20*time.Second); s != "0" {
		t.Fatalf("memfd touch: status %s, want 0 (released at stop)", s)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the released program did not run: %v", err)
	}
	t.Logf("released %v after SIGTERM", time.Since(stopped))
	if err := r.cmd.Wait(); err != nil {
		t.Errorf("lineaged run: %v\n%s", err, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "the sensor is stopping") {
		t.Errorf("no release at stop logged:\n%s", r.stderr.String())
	}
}

// sh has the stand-in agent run script as a member and returns the
// script's exit status.
func (r *holdRun) sh(t *testing.T, script string) string {
	t.Helper()
	statusFile := filepath.Join(r.dir, fmt.Sprintf("status-%d", time.Now().UnixNano()))
	cmd := exec.Command(r.agent, "-c", script+"; echo $? > "+statusFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("agent stand-in: %v\n%s", err, out)
	}
	return status(t, statusFile, 20*time.Second)
}

// execsOf waits for n process.exec events of exe and returns them in order.
func (r *holdRun) execsOf(t *testing.T, exe string, n int) []map[string]any {
	t.Helper()
	var procs []map[string]any
	testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("%d execs of %s", n, exe), func() bool {
		procs = procs[:0]
		b, _ := os.ReadFile(r.out)
		for _, line := range strings.Split(string(b), "\n") {
			var ev map[string]any
			if json.Unmarshal([]byte(line), &ev) != nil || ev["kind"] != "process.exec" {
				continue
			}
			if p, _ := ev["process"].(map[string]any); p != nil && p["exe"] == exe {
				procs = append(procs, p)
			}
		}
		return len(procs) >= n
	}, func() string { return r.stderr.String() })
	return procs
}

// With hashing.hold_exec [unseen], a member's first exec of a copy of a
// sha256:-denied binary at a new path, a file the sensor has never hashed,
// is held, hashed and killed before its first instruction. Without the
// hold that first exec runs until the policy stage has hashed it and its
// kill arrives: a race with the program's own work.
func TestRunHoldUnseenDeniedByHash(t *testing.T) {
	sum := fileSHA256(t, "/usr/bin/touch")
	r := startHoldRun(t, "hashing:\n  hold_exec: [unseen]\npolicy:\n  deny_exec: [\"sha256:"+sum+"\"]\n")
	tool := testutil.CopyFile(t, "/usr/bin/touch", filepath.Join(r.dir, "renamed-tool"), 0o755)
	marker := filepath.Join(r.dir, "touched")
	if s := r.sh(t, tool+" "+marker); s != "137" {
		t.Errorf("the denied copy: status %s, want 137 (SIGKILL)", s)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("%s exists: the denied copy ran", marker)
	}
	if p := r.execsOf(t, tool, 1)[0]; p["held"] != true {
		t.Errorf("the exec says held %v, want true", p["held"])
	}
	testutil.WaitForText(t, 10*time.Second, r.stderr, "held process killed")
}

// An image hashed and allowed is held at its first exec only: the kernel
// is told it has been seen, and the next exec runs at once.
func TestRunHoldUnseenOnce(t *testing.T) {
	r := startHoldRun(t, "hashing:\n  hold_exec: [unseen]\n")
	tool := testutil.CopyFile(t, "/bin/true", filepath.Join(r.dir, "renamed-true"), 0o755)
	if s := r.sh(t, tool+" && "+tool); s != "0" {
		t.Fatalf("status %s, want 0", s)
	}
	execs := r.execsOf(t, tool, 2)
	if execs[0]["held"] != true || execs[1]["held"] != nil {
		t.Errorf("held %v then %v, want true then absent", execs[0]["held"], execs[1]["held"])
	}
	if b, _ := execs[0]["binary"].(map[string]any); b == nil || b["sha256"] != fileSHA256(t, "/bin/true") {
		t.Errorf("the held exec's binary %v, want its sha256", execs[0]["binary"])
	}
}
