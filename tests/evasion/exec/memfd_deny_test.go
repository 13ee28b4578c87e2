//go:build linux && amd64

package exec

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestMemfdExecDenied: with the deny_exec entry "memfd", a member's exec
// of a memfd copy of /bin/true is refused in the kernel (EPERM where the
// BPF LSM runs; SIGKILL before its first instruction on the tracepoint
// path), and the alert names the entry. Before the entry existed, a
// program that never touched the disk ran whatever the deny list said.
func TestMemfdExecDenied(t *testing.T) {
	p := runPipelineDenying(t, []string{"/usr/bin/nc", "memfd"})
	hooks, _ := p.s.Hooks()
	m := p.member(t, "memfd", "/bin/true", "true")
	err := m.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("memfd exec of true: %v, want it refused", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
	refused := ws.Exited() && ws.ExitStatus() == 1 // the helper's execveat returned (EPERM)
	if !killed && !refused {
		t.Fatalf("memfd exec of true on the %s path: %v, want a refusal or SIGKILL", hooks, err)
	}
	alert := p.find(t, "policy.alert", m.Process.Pid, func(ev map[string]any) bool {
		a, _ := ev["alert"].(map[string]any)
		return a != nil && a["rule"] == "deny_exec"
	})
	msg, _ := alert["alert"].(map[string]any)["message"].(string)
	if !strings.Contains(msg, `"memfd"`) {
		t.Errorf("alert message %q does not name the entry \"memfd\"", msg)
	}
	t.Logf("%s path: killed %v, refused %v; alert: %s", hooks, killed, refused, msg)
}

// TestMemfdExecAllowedWithoutEntry: without the entry, the same memfd exec
// runs (and is reported as before).
func TestMemfdExecAllowedWithoutEntry(t *testing.T) {
	p := runPipelineDenying(t, []string{"/usr/bin/nc"})
	m := p.member(t, "memfd", "/bin/true", "true")
	if err := m.Wait(); err != nil {
		t.Fatalf("memfd exec of true without the entry: %v", err)
	}
}
