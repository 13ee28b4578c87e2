package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/agent/claude"
	"github.com/lineaged/lineaged/lineage/binid"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
	"github.com/lineaged/lineaged/sensor/posture"
	"github.com/lineaged/lineaged/sensor/procfs"
	"github.com/lineaged/lineaged/sink"
	"github.com/lineaged/lineaged/sink/kafka"
	"github.com/lineaged/lineaged/sink/native"
)

const procRoot = "/proc"

// pipeline is one running sensor: source -> lineage -> policy (alerts,
// output transforms) -> sequencer -> sink. Stages are connected by bounded
// channels; only the ring-buffer reader inside the source never blocks (it
// counts what falls off its queue).
type pipeline struct {
	cfg      *Config
	log      *slog.Logger
	reg      *prometheus.Registry
	instance string

	// source delivers the raw events; sensor is the same live sensor for
	// what only the kernel loader has: the /proc session seed, the hook
	// path in use and its counters.
	source   sensor.Source
	sensor   *kernel.Sensor
	engine   *lineage.Engine
	agents   *agent.Table
	observer *claude.Observer
	policy   *policy.Stage
	seq      *policy.Sequencer
	sink     sink.Sink
	inspect  *binid.Inspector
	posture  *posture.Sampler
	killer   *policy.Killer
	// holder decides the processes the kernel stopped at exec
	// (hashing.hold_exec; nil: off).
	holder *holder
	// postureNow is the latest posture as an event part, for lineage and
	// the hook decisions; hooks answers the agent hooks (nil: off).
	postureNow *lineage.LatestPosture
	hooks      *hookServer
	audit      *auditTrail // nil: audit.enabled is off

	// seqState keeps the seqs across runs (nil: no state directory);
	// crashLoss reports the previous run's unwritten events; wloss the
	// events the sink failed to write (run's goroutine only).
	seqState  *policy.SeqState
	seqErr    error
	crashLoss *event.Event
	wloss     writeLoss
	reloads   ruleReloads   // SIGHUP reloads of policy.rules
	creloads  configReloads // SIGHUP reloads of the configuration

	serviceState // systemd notify, watchdog and /healthz (notify.go)

	// capture records this run (run --capture; nil: off); replay is set
	// when the events come from a capture instead (replay.go).
	capture    *captureRec
	replay     *replayInfo
	stopReason string

	// control is the local control socket (nil: off); tees are the
	// capture streams it serves (tee.go); baseDeps and lineageCfg are the
	// engine's providers and configuration, for a tee's snapshot.
	control    *controlServer
	tees       teeHub
	baseDeps   lineage.Deps
	lineageCfg lineage.Config
}

// newInstanceID names this run of the sensor in event ids.
func newInstanceID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// sinkConfig builds the sink's configuration; stamp numbers the events the
// sink makes itself (Kafka loss reports) in the pipeline's sequence.
func sinkConfig(cfg *Config, stdout io.Writer, stamp func(*event.Event), durable func(uint64, time.Time)) sink.Config {
	k := cfg.Kafka
	k.SASL.Mechanism = strings.ToUpper(k.SASL.Mechanism)
	k.Stamp = stamp
	k.OnDurable = durable
	k.DeadLetterDir = stateDir(cfg)
	return sink.Config{
		Format: cfg.Format,
		Output: cfg.Output,
		File: sink.FileConfig{
			MaxBytes: int64(cfg.File.MaxSizeMB) << 20,
			Retain:   cfg.File.Retain,
		},
		Kafka:         k,
		SensorVersion: version,
		Native: native.Encoder{
			Ancestry: cfg.Events.Ancestry,
			V1:       cfg.Events.Schema == "v1",
			// One budget for every output: a Kafka message, a file line.
			MaxBytes: kafka.EncodedBudget(cfg.Kafka.MaxMessageBytes),
		},
		Stdout: stdout,
	}
}

