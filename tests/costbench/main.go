//go:build linux

// Command costbench measures what the sensor costs an agent session, the way
// users run it: the real `lineaged run` binary with its default settings and
// the shipped rule set, and an exec storm (n fork+exec of /bin/true from a
// bash loop) run as a Bash tool call of the real Claude Code against a
// scripted Messages API on loopback. It prints the cost targets next to
// what it measured, as ratios against the same storm with the sensor off in
// the same run, never as timed assertions.
//
// Each round runs three phases in a rotating order, so drift on a shared
// machine hits them alike: sensor off, sensor writing native events to a
// file, and sensor publishing to Kafka through its spool (a kfake broker on
// loopback). The off and file phases also run the storm outside any
// session. A last phase runs two sessions' storms at once and counts events
// whose ancestry was cut. Needs root.
//
//	go run ./tests/costbench            # 3000 execs, 5 rounds
//	go run ./tests/costbench -quick     # a smoke run: 300 execs, 1 round
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

type options struct {
	n, rounds int
	bin       string  // the lineaged binary
	rules     string  // LINEAGED_POLICY_RULES
	cache     string  // where Claude Code is installed
	keep      bool    // keep the working directory
	strict    bool    // fail when a target is not met
	profiles  string  // write the sensor's CPU profiles here
	memprofs  string  // write the sensor's heap profiles here
	env       envList // extra LINEAGED_* settings for the sensor
	nice      int     // the niceness of the benchmark and all it starts
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 3000, "fork+exec of /bin/true per storm")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds (each runs every phase once)")
	quick := flag.Bool("quick", false, "a smoke run: -n 300 -rounds 1 unless given")
	flag.StringVar(&o.bin, "bin", "bin/lineaged", "the lineaged binary (make build)")
	flag.StringVar(&o.rules, "rules", "deploy/rules", "the rule set the sensor loads (the shipped one)")
	flag.StringVar(&o.cache, "cache", "", "Claude Code install cache (default $LINEAGED_E2E_CACHE or tests/e2e/.cache, shared with the end-to-end tests)")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (outputs, spool) and print its path")
	flag.BoolVar(&o.strict, "strict", false, "exit with status 1 when a target is not met")
	flag.StringVar(&o.profiles, "cpuprofiles", "", "write a CPU profile of each sensor run into this directory (LINEAGED_CPUPROFILE), for go tool pprof")
	flag.StringVar(&o.memprofs, "memprofiles", "", "write a heap profile of each sensor run into this directory, taken at its stop (LINEAGED_MEMPROFILE: in use then, allocated over the run)")
	flag.Var(&o.env, "env", "KEY=VALUE the sensor also runs with, such as LINEAGED_AUDIT_ENABLED=false (repeatable)")
	flag.IntVar(&o.nice, "nice", -10, "niceness of the benchmark, the sensor, Claude Code and the storms alike,"+
		" so other work on a shared host disturbs them less (0: unchanged)")
	flag.Parse()
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["n"] {
			o.n = 300
		}
		if !set["rounds"] {
			o.rounds = 1
		}
	}
	// A closed stdout (| head) must not kill the benchmark before it has
	// stopped what it started: writes fail instead.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "costbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root: the sensor loads BPF programs (running as uid %d)", os.Geteuid())
	}
	if o.n < 1 || o.rounds < 1 {
		return errors.New("-n and -rounds must be positive")
	}
	var err error
	if o.cache == "" {
		o.cache = os.Getenv("LINEAGED_E2E_CACHE")
	}
	if o.cache == "" {
		o.cache = filepath.Join("tests", "e2e", ".cache")
	}
	for _, p := range []*string{&o.bin, &o.rules, &o.cache} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("no lineaged binary (run make build): %w", err)
	}
	if o.nice != 0 {
		// Inherited by everything started from here on: the sensor and
		// the storm compete with each other as on any host, and less with
		// the host's other work.
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, o.nice); err != nil {
			return fmt.Errorf("setpriority %d: %w", o.nice, err)
		}
	}
	claude, err := testutil.InstallClaude(ctx, o.cache)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "costbench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "costbench: working directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{o: o, claude: claude, dir: dir, load0: loadavg(), others0: otherSensors(), psi0: cpuPressure()}
	start := time.Now()
	for r := range o.rounds {
		for i := range int(nPhases) {
			p := phase((i + r) % int(nPhases))
			fmt.Fprintf(os.Stderr, "costbench: round %d/%d: %s\n", r+1, o.rounds, p)
			if err := b.runPhase(ctx, p, r); err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, p, err)
			}
		}
	}
	fmt.Fprintln(os.Stderr, "costbench: two sessions storming at once")
	if err := b.concurrent(ctx); err != nil {
		return fmt.Errorf("two sessions at once: %w", err)
	}
	b.load1, b.others1, b.psi1 = loadavg(), otherSensors(), cpuPressure()
	met := b.report(os.Stdout, time.Since(start))
	if left := leftovers(o.bin, claude, dir); len(left) > 0 {
		return fmt.Errorf("left behind:\n  %s", strings.Join(left, "\n  "))
	}
	if o.strict && !met {
		return errors.New("targets not met")
	}
	return nil
}

// envList is a repeatable -env flag of KEY=VALUE settings.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || !strings.HasPrefix(k, "LINEAGED_") {
		return fmt.Errorf("%q: want LINEAGED_KEY=VALUE", v)
	}
	*e = append(*e, v)
	return nil
}
