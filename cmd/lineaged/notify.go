package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lineaged/lineaged/sink"
)

// probeEvery is how often a liveness probe is sent when systemd asks for
// no watchdog (otherwise a third of its interval).
const probeEvery = 5 * time.Second

// serviceState is what the pipeline keeps for systemd and /healthz.
type serviceState struct {
	live       *liveness
	rawSink    sink.Sink // the sink as built, for its spool
	stallLimit time.Duration
	watchdog   time.Duration // systemd's WatchdogSec, 0 when off
	kinds      *prometheus.CounterVec

	detachMu  sync.Mutex
	detachAt  time.Time
	detachWhy string
}

// watchService wraps the sink for liveness and reads systemd's watchdog
// setting; called once the pipeline is built, before it runs.
func (p *pipeline) watchService() {
	p.live = newLiveness(time.Now)
	p.watchdog, _ = daemon.SdWatchdogEnabled(false)
	p.stallLimit = stallLimit
	if p.watchdog > 0 {
		p.stallLimit = p.watchdog
	}
	p.kinds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lineaged_events_written_total",
		Help: "Events the sink wrote, by kind.",
	}, []string{"kind"})
	p.rawSink = p.sink
	p.sink = &watchedSink{Sink: p.sink, live: p.live, byKind: func(k string) { p.kinds.WithLabelValues(k).Inc() }}
}

// superviseService tells systemd the sensor is ready (the programs are
// attached and the first posture sample taken: start has returned), then
// until ctx ends sends liveness probes, pings the watchdog while they reach
// the sink stage, and keeps STATUS current. Without NOTIFY_SOCKET the
// notifications go nowhere; the probes still feed /healthz.
func (p *pipeline) superviseService(ctx context.Context, log *slog.Logger) {
	every := probeEvery
	if p.watchdog > 0 {
		every = p.watchdog / 3
	}
	notify := func(state string) {
		if _, err := daemon.SdNotify(false, state); err != nil {
			log.Warn("sd_notify", "err", err)
		}
	}
	lastAt, lastN := time.Now(), p.live.written.Load()
	notify(daemon.SdNotifyReady + "\nSTATUS=" + p.statusLine(0, ""))
	if p.watchdog > 0 {
		log.Info("systemd watchdog on", "interval", p.watchdog)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	wasStalled := ""
	for {
		select {
		case <-ctx.Done():
			notify(daemon.SdNotifyStopping + "\nSTATUS=stopping: flushing the pipeline")
			return
		case <-t.C:
		}
		p.live.sendProbe(p.sensor.Heartbeat, p.engine.Emit)
		stalled := p.live.stalled(p.stallLimit)
		if stalled != wasStalled {
			if stalled != "" {
				log.Error("pipeline stalled: watchdog pings stopped", "reason", stalled)
			} else {
				log.Info("pipeline moving again: watchdog pings resumed")
			}
			wasStalled = stalled
		}
		now, n := time.Now(), p.live.written.Load()
		rate := float64(n-lastN) / now.Sub(lastAt).Seconds()
		lastAt, lastN = now, n
		state := "STATUS=" + p.statusLine(rate, stalled)
		if stalled == "" && p.watchdog > 0 {
			state = daemon.SdNotifyWatchdog + "\n" + state
		}
		notify(state)
	}
}

// statusLine is systemctl status's one line: events/s and losses.
func (p *pipeline) statusLine(rate float64, stalled string) string {
	l := p.losses()
	s := fmt.Sprintf("%.1f events/s, %d lost (kernel %d, queue %d, decode %d, sink %d)",
		rate, l.total(), l.kernel, l.queue, l.decode, l.sink)
	if stalled != "" {
		s += "; STALLED: " + stalled
	}
	return s
}

// shutdownDeadline bounds the flush after SIGTERM (the unit's
// TimeoutStopSec leaves room beyond it).
const shutdownDeadline = 20 * time.Second

// runWithin runs the pipeline; once ctx ends (SIGTERM), the flush that ends
// with sensor.stop gets deadline, after which the sensor gives up on it
// and exits with an error (what the Kafka spool holds is sent at the next
// start).
func (p *pipeline) runWithin(ctx context.Context, deadline time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- p.run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(deadline)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("shutdown: the pipeline did not flush within %s; events still in flight are lost", deadline)
	}
}
