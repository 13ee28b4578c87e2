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
// It loads the kernel side in-process and breaks down the kernel programs'
// run time per exec; what users pay (the real binary, the real Claude Code,
// every sink) is measured by tests/costbench, which `make bench` runs.
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
	"strings"
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
	// For -v: ring-buffer records read, voluntary context switches of
	// this process (the reader blocking and being woken) and irq_work
	// interrupts host-wide (a ring-buffer wakeup is one), during the storm.
	records, nvcsw, irqWork uint64
}

func main() {
	n := flag.Int("n", 3000, "execs of /bin/true per round")
	rounds := flag.Int("rounds", 7, "rounds (each runs every mode once)")
	processOnly := flag.Bool("process-only", false, "load only the process programs (not the file/network object)")
	flush := flag.Duration("flush", 0, "kernel.Config.FlushInterval (0: the default; negative: a wakeup per record)")
	verbose := flag.Bool("v", false, "print each program's run count and mean run time per round")
	flag.Parse()
	cfg := kernel.Config{ProcessOnly: *processOnly, FlushInterval: *flush, Recognisers: agent.DefaultTable().Kernel()}
	if err := run(*n, *rounds, cfg, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "execstorm:", err)
		os.Exit(1)
	}
}

// bench is what every round of one run shares.
type bench struct {
	n       int // execs per storm
	cfg     kernel.Config
	log     *slog.Logger
	plain   string // the storm shell outside any session
	agent   string // the same shell at a Claude Code install path
	verbose bool   // print per-program statistics after each round
}

func run(n, rounds int, cfg kernel.Config, verbose bool) error {
	if n < 1 || rounds < 1 {
		return errors.New("-n and -rounds must be positive")
	}
	dir, err := os.MkdirTemp("", "execstorm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{n: n, cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), verbose: verbose}
	if err := b.installShells(dir); err != nil {
		return err
	}
	stats, err := kernel.EnableProgramStats()
	if err != nil {
		return fmt.Errorf("enable BPF statistics: %w", err)
	}
	defer stats.Close()
	results, err := b.runRounds(rounds)
	if err != nil {
		return err
	}
	return b.report(results, rounds)
}

// installShells copies dash to a plain path and to a Claude Code install
// path under dir, and checks that the agent table tells them apart as
// intended: a storm run by the second is inside a session.
func (b *bench) installShells(dir string) error {
	b.plain = filepath.Join(dir, "bin", "sh")
	b.agent = filepath.Join(dir, "home", ".local", "share", "claude", "versions", "0.0.0-execstorm")
	for _, p := range []string{b.plain, b.agent} {
		if err := copyFile("/bin/dash", p); err != nil {
			return err
		}
	}
	agents := agent.DefaultTable()
	if agents.Recognise(b.agent, []string{b.agent}) != sensor.AgentClaudeCode || agents.Recognise(b.plain, nil) != sensor.AgentNone {
		return errors.New("the storm shells are not recognised as intended")
	}
	return nil
}

// runRounds runs every mode once per round, rotating the order so no mode
// always runs first, and returns the results by mode.
func (b *bench) runRounds(rounds int) ([][]result, error) {
	results := make([][]result, modes)
	for r := range rounds {
		for i := range int(modes) {
			m := mode((i + r) % int(modes))
			res, err := b.round(m, r)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r, m, err)
			}
			results[m] = append(results[m], res)
		}
	}
	return results, nil
}

func wallOf(r result) float64 { return float64(r.wall) }
func cpuOf(r result) float64  { return float64(r.cpu) }

