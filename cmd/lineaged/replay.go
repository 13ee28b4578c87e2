package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/lineaged/lineaged/capture"
	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sink"
)

// replayInfo is what a replayed pipeline takes from the capture instead of
// the kernel.
type replayInfo struct {
	header        capture.Header
	hooks, reason string
	stop          string // why the live sensor stopped
}

// hooksInfo is the hook path for sensor.start and sensor.stop.
func (p *pipeline) hooksInfo() (string, string) {
	if p.replay != nil {
		return p.replay.hooks, p.replay.reason
	}
	return p.sensor.Hooks()
}

// sourceName is sensor.source: live, or replay.
func (p *pipeline) sourceName() string {
	if p.replay != nil {
		return "replay"
	}
	return "live"
}

func (p *pipeline) liveCaptureMeta() map[string]string {
	m := captureMeta(p)
	m[metaHooks], m[metaReason] = p.sensor.Hooks()
	return m
}

// replayOpts are replay's own flags.
type replayOpts struct {
	speed       string
	session     string
	since       time.Time
	until       time.Time
	rules       string
	skipCorrupt bool
}

// loaded is one capture read whole: the engine's inputs in order and the
// facts it looked up.
type loaded struct {
	info   replayInfo
	steps  []lineage.Step
	book   *lineage.FactBook
	stats  capture.Stats
	endErr error // the file stopped early (truncated); nil at a clean end
	// undecodable counts records whose checksum held but whose payload
	// did not decode (skipped with --skip-corrupt).
	undecodable int
	// reloads counts the live run's rule reloads (SIGHUP).
	reloads int
	// snap is the engine's state where a tee started (its snapshot
	// records merged), restored in place of the /proc seed, and policy
	// the policy stage's; nil for a capture from the sensor's start or a
	// tee of format version 1.
	snap     *lineage.Snapshot
	policy   *policy.Snapshot
	snapWant snapshotCounts
}

// addSnapshot merges one snapshot record: the engine's part (its table,
// taken at the tee's first step) and the last stage's (verdicts and policy
// stage, taken where the tee's mark went out) come apart, each a head and
// its continuations in order.
func (l *loaded) addSnapshot(s *snapshotRecord) {
	if l.snap == nil {
		l.snap = &lineage.Snapshot{}
	}
	if s.Engine != nil {
		verdicts := l.snap.Verdicts
		*l.snap = *s.Engine
		l.snap.Verdicts = verdicts
		if s.Counts != nil {
			l.snapWant.Images, l.snapWant.Pending = s.Counts.Images, s.Counts.Pending
		}
	}
	if s.Policy != nil {
		l.policy = s.Policy
		l.snap.Verdicts = append(l.snap.Verdicts, s.Verdicts...)
		if s.Counts != nil {
			l.snapWant.Open = s.Counts.Open
		}
	}
	l.snap.Images = append(l.snap.Images, s.Images...)
	l.snap.Pending = append(l.snap.Pending, s.Pending...)
	if len(s.Open) > 0 {
		if l.policy == nil {
			l.policy = &policy.Snapshot{}
		}
		l.policy.Open = append(l.policy.Open, s.Open...)
	}
}

// snapshotWhole reports a snapshot whose continuations are not all in the
// capture (a record lost live, or a file cut short).
func (l *loaded) snapshotWhole() error {
	have := snapshotCounts{Images: len(l.snap.Images), Pending: len(l.snap.Pending)}
	if l.policy != nil {
		have.Open = len(l.policy.Open)
	}
	if have != l.snapWant {
		return fmt.Errorf("the capture's snapshot is incomplete: %d of %d images, %d of %d parked events, %d of %d session summaries",
			have.Images, l.snapWant.Images, have.Pending, l.snapWant.Pending, have.Open, l.snapWant.Open)
	}
	return nil
}