func sensorConfig(cfg *Config, agents *agent.Table) kernel.Config {
	scope := kernel.ScopeAgents
	if cfg.Scope == lineage.ScopeAll {
		scope = kernel.ScopeAll
	}
	return kernel.Config{
		Scope:          scope,
		SessionMapSize: uint32(cfg.Sensor.SessionMapSize),
		RingBufferSize: uint32(cfg.Sensor.RingBufferBytes),
		QueueSize:      cfg.Sensor.QueueSize,
		Recognisers:    agents.Kernel(),
		// The policy owns the deny list; the kernel loads its keys.
		DenyKeys:    policy.DenyKeys(cfg.Policy.DenyExec, filepath.EvalSymlinks),
		DenyInodes:  denyInodes(cfg.Policy.DenyExec),
		DenyLater:   policy.DenyByHash(cfg.Policy.DenyExec),
		DenyIOURing: cfg.Policy.DenyIOURing,
		PinPath:     cfg.Kernel.PinPath,
		// Stopped at exec to be hashed (hold.go); the pipeline's holder
		// is OnHeld.
		HoldExeFlags: holdMask(cfg.Hashing.HoldExec),
		HoldUnseen:   slices.Contains(cfg.Hashing.HoldExec, holdUnseen),
	}
}

// denyInodes hands the kernel the identity of each denied file, so a hard
// link or bind mount of it is denied too.
func denyInodes(entries []string) map[kernel.DenyInode]uint32 {
	files := policy.DenyInodes(entries, policy.StatFile)
	m := make(map[kernel.DenyInode]uint32, len(files))
	for f, i := range files {
		m[kernel.DenyInode(f)] = i
	}
	return m
}

// start builds every stage. Order matters: the sink first (a wrong broker,
// TLS file or SASL mechanism fails before anything is loaded into the
// kernel), then the BPF programs are attached, and only then is /proc
// scanned, so a process started in between is seen by one or the other.
func start(cfg *Config, stdout io.Writer, log *slog.Logger) (p *pipeline, err error) {
	return startCapturing(cfg, captureOpts{}, stdout, log)
}

// startCapturing is start, recording the run into a capture file when capo
// names one (docs/capture.md).
func startCapturing(cfg *Config, capo captureOpts, stdout io.Writer, log *slog.Logger) (p *pipeline, err error) {
	p = &pipeline{cfg: cfg, log: log, reg: prometheus.NewRegistry(), agents: agent.DefaultTable()}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.instance, err = newInstanceID(); err != nil {
		return p, err
	}
	p.openSequencer()
	var durable func(uint64, time.Time)
	if p.seqState != nil {
		durable = p.seqState.Durable
	}
	sc := sinkConfig(cfg, stdout, p.seq.Stamp, durable)
	if err := p.startAudit(&sc); err != nil {
		return p, err
	}
	if p.sink, err = sink.New(sc, p.reg, log.With("component", "sink")); err != nil {
		return p, err
	}
	p.noteCrashLoss()
	// One boot time for lineage and the kill actions (fixedBoot), so a
	// kill turns an event's start time back into the kernel's exact key.
	boot, err := lineage.LocalBoot{}.BootTime()
	if err != nil {
		return p, err
	}
	act := &actuator{procRoot: procRoot}
	if err := p.startPolicy(boot, act); err != nil {
		return p, err
	}
	if err := p.startBinaries(); err != nil {
		return p, err
	}
	kc := sensorConfig(cfg, p.agents)
	if kc.HoldExeFlags != 0 || kc.HoldUnseen {
		p.holder = newHolder(p.inspect, cfg.Policy.DenyExec, cfg.Hashing.HoldTimeout, procRoot, log.With("component", "hold"))
		kc.OnHeld = p.holder.held
	}
	if p.sensor, err = kernel.New(kc, log.With("component", "sensor")); err != nil {
		return p, err
	}
	if kc.HoldUnseen {
		p.holder.markSeen = p.sensor.MarkSeen
	}
	p.source = p.sensor
	p.startTrustWatch() // trust.go
	if capo.path != "" {
		if p.capture, err = openCapture(capo, cfg, p.liveCaptureMeta(), log); err != nil {
			return p, err
		}
	}
	if p.audit != nil {
		if err := p.audit.open(); err != nil {
			return p, err
		}
	}
	act.sensor = p.sensor // before any event, so before any kill
	p.logSeqErr()
	if err := p.startPosture(); err != nil {
		return p, err
	}
	p.startControl() // control.go; before lineage, which records for it
	if err := p.startLineage(boot); err != nil {
		return p, err
	}
	p.startHooks()
	return p, p.seed()
}

