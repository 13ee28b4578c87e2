//go:build linux

// Command execstorm measures what the sensor costs an exec-heavy workload:
// a shell loop that forks and execs /bin/true thousands of times, with the
// sensor off, on with the loop outside any agent session, and on with the
// loop inside one (the shell is a copy of dash at a Claude Code install
// path, so every exec is a session member's and is delivered to userspace
// and drained). Rounds interleave the modes so drift on a shared machine
// hits all of them alike; it reports medians and ratios against "off" from
// the same run, plus the events lost (which must be 0). Needs root.
//
//	go run ./tests/execstorm -n 3000 -rounds 7
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
)

type mode int

const (
	off mode = iota
	outside
	inside
	modes
)

func (m mode) String() string {
	return [...]string{"off", "on, outside sessions", "on, inside a session"}[m]
}

type result struct {
	wall time.Duration
	// cpu is the storm's own user+system time (the shell and every
	// /bin/true, from wait4's rusage). The kernel programs run in the
	// exec'ing tasks, so their cost lands here; unlike wall time it does
	// not count waiting for a CPU that other work on the host holds.
	cpu       time.Duration
	events    uint64 // exec events of the storm delivered
	lost      uint64 // kernel + queue
	sensorCPU time.Duration
	// bpf is the kernel programs' own run time during the storm (kernel
	// BPF statistics): what the sensor adds to the exec'ing tasks,
	// measured without the noise of a shared host.
	bpf time.Duration
}

func main() {
	n := flag.Int("n", 3000, "execs of /bin/true per round")
	rounds := flag.Int("rounds", 7, "rounds (each runs every mode once)")
	processOnly := flag.Bool("process-only", false, "load only the process programs (not the file/network object)")
	flush := flag.Duration("flush", 0, "kernel.Config.FlushInterval (0: the default; negative: a wakeup per record)")
	flag.BoolVar(&verbose, "v", false, "print each program's run count and mean run time per round")
	flag.Parse()
	cfg := kernel.Config{ProcessOnly: *processOnly, FlushInterval: *flush, Recognisers: agent.DefaultTable().Kernel()}
	if err := run(*n, *rounds, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "execstorm:", err)
		os.Exit(1)
	}
}

func run(n, rounds int, cfg kernel.Config) error {
	if n < 1 || rounds < 1 {
		return errors.New("-n and -rounds must be positive")
	}
	dir, err := os.MkdirTemp("", "execstorm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	plain := filepath.Join(dir, "bin", "sh")
	agentExe := filepath.Join(dir, "home", ".local", "share", "claude", "versions", "0.0.0-execstorm")
	for _, p := range []string{plain, agentExe} {
		if err := copyFile("/bin/dash", p); err != nil {
			return err
		}
	}
	agents := agent.DefaultTable()
	if agents.Recognise(agentExe, []string{agentExe}) != sensor.AgentClaudeCode || agents.Recognise(plain, nil) != sensor.AgentNone {
		return errors.New("the storm shells are not recognised as intended")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stats, err := kernel.EnableProgramStats()
	if err != nil {
		return fmt.Errorf("enable BPF statistics: %w", err)
	}
	defer stats.Close()

	results := make([][]result, modes)
	for r := range rounds {
		// Rotate the order so no mode always runs first.
		for i := range int(modes) {
			m := mode((i + r) % int(modes))
			res, err := round(m, n, r, plain, agentExe, cfg, log)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r, m, err)
			}
			results[m] = append(results[m], res)
		}
	}

	wallOf := func(r result) float64 { return float64(r.wall) }
	cpuOf := func(r result) float64 { return float64(r.cpu) }
	baseWall, baseCPU := median(results[off], wallOf), median(results[off], cpuOf)
	fmt.Printf("exec storm: %d x fork+exec /bin/true per round, %d rounds, interleaved; sensor %s, %s\n",
		n, rounds, map[bool]string{true: "process programs only", false: "all programs"}[cfg.ProcessOnly],
		map[bool]string{true: "a wakeup per record", false: "batched reads"}[cfg.FlushInterval < 0])
	fmt.Printf("%-22s %12s %8s %12s %8s %10s %8s %8s %12s %12s %10s\n",
		"mode", "wall median", "ratio", "storm CPU", "ratio", "exec/s", "events", "lost", "sensor CPU", "BPF/exec", "BPF/CPU")
	var totalLost uint64
	for m := range modes {
		rs := results[m]
		wall, cpu := median(rs, wallOf), median(rs, cpuOf)
		sensorCPU := median(rs, func(r result) float64 { return float64(r.sensorCPU) })
		bpf := median(rs, func(r result) float64 { return float64(r.bpf) })
		var events, lost uint64
		for _, x := range rs {
			events += x.events
			lost += x.lost
		}
		totalLost += lost
		fmt.Printf("%-22s %12s %8.4f %12s %8.4f %10.0f %8d %8d %12s %12s %9.2f%%\n", m,
			time.Duration(wall).Round(time.Microsecond), wall/baseWall,
			time.Duration(cpu).Round(time.Microsecond), cpu/baseCPU,
			float64(n)/time.Duration(wall).Seconds(), events, lost,
			time.Duration(sensorCPU).Round(time.Millisecond),
			time.Duration(bpf/float64(n)).Round(10*time.Nanosecond), 100*bpf/baseCPU)
		if m == inside && events < uint64(n*rounds) {
			return fmt.Errorf("inside a session: %d exec events delivered, want at least %d", events, n*rounds)
		}
	}
	fmt.Println("BPF/exec: kernel program run time per storm exec (all programs, host-wide: an upper bound);" +
		" BPF/CPU: that time as a share of the storm's CPU time with the sensor off.")
	fmt.Printf("RESULT outside_wall_ratio=%.4f inside_wall_ratio=%.4f outside_cpu_ratio=%.4f inside_cpu_ratio=%.4f lost=%d\n",
		median(results[outside], wallOf)/baseWall, median(results[inside], wallOf)/baseWall,
		median(results[outside], cpuOf)/baseCPU, median(results[inside], cpuOf)/baseCPU, totalLost)
	if totalLost > 0 {
		return fmt.Errorf("%d events lost", totalLost)
	}
	return nil
}

