//go:build linux

package kernel

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/sensor"
)

// copyExecutable copies src to dst, mode 0755.
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestRootPathWalkBuilds runs both builds of the path walk (the bounded
// loop, and bpf_loop where the kernel has it: walker.go) on the walk's
// depth bound: an executable 120 directories down has its whole path; one
// more than PATH_DEPTH (160) components down is cut to its leaf end and
// flagged truncated. Both builds must say the same.
func TestRootPathWalkBuilds(t *testing.T) {
	builds := []string{"bounded"}
	if haveLoop() {
		builds = append(builds, "loop")
	} else {
		t.Log("this kernel has no bpf_loop: only the bounded build runs here")
	}
	bin := trueBinary(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nest := func(name string, depth int) string {
		p := filepath.Join(dir, name)
		for i := 0; i < depth; i++ {
			p = filepath.Join(p, "d")
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		p = filepath.Join(p, "t")
		copyExecutable(t, bin, p)
		return p
	}
	deep := nest("deep", 120)
	tooDeep := nest("toodeep", 170)

	for _, build := range builds {
		t.Run(build, func(t *testing.T) {
			saved := walkerOverride
			walkerOverride = build
			t.Cleanup(func() { walkerOverride = saved })
			// The process object alone: the file object's walk is the
			// same function, and each start costs a guest seconds.
			h := startSensor(t, Config{Scope: ScopeAll, ProcessOnly: true})
			if got := loopWalker(); got != (build == "loop") {
				t.Fatalf("override %q: loopWalker() = %t", build, got)
			}
			m := marker(t)
			got := map[string]*sensor.Exec{}
			for attempt := 0; attempt < 3 && (got["deep"] == nil || got["toodeep"] == nil); attempt++ {
				missed := h.s.MissedRuns()["handle_exec"]
				mustRun(t, exec.Command(deep, m+"-deep"))
				mustRun(t, exec.Command(tooDeep, m+"-toodeep"))
				evs, _ := h.within(execArg(m+"-toodeep"), guard)
				for _, ev := range evs {
					if ev.Exec != nil && len(ev.Exec.Argv) == 2 && strings.HasPrefix(ev.Exec.Argv[1], m+"-") {
						got[strings.TrimPrefix(ev.Exec.Argv[1], m+"-")] = ev.Exec
					}
				}
				if h.s.MissedRuns()["handle_exec"] == missed {
					break // nothing skipped: no reason to send again
				}
			}
			if x := got["deep"]; x == nil {
				t.Errorf("no exec of %s (program runs the kernel skipped: %v)", deep, h.s.MissedRuns())
			} else if x.Exe != deep || x.Flags&sensor.ExecExeTruncated != 0 {
				t.Errorf("120 down: exe %q flags %#x, want %q untruncated", x.Exe, x.Flags, deep)
			}
			if x := got["toodeep"]; x == nil {
				t.Errorf("no exec of %s (program runs the kernel skipped: %v)", tooDeep, h.s.MissedRuns())
			} else {
				// The leaf end: the last PATH_DEPTH components.
				want := strings.Repeat("/d", 159) + "/t"
				if x.Flags&sensor.ExecExeTruncated == 0 || strings.TrimPrefix(x.Exe, "/") != strings.TrimPrefix(want, "/") {
					t.Errorf("170 down: exe %q (%d bytes) flags %#x, want the last 160 components %q flagged truncated", x.Exe, len(x.Exe), x.Flags, want)
				}
			}
		})
	}
}
