//go:build linux

// Command replaybench measures `lineaged replay` and `lineaged sessions
// --html` on a capture of an exec storm inside an agent session
// (docs/performance.md, replay throughput): it records the capture with
// the real sensor (`run --capture`) while the real Claude Code runs a loop
// of n /bin/true as a Bash tool call (the storm of tests/costbench), then
// replays it to the null sink (stdout to /dev/null) and to a native file,
// and renders its sessions page, each several times, and prints the target
// next to what it measured. Root: recording loads the BPF programs.
//
// -agent standin records the shape measured before: a stand-in agent at
// Claude Code's install path execs each /bin/true itself, so every exec is
// a direct child of the agent (its environment read and its session
// resolved at each), the shape of n tool calls rather than of one storm.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lineaged/lineaged/tests/fakeapi"
	"github.com/lineaged/lineaged/tests/testutil"
)

// minEventsPerSec is the replay target (issue 15).
const minEventsPerSec = 150_000

type options struct {
	n       int
	rounds  int
	bin     string
	capture string
	keep    bool
	strict  bool
	agent   string // claude or standin
	cache   string // the Claude Code install cache
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 25000, "fork+exec of /bin/true in the recorded storm (four events each: about 100k events)")
	flag.IntVar(&o.rounds, "rounds", 3, "times each measurement runs (medians and best are reported)")
	quick := flag.Bool("quick", false, "a smoke run: -n 2500 -rounds 1 unless given")
	flag.StringVar(&o.bin, "bin", "bin/lineaged", "the lineaged binary (make build)")
	flag.StringVar(&o.capture, "capture", "", "replay this capture instead of recording one (no root needed)")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (the capture, the outputs) and print its path")
	flag.BoolVar(&o.strict, "strict", false, "exit with status 1 when the target is not met")
	flag.StringVar(&o.agent, "agent", "claude", "what storms while the capture is recorded: claude (a Bash tool call of the real Claude Code) or standin (a stand-in agent execs each /bin/true itself)")
	flag.StringVar(&o.cache, "cache", "", "Claude Code install cache (default $LINEAGED_E2E_CACHE or tests/e2e/.cache, shared with the end-to-end tests)")
	flag.Parse()
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["n"] {
			o.n = 2500
		}
		if !set["rounds"] {
			o.rounds = 1
		}
	}
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	met, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replaybench:", err)
		os.Exit(1)
	}
	if o.strict && !met {
		os.Exit(1)
	}
}

// result is one timed run of the binary.
type result struct {
	wall, cpu time.Duration
	rss       int64 // peak, bytes
}

func run(ctx context.Context, o options) (bool, error) {
	if o.n < 1 || o.rounds < 1 {
		return false, errors.New("-n and -rounds must be positive")
	}
	if o.agent != "claude" && o.agent != "standin" {
		return false, fmt.Errorf("-agent %q: want claude or standin", o.agent)
	}
	if o.cache == "" {
		o.cache = os.Getenv("LINEAGED_E2E_CACHE")
	}
	if o.cache == "" {
		o.cache = filepath.Join("tests", "e2e", ".cache")
	}
	var err error
	for _, p := range []*string{&o.bin, &o.cache} {
		if *p, err = filepath.Abs(*p); err != nil {
			return false, err
		}
	}
	if _, err := os.Stat(o.bin); err != nil {
		return false, fmt.Errorf("no lineaged binary (run make build): %w", err)
	}
	dir, err := os.MkdirTemp("", "replaybench-")
	if err != nil {
		return false, err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "replaybench: working directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// No audit chain (its keys are the live host's), no rules and no hook
	// socket (another sensor on the host may hold it): the replay measured
	// is the pipeline's, as docs/performance.md states.
	cfg := filepath.Join(dir, "lineaged.yaml")
	// No rotation either: every event stays in the one file it counts.
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("state_dir: %s\naudit:\n  enabled: false\npolicy:\n  rules: \"\"\n"+
		"hook:\n  socket: \"\"\nfile:\n  max_size_mb: 1048576\n", filepath.Join(dir, "state"))), 0o600); err != nil {
		return false, err
	}
	capPath := o.capture
	recorded := capPath == ""
	if recorded {
		if os.Geteuid() != 0 {
			return false, fmt.Errorf("must run as root to record a capture (the sensor loads BPF programs), or give -capture FILE")
		}
		capPath = filepath.Join(dir, "storm.lcap")
		fmt.Fprintf(os.Stderr, "replaybench: recording a storm of %d execs in an agent session (%s)\n", o.n, o.shape())
		if err := record(ctx, o, dir, cfg, capPath); err != nil {
			return false, err
		}
	}
	st, err := os.Stat(capPath)
	if err != nil {
		return false, err
	}
	load0 := loadavg()
	base := []string{"replay", "--config", cfg, "--metrics-listen", ""}
	// The events a replay writes: its output's lines.
	outFile := filepath.Join(dir, "replay.jsonl")
	var null, file, html []result
	var events int
	var htmlBytes int64
	for r := range o.rounds {
		fmt.Fprintf(os.Stderr, "replaybench: round %d/%d\n", r+1, o.rounds)
		res, err := timed(ctx, o.bin, append(base, capPath)...)
		if err != nil {
			return false, err
		}
		null = append(null, res)
		_ = os.Remove(outFile)
		if res, err = timed(ctx, o.bin, append(base, "--output", outFile, capPath)...); err != nil {
			return false, err
		}
		file = append(file, res)
		if events, err = countLines(outFile); err != nil {
			return false, err
		}
		page := filepath.Join(dir, "sessions.html")
		if res, err = timed(ctx, o.bin, "sessions", "--html", page, capPath); err != nil {
			return false, err
		}
		html = append(html, res)
		if st, err := os.Stat(page); err == nil {
			htmlBytes = st.Size()
		}
	}
	report(os.Stdout, o, capPath, st.Size(), recorded, events, htmlBytes, null, file, html, load0, loadavg())
	return rate(events, best(null).wall) >= minEventsPerSec, nil
}