func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", stderr)
	var o replayOpts
	var since, until string
	fs.StringVar(&o.speed, "speed", "max", "pace: max, realtime, or Nx (e.g. 10x)")
	fs.StringVar(&o.session, "session", "", "write only the events of this agent session id (or root exec id)")
	fs.StringVar(&since, "since", "", "write only events at or after this time (RFC 3339)")
	fs.StringVar(&until, "until", "", "write only events before this time (RFC 3339)")
	fs.StringVar(&o.rules, "rules", "", "run this rule file or directory instead of policy.rules")
	fs.BoolVar(&o.skipCorrupt, "skip-corrupt", false, "skip damaged records, count them, go on")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: lineaged replay [flags] FILE...\n\nRuns the pipeline over captures (docs/capture.md).\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &exitError{exitUsage, err}
	}
	if fs.NArg() == 0 {
		return &exitError{exitUsage, errors.New("replay needs at least one capture file")}
	}
	var err error
	for _, t := range []struct {
		s   string
		dst *time.Time
	}{{since, &o.since}, {until, &o.until}} {
		if t.s != "" {
			if *t.dst, err = time.Parse(time.RFC3339Nano, t.s); err != nil {
				return &exitError{exitUsage, fmt.Errorf("bad time %q: %w", t.s, err)}
			}
		}
	}
	pace, err := parseSpeed(o.speed)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	cfg, err := loadConfig(fs, os.Getenv)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if o.rules != "" {
		cfg.Policy.Rules = o.rules
	}
	log := newLogger(cfg.Log.Level, stderr)
	if path := os.Getenv("LINEAGED_CPUPROFILE"); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var errs []error
	for _, path := range fs.Args() {
		l, err := loadCapture(path, o.skipCorrupt)
		if err != nil {
			return &exitError{exitRuntime, err}
		}
		if l.reloads > 0 {
			fmt.Fprintf(stderr, "lineaged: %s: the live run reloaded its rules %d times; replay runs one rule set throughout\n", path, l.reloads)
		}
		if err := replayOne(ctx, cfg, l, o, pace, stdout, stderr, log); err != nil {
			return err
		}
		if s := l.stats; s.CorruptBlocks+s.CorruptRecords+l.undecodable > 0 {
			fmt.Fprintf(stderr, "lineaged: %s: skipped %d corrupt blocks and %d corrupt records (%d bytes passed over)\n",
				path, s.CorruptBlocks, s.CorruptRecords+l.undecodable, s.SkippedBytes)
		}
		if l.endErr != nil {
			errs = append(errs, fmt.Errorf("replayed up to the last whole record: %w", l.endErr))
		}
	}
	return errors.Join(errs...)
}

// parseSpeed: 0 is as fast as possible, else the factor over real time.
func parseSpeed(s string) (float64, error) {
	switch s {
	case "max", "":
		return 0, nil
	case "realtime":
		return 1, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "x"), 64)
	if err != nil || f <= 0 || !strings.HasSuffix(s, "x") {
		return 0, fmt.Errorf("--speed %q: want max, realtime or Nx (e.g. 10x)", s)
	}
	return f, nil
}

// replayOne runs the pipeline over one loaded capture.
func replayOne(ctx context.Context, cfg *Config, l *loaded, o replayOpts, pace float64, stdout, stderr io.Writer, log *slog.Logger) (err error) {
	meta := l.info.header.Meta
	p := &pipeline{cfg: cfg, log: log, reg: prometheus.NewRegistry(), agents: agent.DefaultTable(), replay: &l.info}
	p.instance = meta[metaInstance]
	if p.instance == "" {
		return fmt.Errorf("capture header names no instance id")
	}
	if o.session == "" {
		o.session = meta[metaTeeSession] // a tee of one session
	}
	after, _ := strconv.ParseUint(meta[metaSeqAfter], 10, 64)
	p.seq = policy.NewSequencerAfter(p.instance, after, nil)
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.sink, err = sink.New(sinkConfig(cfg, stdout, p.seq.Stamp, nil), p.reg, log.With("component", "sink")); err != nil {
		return err
	}
	deps := l.book.Deps()
	if ns, err := strconv.ParseUint(l.info.header.Meta[metaMountNS], 10, 32); err == nil {
		// The recording host's mount namespace (absent from older
		// captures: then no process is said to be in another one).
		deps.MountNS = uint32(ns)
	}
	boot, err := deps.Boot.BootTime()
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if err := p.startPolicy(boot, replayActuator{}); err != nil {
		return err
	}
	humans := make(map[string]event.Human, len(cfg.Humans))
	for user, h := range cfg.Humans {
		humans[user] = event.Human{Name: h.Name, Email: h.Email}
	}
	lc := cfg.Lineage
	lc.Scope = cfg.Scope
	lc.Humans = humans
	if lc.AgentReleases, err = cfg.Agents.agentReleases(); err != nil {
		return err
	}
	if p.engine, err = lineage.New(lc, deps, log.With("component", "lineage")); err != nil {
		return err
	}
	p.engine.ReplayWaits(l.book.Wait)
	if meta[metaTee] != "" {
		// A tee ends while the sensor runs on: what its engine still
		// held went out later, from inputs the tee does not hold.
		p.engine.LeaveAtEnd()
	}
	if l.snap != nil {
		// A tee: the engine starts where the live one stood.
		if err := l.snapshotWhole(); err != nil {
			return err
		}
		if err := p.engine.Restore(l.snap, l.book.Snapshot); err != nil {
			return fmt.Errorf("capture snapshot: %w", err)
		}
		p.policy.Restore(l.policy)
	} else if procs, ok := l.book.Seed(); ok {
		p.engine.Seed(procs)
	}
	return p.runReplay(ctx, l, o, pace, stderr)
}

// replayActuator carries out no kill: the capture holds the outcome of the
// live ones (policy.action), and the processes are not here.
type replayActuator struct{}

func (replayActuator) KillProcess(sensor.ProcKey) error {
	return errors.New("replay: no processes to kill")
}

func (replayActuator) KillSession(sensor.ProcKey) (int, error) {
	return 0, errors.New("replay: no processes to kill")
}
