//go:build linux

package kernel

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

// BenchmarkDenyExecCost measures what deny-exec enforcement adds to an exec:
// the kernel's own run-time accounting of the enforcement program
// (BPF_STATS_RUN_TIME), per exec, outside and inside an agent session,
// against the sensor's exec program (handle_exec) and the exec's wall time
// measured in the same run. Kernel-side run time is used rather than wall
// time ratios because on a shared, loaded host the exec storm's wall time
// varies far more between rounds than the cost being measured.
// 64 deny entries (exact and prefix), none matching: a member's exec walks
// its whole path and looks up every prefix, the worst case short of a
// match.
//
//	go test -run XXX -bench DenyExecCost -benchtime 2000x ./sensor/kernel
func BenchmarkDenyExecCost(b *testing.B) {
	testutil.RequireRoot(b, "to load BPF programs")
	trueBin, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(trueBin)
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "a", "b", "c", "d", "true")
	if err := os.MkdirAll(filepath.Dir(bin), 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o700); err != nil {
		b.Fatal(err)
	}
	deny := map[string]uint32{}
	for i := range 32 {
		deny[fmt.Sprintf("/opt/denied-%d/tool", i)] = uint32(2 * i)
		deny[fmt.Sprintf("/srv/denied-%d/", i)] = uint32(2*i + 1)
	}
	s, err := New(Config{DenyKeys: deny}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	out := make(chan sensor.Event, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	go func() {
		for range out {
		}
	}()
	defer func() {
		cancel()
		<-done
		close(out)
	}()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	_, enfProg := s.enf.program()
	execProg := s.coll.Programs[processProgHandleExec]

	// perExec runs b.N execs and returns the mean wall time per exec and
	// the mean kernel run time per run of each program.
	perExec := func() (wall, enf, hx time.Duration) {
		e0, err1 := enfProg.Stats()
		h0, err2 := execProg.Stats()
		if err1 != nil || err2 != nil {
			b.Fatal(err1, err2)
		}
		start := time.Now()
		for range b.N {
			if err := exec.Command(bin).Run(); err != nil {
				b.Fatal(err)
			}
		}
		wall = time.Since(start) / time.Duration(b.N)
		e1, _ := enfProg.Stats()
		h1, _ := execProg.Stats()
		if e1.RunCount == e0.RunCount || h1.RunCount == h0.RunCount {
			b.Fatal("programs did not run")
		}
		enf = (e1.Runtime - e0.Runtime) / time.Duration(e1.RunCount-e0.RunCount)
		hx = (h1.Runtime - h0.Runtime) / time.Duration(h1.RunCount-h0.RunCount)
		return
	}
	b.ResetTimer()
	wallOut, enfOut, execOut := perExec()
	self := uint32(os.Getpid())
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: self, StartNs: tickNs}, Agent: sensor.AgentClaudeCode}
	if err := s.AddSessionMembers(map[uint32]sensor.SessionRef{self: ref}); err != nil {
		b.Fatal(err)
	}
	wallIn, enfIn, execIn := perExec()
	s.maps.Sessions.Delete(self)
	b.StopTimer()

	name, reason := s.Hooks()
	b.Logf("enforcement %s: outside %v per exec (handle_exec %v, exec wall %v); inside %v (handle_exec %v, exec wall %v)",
		HooksDetail(name, reason), enfOut, execOut, wallOut, enfIn, execIn, wallIn)
	b.ReportMetric(float64(enfOut.Nanoseconds()), "enforce-ns/exec-outside")
	b.ReportMetric(float64(enfIn.Nanoseconds()), "enforce-ns/exec-inside")
	b.ReportMetric(float64(enfOut)/float64(wallOut)*100, "%exec-outside")
	b.ReportMetric(float64(enfIn)/float64(wallIn)*100, "%exec-inside")
}
