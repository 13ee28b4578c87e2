package main

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
)

// stateDir is where the sensor keeps its own state: state_dir, or the
// parent of the Kafka spool directory.
func stateDir(cfg *Config) string {
	if cfg.StateDir != "" {
		return cfg.StateDir
	}
	return filepath.Dir(filepath.Clean(cfg.Kafka.Spool.Dir))
}

// openSequencer builds the one sequencer, numbering from after the last
// seq of the previous run as the state file says, and keeps the loss
// report for a previous run that ended with events numbered and never
// written (a crash or SIGKILL). Without a usable state directory the
// sequencer starts at 1 and the gap is not reported: said in the log.
func (p *pipeline) openSequencer() {
	dir := stateDir(p.cfg)
	path := filepath.Join(dir, policy.SeqStateName)
	err := os.MkdirAll(dir, 0o700)
	var prev policy.PreviousRun
	if err == nil {
		// prev is read again after the sink opened: see noteCrashLoss.
		p.seqState, prev, err = policy.OpenSeqState(path)
	}
	if err != nil {
		// Logged once the sensor is loaded (logSeqErr): without
		// privileges the missing capability is the one error to show.
		p.seqErr = err
		p.seq = policy.NewSequencer(p.instance)
		return
	}
	p.seq = policy.NewSequencerAfter(p.instance, prev.Stamped, p.seqState)
}

// logSeqErr reports a sequence state that could not be opened.
func (p *pipeline) logSeqErr() {
	if p.seqErr != nil {
		p.log.Error("sequence state unavailable: seq starts at 1 and a crash of this run will not be reported on restart", "err", p.seqErr)
	}
}

// noteCrashLoss builds the report of the previous run's unwritten events,
// once the sink has said what of that run it found on disk.
func (p *pipeline) noteCrashLoss() {
	if p.seqState == nil {
		return
	}
	p.crashLoss = p.seqState.Previous().Lost(time.Now())
	if p.crashLoss != nil {
		p.log.Warn("the previous run ended with events numbered and not written", "first_seq", p.crashLoss.Loss.FirstSeq, "last_seq", p.crashLoss.Loss.LastSeq)
	}
}

// writeLoss accumulates the events the sink failed to write until a
// sensor.loss reports them; the report is built and numbered once and
// written as is (same seq, same event_id) until the sink takes it.
type writeLoss struct {
	failures atomic.Uint64 // every failed write, for the metric
	lost     event.Loss
	host     *event.Host
	reason   string
	pending  *event.Event
	since    time.Time // when the oldest unreported failure happened
}

// writeLossEvery is how long failures accumulate before their report is
// built: a sink failing every write gets one report a second, not one per
// event.
const writeLossEvery = time.Second

func (w *writeLoss) add(ev *event.Event, err error) {
	w.failures.Add(1)
	if w.lost.Count == 0 {
		w.since = time.Now()
	}
	l := &w.lost
	l.Count++
	if l.FirstSeq == 0 || ev.Seq < l.FirstSeq {
		l.FirstSeq = ev.Seq
	}
	l.LastSeq = max(l.LastSeq, ev.Seq)
	if l.From.IsZero() || ev.Time.Before(l.From) {
		l.From = ev.Time
	}
	if ev.Time.After(l.To) {
		l.To = ev.Time
	}
	if ev.Host != nil {
		w.host = ev.Host
	}
	w.reason = err.Error()
}

// writeOne writes one numbered event; a failure is counted and kept for
// the next loss report.
func (p *pipeline) writeOne(o *event.Event) bool {
	if err := p.sink.Write(context.Background(), o); err != nil {
		p.wloss.add(o, err)
		n := p.wloss.failures.Load()
		if n == 1 || n%1000 == 0 {
			p.log.Error("writing event", "err", err, "failures", n)
		}
		return false
	}
	if p.seqState != nil && len(p.cfg.Kafka.Brokers) == 0 {
		// The Kafka sink reports what its spool has written instead.
		p.seqState.Durable(o.Seq, o.Time)
	}
	return true
}

// reportWriteLoss writes the loss report of failed writes, building it
// from what failed so far when none is pending and the oldest failure is
// writeLossEvery old (at once with force, at the end of the run).
func (p *pipeline) reportWriteLoss(force ...bool) {
	w := &p.wloss
	due := len(force) > 0 && force[0] || time.Since(w.since) >= writeLossEvery
	if w.pending == nil && w.lost.Count > 0 && due {
		l := w.lost
		l.Where, l.Of = "sink", "events the sink failed to write: "+w.reason
		ev := &event.Event{Schema: event.Schema, Time: time.Now().UTC(), Kind: event.KindSensorLoss, Host: w.host, Loss: &l}
		p.seq.Stamp(ev)
		w.pending, w.lost = ev, event.Loss{}
	}
	if w.pending == nil {
		return
	}
	if err := p.sink.Write(context.Background(), w.pending); err != nil {
		return // kept, sent again after the next write
	}
	if p.seqState != nil && len(p.cfg.Kafka.Brokers) == 0 {
		p.seqState.Durable(w.pending.Seq, w.pending.Time)
	}
	w.pending = nil
}