// startPolicy loads the rules and builds the policy stage with its kill
// actions, carried out by act once the sensor is loaded.
func (p *pipeline) startPolicy(boot time.Time, act policy.Actuator) (err error) {
	rules, err := loadRules(p.cfg, p.log.With("component", "policy"))
	if err != nil {
		return err
	}
	if p.killer, err = policy.NewKiller(policy.KillConfig{
		Actuator: act, Boot: boot, Emit: func(ev *event.Event) {
			if p.replay == nil { // a replay has the live outcomes
				p.engine.Emit(ev)
			}
		},
	}); err != nil {
		return err
	}
	rc := p.cfg.Redact
	rc.IsAgent = p.agents.IsAgent
	p.policy, err = policy.New(policy.Config{
		DenyExec: p.cfg.Policy.DenyExec,
		Rules:    rules,
		Kill:     p.killer,
		Redact:   rc,
		// Copies of a binary denied by SHA-256, once hashed; the sensor
		// is loaded before any event reaches the stage.
		DenyFile: func(f policy.DenyFile, idx uint32) error {
			if p.sensor == nil { // replay: no kernel to tell
				return nil
			}
			return p.sensor.DenyInode(kernel.DenyInode(f), idx)
		},
		// agent.session_start and agent.session_end (docs/schema.md).
		SessionSummaries: true,
	})
	if err != nil {
		return &exitError{exitUsage, err}
	}
	return nil
}

// startBinaries opens binary identity: hashing limits, trust keys and the
// package databases.
func (p *pipeline) startBinaries() (err error) {
	bc := p.cfg.Trust
	bc.Config = p.cfg.Hashing
	bc.ProcRoot = procRoot
	p.inspect, err = binid.Open(bc, p.log.With("component", "binid"))
	if err != nil {
		if p.inspect == nil {
			return err
		}
		// A trust key that cannot be read is not fatal: binaries it might
		// have vouched for get verdict error with this reason.
		p.log.Error("trust policy incomplete", "err", err)
	}
	return nil
}

// startPosture builds the sampler with the facts only the loaded sensor
// has: its attached programs and the kernel's session members.
func (p *pipeline) startPosture() (err error) {
	pc := p.cfg.Posture
	pc.Attached = p.sensor.AttachedPrograms
	pc.InSession = p.sensor.InSession
	pc.SelfCheck = p.sensor.SelfCheckProblem
	if p.posture, err = posture.New(pc, time.Now, p.log.With("component", "posture")); err != nil {
		return &exitError{exitUsage, err}
	}
	// A self-check finding (or its repair confirmed) is sampled at once.
	p.sensor.OnSelfCheckChange(p.posture.Resample)
	return nil
}

