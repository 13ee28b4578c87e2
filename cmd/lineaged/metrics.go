package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statMetric is one counter or gauge read from a stage's Stats snapshot at
// scrape time: the stages keep plain counters, and no hot path touches
// Prometheus.
type statMetric struct {
	name, help string
	gauge      bool
	read       func() float64
}

// registerStats exposes the counters of the sensor, lineage and agent
// stages. Sink metrics (writes, Kafka Stats, spool) are registered by the
// sink itself.
func (p *pipeline) registerStats() error {
	metrics := []statMetric{
		{"lineaged_sensor_records_total", "Ring-buffer records read.", false, func() float64 { return float64(p.sensor.Stats().Records) }},
		{"lineaged_sensor_decode_errors_total", "Ring-buffer records that failed to decode.", false, func() float64 { return float64(p.sensor.Stats().DecodeErrors) }},
		{"lineaged_sensor_queue_drops_total", "Decoded events dropped because the reader's hand-off queue was full.", false, func() float64 { return float64(p.sensor.Stats().QueueDrops) }},
		{"lineaged_sensor_kernel_lost_total", "Events lost in the kernel (ring-buffer reservation failures).", false, func() float64 { return float64(p.sensor.Stats().KernelLost) }},
		{"lineaged_sensor_skipped_runs_total", "Program runs the kernel skipped because the program was already running on that CPU (each lost what that run would have reported).", false, func() float64 { return float64(p.sensor.Stats().Skipped) }},
		{"lineaged_sensor_shed_total", "File and network records the kernel dropped, above the ring's shed level, to keep room for process records.", false, func() float64 { return float64(p.sensor.Stats().Shed) }},
		{"lineaged_sensor_session_budget_total", "File and network records dropped (by the kernel above half the ring, or by the reader at its full queue) from sessions that made more than half of the recent ones (sensor.loss where session-budget, naming the session).", false, func() float64 { return float64(p.sensor.Stats().OverBudget) }},
		{"lineaged_sensor_sessions_full_total", "Processes the kernel could not make agent-session members because the sessions map was full (sensor.loss where sessions; their process.fork or process.exec says untracked).", false, func() float64 { return float64(p.sensor.Stats().SessionsFull) }},
		{"lineaged_sensor_open_args_full_total", "Opens and fchmods of session members whose entry found the table of calls in flight full (threads parked inside opens), decoded at their exit instead: reported, fd_changed possibly set where no descriptor changed.", false, func() float64 { return float64(p.sensor.Stats().OpenArgsFull) }},
		{"lineaged_sensor_delivered_total", "Raw events handed to enrichment.", false, func() float64 { return float64(p.sensor.Stats().Delivered) }},

		{"lineaged_lineage_live_processes", "Live process images in the table.", true, func() float64 { return float64(p.engine.Stats().Live) }},
		{"lineaged_lineage_exited_processes", "Exited process images kept for their grace period.", true, func() float64 { return float64(p.engine.Stats().Exited) }},
		{"lineaged_lineage_pending_events", "Events waiting for their parent process.", true, func() float64 { return float64(p.engine.Stats().Pending) }},
		{"lineaged_lineage_emitted_total", "Enriched events emitted.", false, func() float64 { return float64(p.engine.Stats().Emitted) }},
		{"lineaged_lineage_evictions_total", "Process images evicted from the table before their grace period ended.", false, func() float64 { return float64(p.engine.Stats().Evictions) }},
		{"lineaged_lineage_misses_total", "Events whose process or parent was not in the table.", false, func() float64 { return float64(p.engine.Stats().Misses) }},
		{"lineaged_lineage_pending_overflow_total", "Events forced out of a full pending queue.", false, func() float64 { return float64(p.engine.Stats().PendingOverflow) }},
		{"lineaged_lineage_pending_timeouts_total", "Events emitted without their parent after waiting.", false, func() float64 { return float64(p.engine.Stats().PendingTimeouts) }},
		{"lineaged_lineage_hash_wait_timeouts_total", "Binaries whose hash was not ready within enrich_wait.", false, func() float64 { return float64(p.engine.Stats().HashWaitTimeouts) }},
		{"lineaged_lineage_binary_followups_total", "process.binary events queued for execs whose hash came after their event.", false, func() float64 { return float64(p.engine.Stats().BinaryFollowUps) }},
		{"lineaged_lineage_binary_followups_dropped_total", "process.binary follow-ups not sent because too many were waiting.", false, func() float64 { return float64(p.engine.Stats().BinaryFollowUpsDropped) }},
		{"lineaged_lineage_inspections_refused_total", "Binaries given verdict error at once because too many inspections were in flight.", false, func() float64 { return float64(p.engine.Stats().InspectionsRefused) }},
		{"lineaged_lineage_resolve_timeouts_total", "Agent attributions not completed within enrich_wait.", false, func() float64 { return float64(p.engine.Stats().ResolveTimeouts) }},
		{"lineaged_lineage_agent_lookalikes_total", "Execs the agent table recognised inside a session that stayed members of it, their binary not verified (process.agent_lookalike).", false, func() float64 { return float64(p.engine.Stats().AgentLookalikes) }},

		{"lineaged_hold_holds_total", "Processes the kernel stopped at exec (hashing.hold_exec) that the sensor took hold of.", false, func() float64 { return float64(p.holdStat(func(h *holder) uint64 { return h.holds.Load() })) }},
		{"lineaged_hold_releases_total", "Held processes continued (SIGCONT), hashed or not.", false, func() float64 { return float64(p.holdStat(func(h *holder) uint64 { return h.releases.Load() })) }},
		{"lineaged_hold_kills_total", "Held processes killed (SIGKILL) before they ran: a deny_exec sha256: entry named their image.", false, func() float64 { return float64(p.holdStat(func(h *holder) uint64 { return h.kills.Load() })) }},
		{"lineaged_hold_timeouts_total", "Held processes continued unhashed because the hash took longer than hashing.hold_timeout.", false, func() float64 { return float64(p.holdStat(func(h *holder) uint64 { return h.timeouts.Load() })) }},
		{"lineaged_hold_failures_total", "Held processes continued unhashed because hashing failed, or not signalled (logged).", false, func() float64 { return float64(p.holdStat(func(h *holder) uint64 { return h.failures.Load() })) }},

		{"lineaged_sink_write_failures_total", "Events the sink failed to write (each also reported by a sensor.loss, where sink).", false, func() float64 { return float64(p.wloss.failures.Load()) }},

		{"lineaged_agent_sessions", "Agent sessions remembered.", true, func() float64 { return float64(p.observer.Stats().Sessions) }},
		{"lineaged_agent_tools_bound_total", "Tool processes tied to their tool call.", false, func() float64 { return float64(p.observer.Stats().ToolsBound) }},
		{"lineaged_agent_tools_unbound_total", "Tool processes whose tool call never appeared in the transcript in time.", false, func() float64 { return float64(p.observer.Stats().ToolsUnbound) }},
		{"lineaged_agent_transcript_malformed_total", "Transcript lines skipped as malformed.", false, func() float64 { return float64(p.observer.Stats().Transcript.Malformed) }},
		{"lineaged_agent_transcript_oversized_total", "Transcript lines skipped as over the size bound.", false, func() float64 { return float64(p.observer.Stats().Transcript.Oversized) }},
		{"lineaged_binid_queue_full_total", "Binary hashes not started because the hashing queue, or the file owner's share of it, was full.", false, func() float64 {
			if p.inspect == nil {
				return 0
			}
			return float64(p.inspect.QueueFull())
		}},
		{"lineaged_agent_transcript_refused_total", "Transcript files refused: too large, sparse, another user's, outside the session's configuration directory or behind a symlink.", false, func() float64 { return float64(p.observer.Stats().Transcript.Refused) }},
		{"lineaged_agent_transcript_dropped_total", "Transcript tool calls forgotten or not kept to stay within the retained-bytes budget.", false, func() float64 { return float64(p.observer.Stats().Transcript.Dropped) }},
	}
	for _, m := range metrics {
		var c prometheus.Collector
		if m.gauge {
			c = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: m.name, Help: m.help}, m.read)
		} else {
			c = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help}, m.read)
		}
		if err := p.reg.Register(c); err != nil {
			return fmt.Errorf("metric %s: %w", m.name, err)
		}
	}
	if err := p.registerServiceStats(); err != nil {
		return err
	}
	for _, c := range []prometheus.Collector{
		newRuleCollector(p),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := p.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// serveMetrics listens at once, so a port in use is an error at start, and
// serves /metrics and /healthz until ctx ends.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, health http.HandlerFunc, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if health != nil {
		mux.HandleFunc("/healthz", health)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return nil
}
