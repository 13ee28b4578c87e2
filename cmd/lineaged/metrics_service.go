package main

import (
	"context"
	"errors"
	"log/slog"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lineaged/lineaged/sink/spool"
)

// lossCounts are the events lost so far, by the stage that lost them.
type lossCounts struct {
	kernel, skipped, shed, budget, queue, decode, sink, spool uint64
}

func (l lossCounts) total() uint64 {
	return l.kernel + l.skipped + l.shed + l.budget + l.queue + l.decode + l.sink + l.spool
}

func (p *pipeline) losses() lossCounts {
	st := p.sensor.Stats()
	l := lossCounts{kernel: st.KernelLost, skipped: st.Skipped, shed: st.Shed, budget: st.OverBudget, queue: st.QueueDrops, decode: st.DecodeErrors, sink: p.wloss.failures.Load()}
	if s, ok := p.rawSink.(interface{ Stats() spool.Stats }); ok {
		l.spool = s.Stats().Dropped
	}
	return l
}

var (
	descLosses = prometheus.NewDesc("lineaged_losses_total",
		"Events lost, by stage: kernel (ring-buffer reservations), skipped (program runs the kernel skipped: the program was already running on that CPU), shed (file and network records dropped to keep room in the ring for process records), session-budget (file and network records of a session that made more than half of them while the sensor was behind), queue (reader hand-off), decode, sink (failed writes), spool (Kafka spool records dropped).",
		[]string{"stage"}, nil)
	descRingFill = prometheus.NewDesc("lineaged_sensor_ring_fill_ratio",
		"Share of the kernel ring buffer holding records not yet read (0 to 1).", nil, nil)
	descCompliant = prometheus.NewDesc("lineaged_posture_compliant",
		"1 when the latest posture sample passed every required check, else 0.", nil, nil)
	descCheck = prometheus.NewDesc("lineaged_posture_check_passed",
		"1 when the posture check passed in the latest sample, else 0.", []string{"check"}, nil)
	descHealthy = prometheus.NewDesc("lineaged_healthy",
		"1 when /healthz answers 200, else 0.", nil, nil)
	descProbeAge = prometheus.NewDesc("lineaged_pipeline_probe_age_seconds",
		"Seconds since a liveness probe last reached the sink stage.", nil, nil)
	descHeartbeat = prometheus.NewDesc("lineaged_kernel_heartbeat",
		"The kernel heartbeat counter as carried by the last probe to reach the sink stage.", nil, nil)
)

// serviceCollector reads losses, ring fill, posture and health at scrape
// time.
type serviceCollector struct{ p *pipeline }

func (c serviceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLosses, descRingFill, descCompliant, descCheck, descHealthy, descProbeAge, descHeartbeat} {
		ch <- d
	}
}

func (c serviceCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	l := p.losses()
	for stage, n := range map[string]uint64{"kernel": l.kernel, "skipped": l.skipped, "shed": l.shed, "session-budget": l.budget, "queue": l.queue, "decode": l.decode, "sink": l.sink, "spool": l.spool} {
		ch <- prometheus.MustNewConstMetric(descLosses, prometheus.CounterValue, float64(n), stage)
	}
	ch <- prometheus.MustNewConstMetric(descRingFill, prometheus.GaugeValue, p.sensor.RingFill())
	if s := p.posture.Latest(); s != nil {
		ch <- prometheus.MustNewConstMetric(descCompliant, prometheus.GaugeValue, b2f(s.Compliant))
		for name, r := range s.Checks {
			ch <- prometheus.MustNewConstMetric(descCheck, prometheus.GaugeValue, b2f(r.OK), name)
		}
	}
	ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, b2f(len(p.unhealthy()) == 0))
	p.live.mu.Lock()
	age, beat := p.live.now().Sub(p.live.arrived).Seconds(), p.live.arrivedBeat
	p.live.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descProbeAge, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(descHeartbeat, prometheus.CounterValue, float64(beat))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// defaultMetricsListen is where /metrics and /healthz are served unless
// metrics.listen says otherwise: loopback only (docs/operations.md).
const defaultMetricsListen = "127.0.0.1:9464"

// registerServiceStats registers events by kind and serviceCollector.
func (p *pipeline) registerServiceStats() error {
	if err := p.reg.Register(p.kinds); err != nil {
		return err
	}
	return p.reg.Register(serviceCollector{p})
}

// listenMetrics serves /metrics and /healthz at metrics.listen. A port in
// use at the default address is logged and the sensor runs without them;
// at an address the admin chose, it is an error.
func (p *pipeline) listenMetrics(ctx context.Context, log *slog.Logger) error {
	addr := p.cfg.Metrics.Listen
	if addr == "" {
		return nil
	}
	err := serveMetrics(ctx, addr, p.reg, p.serveHealth, log)
	if err != nil && addr == defaultMetricsListen && errors.Is(err, syscall.EADDRINUSE) {
		log.Warn("metrics and /healthz off: the default address is in use; set metrics.listen", "addr", addr, "err", err)
		return nil
	}
	if err != nil {
		return &exitError{exitUsage, err}
	}
	return nil
}
