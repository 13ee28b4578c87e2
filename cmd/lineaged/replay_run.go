package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
)

// runReplay feeds the capture's steps to the engine, paced, and writes what
// comes out through policy, sequencer and sink as live does; the filters
// choose what is written, after numbering, so seqs and event ids are those
// of the whole replay.
func (p *pipeline) runReplay(ctx context.Context, l *loaded, o replayOpts, pace float64, stderr io.Writer) error {
	steps := make(chan lineage.Step, 1024)
	enriched := make(chan *event.Event, 1024)
	prog := newProgress(stderr, len(l.steps))
	var wg sync.WaitGroup
	var engErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(steps)
		feed(ctx, l.steps, steps, pace, prog)
		// As live: sensor.stop goes out last, with the live reason; a tee
		// ends while the sensor runs on, so it has none.
		if l.info.header.Meta[metaTee] == "" {
			p.engine.EmitAtEnd(&event.Event{Kind: event.KindSensorStop, Sensor: p.sensorInfo(l.info.stop)})
		}
	}()
	go func() {
		defer wg.Done()
		defer close(enriched)
		engErr = p.engine.RunSteps(context.Background(), steps, enriched)
	}()
	for ev := range enriched {
		// Live, the sink stage takes the liveness probes out before
		// numbering: so does replay (a tee records them in place).
		if ev.Kind == kindProbe || ev.Kind == kindTeeMark {
			continue
		}
		out := p.policy.Process(ev)
		p.seq.StampAll(out)
		for _, e := range out {
			if o.keep(e) {
				p.writeOne(e)
			}
		}
		p.reportWriteLoss()
	}
	wg.Wait()
	prog.done()
	p.reportWriteLoss(true)
	closeErr := p.close()
	if engErr != nil {
		return engErr
	}
	if miss := l.book.Missing(); len(miss) > 0 {
		return &exitError{exitRuntime, fmt.Errorf("the capture lacks facts the replay asked for (the output may differ from live): %s", strings.Join(miss, ", "))}
	}
	return closeErr
}

// keep applies --session, --since and --until.
func (o replayOpts) keep(e *event.Event) bool {
	if !o.since.IsZero() && e.Time.Before(o.since) {
		return false
	}
	if !o.until.IsZero() && !e.Time.Before(o.until) {
		return false
	}
	if o.session != "" {
		a := e.Agent
		if a == nil || (a.SessionID != o.session && a.RootExecID != o.session) {
			return false
		}
	}
	return true
}

// feed sends the steps, paced by the raw events' boot-clock times when
// pace > 0.
func feed(ctx context.Context, all []lineage.Step, out chan<- lineage.Step, pace float64, prog *progress) {
	var first uint64
	start := time.Now()
	for i, s := range all {
		if pace > 0 && s.Kind == lineage.StepRaw && s.Raw != nil {
			kt := s.Raw.KtimeNs
			if first == 0 {
				first = kt
			}
			if kt > first {
				due := start.Add(time.Duration(float64(kt-first) / pace))
				if d := time.Until(due); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
			}
		}
		select {
		case out <- s:
		case <-ctx.Done():
			return
		}
		// The engine has it now: what it does not keep can be collected.
		all[i] = lineage.Step{}
		prog.at(i + 1)
	}
}

// progress shows events/s, position and ETA on stderr when it is a
// terminal, and nothing otherwise.
type progress struct {
	w     io.Writer
	total int
	on    bool
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.on = err == nil
	}
	return p
}

func (p *progress) at(n int) {
	if !p.on {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 250*time.Millisecond && n != p.total {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	rate := float64(n) / max(el, 1e-9)
	eta := time.Duration(float64(p.total-n)/max(rate, 1e-9)) * time.Second
	fmt.Fprintf(p.w, "\rreplay: %d/%d steps (%.0f%%), %.0f/s, ETA %s   ", n, p.total, 100*float64(n)/float64(max(p.total, 1)), rate, eta.Round(time.Second))
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}