// round runs one storm in mode m. With the sensor on, it is loaded before
// and closed after, and every event up to a marker exec at the end of the
// storm is drained before the round ends.
// verbose prints per-program statistics after each round.
var verbose bool

func round(m mode, n, r int, plain, agent string, cfg kernel.Config, log *slog.Logger) (result, error) {
	var res result
	marker := fmt.Sprintf("execstorm-marker-%d-%d-%d", os.Getpid(), r, m)
	shell := plain
	if m == inside {
		shell = agent
	}
	script := `i=0; while [ $i -lt ` + strconv.Itoa(n) + ` ]; do /bin/true; i=$((i+1)); done; /bin/true ` + marker

	storm := func() error {
		cmd := exec.Command(shell, "-c", script)
		start := time.Now()
		err := cmd.Run()
		res.wall = time.Since(start)
		if err == nil {
			res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		return err
	}
	if m == off {
		return res, storm()
	}

	s, err := kernel.New(cfg, log)
	if err != nil {
		return res, err
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan sensor.Event, 4096)
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx, out) }()
	sawMarker := make(chan struct{})
	var events uint64
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case ev := <-out:
				if ev.Exec == nil || !ev.Session.InSession() {
					continue
				}
				if slices.Contains(ev.Exec.Argv, marker) {
					close(sawMarker)
					return
				}
				if ev.Exec.Filename == "/bin/true" {
					events++
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	cpu0 := cpuTime()
	bpf0, err := bpfTime(s)
	if err != nil {
		cancel()
		return res, err
	}
	if err := storm(); err != nil {
		cancel()
		return res, err
	}
	if m == inside {
		select {
		case <-sawMarker:
		case <-time.After(time.Minute):
			cancel()
			return res, errors.New("marker event not delivered within a minute")
		}
	}
	res.sensorCPU = cpuTime() - cpu0
	bpf1, err := bpfTime(s)
	if err != nil {
		cancel()
		return res, err
	}
	// Other processes on the host run the programs too; their share is
	// in here as well, which makes this an upper bound.
	res.bpf = bpf1 - bpf0
	if verbose {
		st, _ := s.ProgramStats()
		for _, p := range st {
			avg := time.Duration(0)
			if p.RunCount > 0 {
				avg = p.Runtime / time.Duration(p.RunCount)
			}
			fmt.Fprintf(os.Stderr, "  %s round %d: %-20s runs %9d  avg %s\n", m, r, p.Name, p.RunCount, avg)
		}
	}
	cancel()
	<-drained
	if err := <-runErr; err != nil {
		return res, err
	}
	st := s.Stats()
	res.events = events
	res.lost = st.KernelLost + st.QueueDrops
	return res, nil
}

// bpfTime sums the run time of every loaded program.
func bpfTime(s *kernel.Sensor) (time.Duration, error) {
	st, err := s.ProgramStats()
	if err != nil {
		return 0, err
	}
	var t time.Duration
	for _, p := range st {
		t += p.Runtime
	}
	return t, nil
}

// cpuTime is this process's user+system time: the sensor's reader and
// consumer (the storm runs in children, counted elsewhere).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o700)
}