// startLineage builds the engine with its fact sources and the agent
// integrations.
func (p *pipeline) startLineage(boot time.Time) (err error) {
	p.postureNow = &lineage.LatestPosture{Sampler: p.posture}
	p.observer = claude.New(claude.Config{Table: p.agents, Proc: lineage.ProcFS{Root: procRoot}}, p.log)
	// One integration per agent that has one; the router gives the others
	// the generic attribution. A new agent integration is one more entry.
	router := agent.NewRouter(agent.RouterConfig{
		Table:        p.agents,
		Integrations: map[sensor.AgentKind]agent.Integration{sensor.AgentClaudeCode: p.observer},
	})
	humans := make(map[string]event.Human, len(p.cfg.Humans))
	for user, h := range p.cfg.Humans {
		humans[user] = event.Human{Name: h.Name, Email: h.Email}
	}
	lc := p.cfg.Lineage
	lc.Scope = p.cfg.Scope // validated and spelled agents|all by the config
	lc.Humans = humans
	if lc.AgentReleases, err = p.cfg.Agents.agentReleases(); err != nil {
		return err
	}
	deps := lineage.Deps{
		Host:     lineage.LocalHost{},
		Boot:     fixedBoot(boot),
		Proc:     lineage.ProcFS{Root: procRoot},
		Binaries: p.inspect,
		Users:    &lineage.Passwd{Path: "/etc/passwd"},
		Observer: countObserver{router, &p.tees.obsCalls},
		Posture:  countPosture{p.postureNow, &p.tees.postCalls},
		Cgroups:  &lineage.CgroupFS{},
		Logins:   lineage.NewLoginKeys(lineage.LoginSources{}, p.log),
		MountNS:  lineage.HostMountNS(procRoot),
	}
	p.baseDeps, p.lineageCfg = deps, lc
	recording := p.capture != nil || p.control != nil
	if recording {
		// With only the control socket, facts are built while a tee runs.
		on := func() bool { return p.capture != nil || p.tees.any.Load() }
		deps = lineage.RecordDepsWhile(deps, p.recordFact, on)
	}
	p.engine, err = lineage.New(lc, deps, p.log.With("component", "lineage"))
	if err == nil && recording {
		p.engine.RecordSteps(p.recordStep)
		p.engine.RecordWaits(func(key string) { p.recordFact(lineage.Fact{Kind: lineage.FactWait, Key: key}) })
	}
	return err
}

// seed runs once the programs are attached: what starts from now on is seen
// in the kernel, so it seeds what was already running, then opens the
// stream with sensor.start and the first posture sample.
func (p *pipeline) seed() error {
	members, err := p.agents.Seed(procRoot, p.sensor.AddSessionProcs)
	if err != nil {
		return fmt.Errorf("seeding agent sessions from %s: %w", procRoot, err)
	}
	procs, err := procfs.Scan(procRoot)
	if err != nil {
		return fmt.Errorf("seeding the process table from %s: %w", procRoot, err)
	}
	if p.capture != nil {
		p.capture.seed(procs)
	}
	p.engine.Seed(procs)
	// The first posture sample is taken before sensor.start, so every
	// event of this run carries one and the stream always opens with it.
	first := p.posture.Sample(context.Background())
	info := p.sensorInfo("")
	p.audit.describePrevious(info)
	p.engine.Emit(&event.Event{Kind: event.KindSensorStart, Sensor: info})
	if p.crashLoss != nil {
		p.engine.Emit(p.crashLoss)
	}
	p.engine.Emit(lineage.PostureEvent(posture.Sampled, &first))
	p.log.Info("sensor started", "instance", p.instance, "scope", p.cfg.Scope, "processes", len(procs),
		"session_members", len(members), "output", outputName(p.cfg))
	return nil
}

func outputName(cfg *Config) string {
	if len(cfg.Kafka.Brokers) > 0 {
		return "kafka:" + cfg.Kafka.Topic
	}
	if cfg.Output == "-" {
		return "stdout"
	}
	return cfg.Output
}

// sensorInfo describes this run for sensor.start and sensor.stop: which
// hook path enforces policy here and why (start), or why it stopped.
func (p *pipeline) sensorInfo(reason string) *event.Sensor {
	hooks, why := p.hooksInfo()
	if reason == "" {
		reason = why
	}
	return &event.Sensor{
		Version:    version,
		InstanceID: p.instance,
		Scope:      p.cfg.Scope,
		Source:     p.sourceName(),
		Hooks:      hooks,
		Reason:     reason,
	}
}

// close releases every stage that was built; safe on a partial pipeline.
func (p *pipeline) close() error {
	var errs []error
	if p.killer != nil {
		p.killer.Close()
	}
	if p.hooks != nil {
		p.hooks.close()
	}
	p.closeControl()
	if p.holder != nil {
		p.holder.close() // no process is left stopped
	}
	if p.source != nil {
		errs = append(errs, p.source.Close())
	}
	if p.capture != nil {
		errs = append(errs, p.capture.close(p.stopReason))
	}
	if p.sink != nil {
		errs = append(errs, p.sink.Close())
	}
	if p.seqState != nil {
		errs = append(errs, p.seqState.Close())
	}
	if p.inspect != nil {
		p.inspect.Close() // saves the hash cache; logs its own failure
	}
	if p.audit != nil {
		errs = append(errs, p.audit.close())
	}
	return errors.Join(errs...)
}