// record runs the sensor with --capture while the agent storms.
func record(ctx context.Context, o options, dir, cfg, capPath string) error {
	var storm *exec.Cmd
	var cleanup func()
	// The marker's exec ends the storm. The command spells it in two quoted
	// halves, so the command text (which storm execs carry in their
	// ancestry) never contains it whole.
	const marker = "replaybench-end-marker"
	loop := fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; /bin/true \"replaybench-end-\"\"marker\"", o.n)
	switch o.agent {
	case "claude":
		claude, err := testutil.InstallClaude(ctx, o.cache)
		if err != nil {
			return err
		}
		home, work := filepath.Join(dir, "home"), filepath.Join(dir, "work")
		for _, d := range []string{home, work} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
		const prompt = "replaybench-storm"
		api, err := fakeapi.Start([]fakeapi.Script{{Name: "storm", Match: prompt, Turns: []fakeapi.Turn{
			{Tool: "Bash", Input: map[string]any{"command": loop, "description": "exec storm", "timeout": 600000}},
			{Text: "done"},
		}}}, nil)
		if err != nil {
			return err
		}
		cleanup = func() { _ = api.Close() }
		storm = exec.CommandContext(ctx, claude, "-p", prompt, "--dangerously-skip-permissions")
		storm.Dir = work
		storm.Env = testutil.ClaudeEnv(home, api.URL(), "sk-ant-replaybench")
	default:
		agent := testutil.AgentPath(dir)
		if err := os.MkdirAll(filepath.Dir(agent), 0o755); err != nil {
			return err
		}
		sh, err := os.ReadFile("/bin/dash")
		if err != nil {
			return fmt.Errorf("the stand-in agent is a copy of /bin/dash: %w", err)
		}
		if err := os.WriteFile(agent, sh, 0o755); err != nil {
			return err
		}
		storm = exec.CommandContext(ctx, agent, "-c", loop)
	}
	if cleanup != nil {
		defer cleanup()
	}
	live := filepath.Join(dir, "live.jsonl")
	cmd := exec.CommandContext(ctx, o.bin, "run", "--config", cfg, "--metrics-listen", "", "--output", live, "--capture", capPath)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr := &testutil.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(stderr.String(), "sensor started") {
		select {
		case err := <-done:
			stopped = true
			return fmt.Errorf("lineaged run exited (%v) before it started:\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lineaged run did not start within 90s:\n%s", stderr.String())
		}
	}
	if err := runStorm(ctx, storm, filepath.Join(dir, "storm.out")); err != nil {
		return fmt.Errorf("the storm (%s): %w", o.shape(), err)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for !tailHas(live, marker) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the storm's end marker did not reach the output within 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	stopped = true
	if err := <-done; err != nil {
		return fmt.Errorf("lineaged run: %v\n%s", err, stderr.String())
	}
	return nil
}

