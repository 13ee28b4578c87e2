package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
)

// cmdCapture records a capture without publishing events. When a sensor
// runs, it asks it over the control socket to tee its stream (tee.go), so
// the service's ring has one reader; otherwise it loads its own, unpinned
// programs, with no hook socket, no metrics and its own sequence state
// (docs/capture.md).
func cmdCapture(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("capture", stderr)
	duration := fs.Duration("duration", 0, "stop after this long (default: until SIGINT or SIGTERM)")
	raw := fs.Bool("raw", false, "keep argv and transcript text unredacted (the header says so)")
	session := fs.String("session", "", "from a running sensor: replay writes only this agent session (id or root exec id)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: lineaged capture -o FILE [--duration D] [--raw] [flags]\n\nRecords raw events and the facts enrichment looked up (docs/capture.md).\n-o names the capture file; the other flags are run's.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	if fs.NArg() > 0 {
		return &exitError{exitUsage, fmt.Errorf("capture takes no arguments, got %q", fs.Args())}
	}
	path, _ := fs.GetString("output")
	if !fs.Changed("output") || path == "-" || path == "" {
		return &exitError{exitUsage, errors.New("capture needs -o FILE")}
	}
	cfg, err := loadConfig(fs, os.Getenv)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if sock := cfg.Control.Socket; sock != "" {
		teed, err := teeFromService(ctx, sock, path, controlRequest{Op: "tee", Raw: *raw, Session: *session}, stderr)
		if teed {
			return err
		}
		fmt.Fprintf(stderr, "lineaged: no running sensor answers on %s (%v): capturing with this process's own, unpinned programs\n", sock, err)
	} else {
		fmt.Fprintln(stderr, "lineaged: control.socket is off: capturing with this process's own, unpinned programs")
	}
	if *session != "" {
		return &exitError{exitUsage, errors.New("--session applies to a tee from a running sensor; replay --session filters any capture")}
	}
	state, err := os.MkdirTemp("", "lineaged-capture-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	cfg.Output = "-"
	cfg.Kafka.Brokers = nil
	cfg.Hook.Socket = ""
	cfg.Metrics.Listen = ""
	cfg.Audit.Enabled = false
	cfg.StateDir = state
	cfg.Kernel.PinPath = "" // its own programs, never the service's pins
	log := newLogger(cfg.Log.Level, stderr)
	liftMemlock(log)
	err = runPipelineCapturing(ctx, cfg, captureOpts{path: path, raw: *raw}, io.Discard, log)
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	if err == nil {
		fmt.Fprintf(stderr, "lineaged: capture written to %s\n", path)
	}
	return err
}