// run moves events until ctx ends, then drains what is in flight: the
// sensor stops first, lineage flushes what it holds and emits sensor.stop,
// and the sink is closed last, so everything accepted is written (or left
// in the Kafka spool for the next start).
func (p *pipeline) run(ctx context.Context) error {
	raw := make(chan sensor.Event, 1024)

	// A failing source stops the rest too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	var srcErr, engErr error
	wg.Add(3)
	if p.hooks != nil {
		go p.hooks.serve(ctx)
	}
	if p.control != nil {
		go p.control.serve(ctx)
	}
	go p.emitCheckpoints(ctx)
	go func() {
		defer wg.Done()
		srcErr = p.source.Run(ctx, raw)
		reason := "shutdown requested"
		if srcErr != nil && !errors.Is(srcErr, context.Canceled) {
			reason = srcErr.Error()
		}
		p.stopReason = reason
		cancel()
		// Every process still held is continued before the sensor
		// stops.
		if p.holder != nil {
			p.holder.close()
		}
		// The hook calls in flight are answered and recorded while
		// lineage still takes events in.
		if p.hooks != nil {
			p.hooks.close()
		}
		// Kills still queued are carried out and reported while
		// lineage still takes events in.
		p.killer.Close()
		// Queued before the input ends, so lineage emits it last.
		p.engine.EmitAtEnd(&event.Event{Kind: event.KindSensorStop, Sensor: p.sensorInfo(reason)})
		close(raw)
	}()
	engDone := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(engDone)
		// Not ctx: lineage ends when its input does, after flushing. The
		// last stage (policy, sequencer, sink) runs on lineage's emitter
		// goroutine: no hand-off per event.
		engErr = p.engine.RunFunc(context.Background(), raw, p.write)
	}()
	go func() {
		defer wg.Done()
		_ = p.posture.Run(ctx, func(r posture.Report, s *posture.Sample) {
			p.engine.Emit(lineage.PostureEvent(r, s))
		})
	}()

	<-engDone
	wg.Wait()
	p.reportWriteLoss(true)
	auditErr := p.finishAudit()
	closeErr := p.close()
	p.stoppedAudit(errors.Join(auditErr, closeErr))
	p.log.Info("sensor stopped", "write_failures", p.wloss.failures.Load())
	for _, err := range []error{srcErr, engErr} {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return closeErr
}

// write takes one enriched event through the end of the pipeline: the
// policy stage (its alerts and actions, the output transforms), the
// sequencer, the sink. Every failed write is counted (metric
// lineaged_sink_write_failures_total) and reported by a sensor.loss.
func (p *pipeline) write(ev *event.Event) {
	if p.live != nil && p.live.takeProbe(ev) {
		return
	}
	if p.tees.atSink(p, ev, p.seq.Last()) {
		return
	}
	out := p.policy.Process(ev)
	p.seq.StampAll(out)
	for _, o := range out {
		p.writeOne(o)
	}
	p.reportWriteLoss()
	p.afterWrite()
}

func runPipeline(ctx context.Context, cfg *Config, stdout io.Writer, log *slog.Logger) error {
	return runPipelineCapturing(ctx, cfg, captureOpts{}, stdout, log)
}

func runPipelineCapturing(ctx context.Context, cfg *Config, capo captureOpts, stdout io.Writer, log *slog.Logger) error {
	// SIGHUP reloads the rules; caught from the start, so it never ends
	// the process (its default action).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	p, err := startCapturing(cfg, capo, stdout, log)
	if err != nil {
		return err
	}
	go p.reloadOnHUP(ctx, hup)
	p.watchService()
	if err := p.registerStats(); err != nil {
		p.close()
		return err
	}
	if err := registerConfigReloads(p.reg, &p.creloads); err != nil {
		p.close()
		return err
	}
	if err := p.listenMetrics(ctx, log.With("component", "metrics")); err != nil {
		p.close()
		return err
	}
	go p.superviseService(ctx, log.With("component", "service"))
	return p.runWithin(ctx, shutdownDeadline)
}