// report prints one row per mode, with ratios against "off" from the same
// run, and the RESULT line. It fails when events were lost, or when the
// storm inside a session was not delivered in full.
func (b *bench) report(results [][]result, rounds int) error {
	baseWall, baseCPU := median(results[off], wallOf), median(results[off], cpuOf)
	fmt.Printf("exec storm: %d x fork+exec /bin/true per round, %d rounds, interleaved; sensor %s, %s\n",
		b.n, rounds, map[bool]string{true: "process programs only", false: "all programs"}[b.cfg.ProcessOnly],
		map[bool]string{true: "a wakeup per record", false: "batched reads"}[b.cfg.FlushInterval < 0])
	fmt.Printf("%-22s %12s %8s %12s %8s %10s %8s %8s %12s %12s %10s\n",
		"mode", "wall median", "ratio", "storm CPU", "ratio", "exec/s", "events", "lost", "sensor CPU", "BPF/exec", "BPF/CPU")
	var totalLost uint64
	for m := range modes {
		events, lost := b.printMode(m, results[m], baseWall, baseCPU)
		totalLost += lost
		if m == inside && events < uint64(b.n*rounds) {
			return fmt.Errorf("inside a session: %d exec events delivered, want at least %d", events, b.n*rounds)
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

// printMode prints mode m's row of medians and returns the events
// delivered and lost over all its rounds.
func (b *bench) printMode(m mode, rs []result, baseWall, baseCPU float64) (events, lost uint64) {
	wall, cpu := median(rs, wallOf), median(rs, cpuOf)
	sensorCPU := median(rs, func(r result) float64 { return float64(r.sensorCPU) })
	bpf := median(rs, func(r result) float64 { return float64(r.bpf) })
	for _, x := range rs {
		events += x.events
		lost += x.lost
	}
	fmt.Printf("%-22s %12s %8.4f %12s %8.4f %10.0f %8d %8d %12s %12s %9.2f%%\n", m,
		time.Duration(wall).Round(time.Microsecond), wall/baseWall,
		time.Duration(cpu).Round(time.Microsecond), cpu/baseCPU,
		float64(b.n)/time.Duration(wall).Seconds(), events, lost,
		time.Duration(sensorCPU).Round(time.Millisecond),
		time.Duration(bpf/float64(b.n)).Round(10*time.Nanosecond), 100*bpf/baseCPU)
	return events, lost
}

// round runs one storm in mode m. With the sensor on, it is loaded before
// and closed after, and every event up to a marker exec at the end of the
// storm is drained before the round ends.
func (b *bench) round(m mode, r int) (result, error) {
	marker := fmt.Sprintf("execstorm-marker-%d-%d-%d", os.Getpid(), r, m)
	if m == off {
		return b.storm(m, marker)
	}
	s, err := kernel.New(b.cfg, b.log)
	if err != nil {
		return result{}, err
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // on error; a round that completes cancels before draining
	out := make(chan sensor.Event, 4096)
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx, out) }()
	d := drain(ctx, out, marker)

	res, err := b.measure(s, m, marker, d)
	if err != nil {
		return res, err
	}
	if b.verbose {
		printProgramStats(s, m, r)
		fmt.Fprintf(os.Stderr, "  %s round %d: records %d, sensor CPU %s, voluntary switches %d, irq_work interrupts %d\n",
			m, r, res.records, res.sensorCPU.Round(time.Millisecond), res.nvcsw, res.irqWork)
	}
	cancel()
	<-d.done
	if err := <-runErr; err != nil {
		return res, err
	}
	st := s.Stats()
	res.events = d.events
	res.lost = st.KernelLost + st.QueueDrops
	return res, nil
}

// storm runs the exec loop once, in the shell for mode m, ending with a
// /bin/true exec carrying marker, and times it.
func (b *bench) storm(m mode, marker string) (result, error) {
	var res result
	shell := b.plain
	if m == inside {
		shell = b.agent
	}
	script := `i=0; while [ $i -lt ` + strconv.Itoa(b.n) + ` ]; do /bin/true; i=$((i+1)); done; /bin/true ` + marker
	cmd := exec.Command(shell, "-c", script)
	start := time.Now()
	err := cmd.Run()
	res.wall = time.Since(start)
	if err == nil {
		res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return res, err
}

// measure runs the storm with the sensor loaded and takes the sensor's
// CPU and kernel program time around it; inside a session it first waits
// for the marker, so the time includes draining every event.
func (b *bench) measure(s *kernel.Sensor, m mode, marker string, d *drainer) (result, error) {
	cpu0 := cpuTime()
	rec0, csw0, iwi0 := s.Stats().Records, nvcsw(), irqWork()
	bpf0, err := bpfTime(s)
	if err != nil {
		return result{}, err
	}
	res, err := b.storm(m, marker)
	if err != nil {
		return res, err
	}
	if m == inside {
		select {
		case <-d.sawMarker:
		case <-time.After(time.Minute):
			return res, errors.New("marker event not delivered within a minute")
		}
	}
	res.sensorCPU = cpuTime() - cpu0
	res.records, res.nvcsw, res.irqWork = s.Stats().Records-rec0, nvcsw()-csw0, irqWork()-iwi0
	bpf1, err := bpfTime(s)
	if err != nil {
		return res, err
	}
	// Other processes on the host run the programs too; their share is
	// in here as well, which makes this an upper bound.
	res.bpf = bpf1 - bpf0
	return res, nil
}

// drainer consumes the sensor's events as a real consumer would, counting
// the storm's /bin/true execs delivered inside a session until the marker.
type drainer struct {
	sawMarker chan struct{} // closed at the marker exec
	done      chan struct{} // closed when the drainer stops
	events    uint64        // read only after done
}

// drain starts a drainer on out; it stops at the marker or when ctx ends.
func drain(ctx context.Context, out <-chan sensor.Event, marker string) *drainer {
	d := &drainer{sawMarker: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for {
			select {
			case ev := <-out:
				if ev.Exec == nil || !ev.Session.InSession() {
					continue
				}
				if slices.Contains(ev.Exec.Argv, marker) {
					close(d.sawMarker)
					return
				}
				if ev.Exec.Filename == "/bin/true" {
					d.events++
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return d
}

// printProgramStats prints each loaded program's run count and mean run
// time (for -v).
func printProgramStats(s *kernel.Sensor, m mode, r int) {
	st, _ := s.ProgramStats()
	for _, p := range st {
		avg := time.Duration(0)
		if p.RunCount > 0 {
			avg = p.Runtime / time.Duration(p.RunCount)
		}
		fmt.Fprintf(os.Stderr, "  %s round %d: %-20s runs %9d  avg %s\n", m, r, p.Name, p.RunCount, avg)
	}
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

// nvcsw is this process's voluntary context switches.
func nvcsw() uint64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return uint64(ru.Nvcsw)
}

// irqWork sums the "IWI" (irq work interrupts) row of /proc/interrupts
// over every CPU; 0 when there is none.
func irqWork() uint64 {
	b, err := os.ReadFile("/proc/interrupts")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "IWI:" {
			continue
		}
		var n uint64
		for _, x := range f[1:] {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				break
			}
			n += v
		}
		return n
	}
	return 0
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