// runStorm runs cmd to its end, within ten minutes. Its output goes to a
// file, not a pipe, which a process the session leaves behind could hold
// open past the end; it runs in a process group of its own, ended with it.
func runStorm(ctx context.Context, cmd *exec.Cmd, logPath string) error {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	timer := time.AfterFunc(10*time.Minute, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err = cmd.Wait()
	timer.Stop()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("%v\n%s", err, tail(string(out), 2000))
	}
	return nil
}

// shape says what stormed while the capture was recorded.
func (o options) shape() string {
	if o.agent == "standin" {
		return "a stand-in agent execs each /bin/true itself"
	}
	return "a Bash tool call of the real Claude Code " + testutil.ClaudeVersion
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// tailHas reports whether the last 64 KiB of path hold s.
func tailHas(path, s string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false
	}
	off := max(0, st.Size()-64<<10)
	b := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(b, off)
	return bytes.Contains(b[:n], []byte(s))
}

// timed runs the binary to completion and reads its wall time, CPU and
// peak RSS.
func timed(ctx context.Context, bin string, args ...string) (result, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return result{}, err
	}
	defer devnull.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	// The null sink: stdout is /dev/null itself, not a pipe to drain.
	cmd.Stdout = devnull
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("lineaged %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	r := result{wall: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		r.rss = ru.Maxrss << 10
	}
	return r, nil
}

// countLines counts the lines of path, a block at a time: a harness that
// read the whole output in would be hundreds of MB, and the replay it
// starts next would count them in its peak RSS (the child shares the
// harness's memory between fork and exec).
func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, buf := 0, make([]byte, 256<<10)
	for {
		k, err := f.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func median(rs []result, f func(result) time.Duration) time.Duration {
	v := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		v = append(v, f(r))
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func best(rs []result) result {
	var b result
	for i, r := range rs {
		if i == 0 || r.wall < b.wall {
			b = r
		}
	}
	return b
}

func rate(events int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(events) / d.Seconds()
}

func wall(r result) time.Duration { return r.wall }
func cpu(r result) time.Duration  { return r.cpu }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func report(w io.Writer, o options, capPath string, capBytes int64, recorded bool, events int, htmlBytes int64,
	null, file, html []result, load0, load1 string) {
	what := fmt.Sprintf("a recorded storm of %d fork+exec of /bin/true in an agent session (%s)", o.n, o.shape())
	if !recorded {
		what = capPath
	}
	fmt.Fprintf(w, "\nlineaged replay: %s; %d events written, capture %.1f MB; %d rounds\n", what, events, float64(capBytes)/1e6, o.rounds)
	fmt.Fprintf(w, "host: %d CPUs, load average %s at the start and %s at the end\n\n", runtime.NumCPU(), load0, load1)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tvalue\tmeasured\tmet?")
	fmt.Fprintln(tw, "------\t-----\t--------\t----")
	got := rate(events, best(null).wall)
	fmt.Fprintf(tw, "replay of the storm capture to the null sink (best round)\t>= %dk events/s\t%.1fk events/s\t%s\n",
		minEventsPerSec/1000, got/1000, yes(got >= minEventsPerSec))
	tw.Flush()

	fmt.Fprintln(w, "\ndetails (medians over rounds, and the best round: other work on the host only adds time; CPU is user+sys):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\twall\tevents/s\tbest wall\tevents/s\tCPU\tevents per CPU-s\tpeak RSS\t")
	line := func(name string, rs []result) {
		m, b, c := median(rs, wall), best(rs).wall, median(rs, cpu)
		peak := int64(0)
		for _, r := range rs {
			peak = max(peak, r.rss)
		}
		fmt.Fprintf(tw, "%s\t%.3fs\t%.1fk\t%.3fs\t%.1fk\t%.3fs\t%.1fk\t%.1f MiB\t\n", name, m.Seconds(), rate(events, m)/1000,
			b.Seconds(), rate(events, b)/1000, c.Seconds(), rate(events, c)/1000, float64(peak)/(1<<20))
	}
	line("replay, stdout to /dev/null", null)
	line("replay, native file (0600)", file)
	line("sessions --html", html)
	tw.Flush()
	fmt.Fprintf(w, "sessions --html wrote a %.1f MB page; replay runs with audit off and no rules (docs/performance.md)\n", float64(htmlBytes)/1e6)
}
