//go:build linux

package exec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/tests/testutil"
)

// actuator carries out the policy stage's kills through the sensor.
type actuator struct{ s *kernel.Sensor }

func (a actuator) KillProcess(key sensor.ProcKey) error { return a.s.KillProcess("/proc", key) }
func (a actuator) KillSession(root sensor.ProcKey) (int, error) {
	return a.s.KillSession("/proc", root)
}

// loaderPath is the dynamic loader of this host, as the kernel names it.
func loaderPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.EvalSymlinks("/lib64/ld-linux-x86-64.so.2")
	if err != nil {
		t.Skipf("no x86-64 glibc loader here: %v", err)
	}
	return p
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// loadedOf is the process.loaded object of an exec event, nil when none.
func loadedOf(ev map[string]any) map[string]any {
	l, _ := ev["process"].(map[string]any)["loaded"].(map[string]any)
	return l
}

// TestLoaderExecNamesTheProgram: a member runs a payload through the
// dynamic loader, by a relative path and, after loader options, by an
// absolute one.
// The kernel exec'd only the loader: the exec event names and hashes the
// payload as process.loaded (before: only ld.so, hashed as itself).
func TestLoaderExecNamesTheProgram(t *testing.T) {
	ld := loaderPath(t)
	p := runPipeline(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A payload that stays a moment: the working directory a relative
	// path is taken against is read from the live process.
	payload := testutil.CopyFile(t, "/bin/sleep", filepath.Join(dir, "bin", "payload"), 0o755)
	sum := sha256File(t, payload)
	for _, tc := range []struct {
		name string
		argv []string
	}{
		{"relative path", []string{ld, "--argv0", "innocent", "bin/payload", "2"}},
		{"options and an absolute path", []string{ld, "--inhibit-cache", "--library-path", "/nonexistent", payload, "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := p.memberIn(t, dir, "exec", tc.argv...)
			if err := m.Wait(); err != nil {
				t.Fatalf("%v: %v", tc.argv, err)
			}
			ev := p.find(t, "process.exec", m.Process.Pid, func(ev map[string]any) bool {
				return ev["process"].(map[string]any)["exe"] == ld
			})
			proc := ev["process"].(map[string]any)
			if proc["exe"] != ld {
				t.Errorf("exe %q, want the loader %q", proc["exe"], ld)
			}
			l := loadedOf(ev)
			if l == nil {
				t.Fatalf("no process.loaded in %v", proc)
			}
			if l["path"] != payload || l["sha256"] != sum {
				t.Errorf("loaded %v, want path %q sha256 %s", l, payload, sum)
			}
		})
	}
}

// TestLoaderExecOfDeniedProgramKilled: deny_exec names a program by path;
// a member runs it through the loader, which the kernel lets run (it is the
// loader that is exec'd). The policy stage alerts and kills the process.
// Before: it ran to its end, with no alert.
func TestLoaderExecOfDeniedProgramKilled(t *testing.T) {
	ld := loaderPath(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	denied := testutil.CopyFile(t, "/bin/sleep", filepath.Join(dir, "denied-sleep"), 0o755)
	p := runPipelineDenying(t, []string{denied})
	m := p.memberIn(t, dir, "exec", ld, denied, "60")
	err = m.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("%s %s 60: %v, want it killed", ld, denied, err)
	}
	alert := p.find(t, "policy.alert", m.Process.Pid, func(ev map[string]any) bool {
		a, _ := ev["alert"].(map[string]any)
		return a != nil && a["rule"] == "deny_exec"
	})
	t.Logf("alert: %v", alert["alert"].(map[string]any)["message"])
	p.find(t, "policy.action", m.Process.Pid, func(ev map[string]any) bool {
		a, _ := ev["alert"].(map[string]any)
		return a != nil && a["action"] == "kill-process" && a["result"] == "done"
	})
}
