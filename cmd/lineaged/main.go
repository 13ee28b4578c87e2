// Command lineaged is the eBPF sensor for AI coding agents: `run` traces
// agent sessions and publishes enriched events, `doctor` says whether this
// host can run it, `rules` checks and tests detection rules.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/cilium/ebpf/rlimit"
	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/spf13/pflag"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

const usage = `lineaged: eBPF sensor for AI coding agents

Usage:
  lineaged run [flags]       run the sensor (events to stdout by default)
  lineaged doctor [flags]    check that this host can run the sensor
  lineaged unpin [flags]     remove the kernel state pinned at kernel.pin_path (package purge)
  lineaged rules check|test  validate rules, or run them over recorded events
  lineaged config validate|print  check the configuration, or show it in effect
  lineaged hook [install|uninstall]  Claude Code's PreToolUse hook, its installer and remover
  lineaged run --capture FILE [--raw]  run, recording a capture (docs/capture.md)
  lineaged replay FILE...    run the pipeline over a capture
  lineaged capture -o FILE   record a capture without publishing events
  lineaged sessions FILE...  show the agent sessions of recorded events (- for stdin)
  lineaged verify --key PUB FILE...|-  check a stream's hash chain and signed checkpoints
  lineaged key               print the public key checkpoints are signed with
  lineaged version           print the version

Run "lineaged run --help" for the flags, "lineaged rules help" for rules.
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries an exit code with a one-line message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	case "doctor":
		err = cmdDoctor(args[1:], stdout, stderr)
	case "unpin":
		err = cmdUnpin(args[1:], stdout, stderr) // unpin.go
	case "rules":
		err = cmdRules(args[1:], stdout, stderr)
	case "config":
		err = cmdConfig(args[1:], stdout, stderr)
	case "hook":
		err = cmdHook(args[1:], os.Stdin, stdout, stderr)
	case "replay":
		err = cmdReplay(args[1:], stdout, stderr)
	case "capture":
		err = cmdCapture(args[1:], stdout, stderr)
	case "sessions":
		err = cmdSessions(args[1:], os.Stdin, stdout, stderr)
	case "verify":
		err = cmdVerify(args[1:], os.Stdin, stdout, stderr)
	case "key":
		err = cmdKey(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "lineaged %s\n", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "lineaged: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	if err == nil || errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	// One line, no stack trace: what failed and why.
	fmt.Fprintf(stderr, "lineaged: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitRuntime
}

// newFlags builds the flag set of run and doctor.
func newFlags(name string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	addRunFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: lineaged %s [flags]\n\nFlags:\n%s", name, fs.FlagUsages())
	}
	return fs
}

// parseConfig parses flags and loads the configuration; its errors exit 2.
func parseConfig(name string, args []string, stderr io.Writer) (*Config, error) {
	fs := newFlags(name, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, err
		}
		return nil, &exitError{exitUsage, err}
	}
	if fs.NArg() > 0 {
		return nil, &exitError{exitUsage, fmt.Errorf("%s takes no arguments, got %q", name, fs.Args())}
	}
	cfg, err := loadConfig(fs, os.Getenv)
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	return cfg, nil
}

// newLogger logs at level to w: text on a terminal, JSON otherwise
// (journald, files, pipes). run and doctor use newConfigLogger, which also
// keeps secrets out (config_log.go).
func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated in Config.validate
	opts := &slog.HandlerOptions{Level: l}
	if isTTY(w) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// liftMemlock removes RLIMIT_MEMLOCK for this process: kernels before 5.11
// charge BPF maps to it, and its small default makes loading fail there. It
// is a no-op where BPF memory is accounted to the memory cgroup. Failing to
// lift it (no CAP_SYS_RESOURCE) is not fatal here: where it matters, loading
// fails with an error that says MEMLOCK, and the privilege checks name what
// is missing first.
func liftMemlock(log *slog.Logger) {
	if err := rlimit.RemoveMemlock(); err != nil {
		log.Debug("RLIMIT_MEMLOCK not raised", "err", err)
	}
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	capo, args, err := captureArgs(args)
	if err != nil {
		return err
	}
	cfg, err := parseConfig("run", args, stderr)
	if err != nil {
		return err
	}
	log := newConfigLogger(cfg, stderr)
	liftMemlock(log)
	if path := os.Getenv("LINEAGED_CPUPROFILE"); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv("LINEAGED_MEMPROFILE"); path != "" {
		pctx, written, err := heapProfileAtStop(ctx, path, log)
		if err != nil {
			return err
		}
		err = runPipelineCapturing(pctx, cfg, capo, stdout, log)
		stop()
		<-written
		return err
	}
	return runPipelineCapturing(ctx, cfg, capo, stdout, log)
}

// startCPUProfile writes a CPU profile of the whole run to path (0600),
// for `go tool pprof` (LINEAGED_CPUPROFILE, docs/performance.md).
func startCPUProfile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("LINEAGED_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("LINEAGED_CPUPROFILE: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// heapProfileAtStop opens path (0600) now, so a bad path fails the start,
// and writes the heap profile into it when stop ends, before the pipeline
// sees the end through the context it returns: what the running sensor
// holds (after a collection), not what is left once it has shut down, for
// `go tool pprof -inuse_space` (LINEAGED_MEMPROFILE, docs/performance.md).
// written is closed once the profile is written.
func heapProfileAtStop(stop context.Context, path string, log *slog.Logger) (ctx context.Context, written <-chan struct{}, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("LINEAGED_MEMPROFILE: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(stop))
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		<-stop.Done()
		runtime.GC()
		err := pprof.WriteHeapProfile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			log.Error("LINEAGED_MEMPROFILE: heap profile not written", "err", err)
		}
	}()
	return ctx, done, nil
}

func cmdDoctor(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig("doctor", args, stderr)
	if err != nil {
		return err
	}
	log := newConfigLogger(cfg, stderr)
	liftMemlock(log)
	rep := kernel.Doctor(sensorConfig(cfg, agent.DefaultTable()), log)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	return rep.Err()
}
