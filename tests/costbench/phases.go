//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

type phase int

const (
	off   phase = iota // sensor not running
	file               // lineaged run --output FILE
	kafka              // lineaged run --kafka-brokers (spool, kfake on loopback)
	nPhases
)

func (p phase) String() string {
	return [...]string{"sensor off", "sensor to a file", "sensor to Kafka"}[p]
}

// sensorRun is what one in-session storm under the sensor measured beyond
// the storm's own times.
type sensorRun struct {
	cpuPerExec time.Duration // sensor CPU from the storm's start to its end marker, per exec
	peakRSS    int64         // VmHWM from the storm's start to its end marker
	prePeak    int64         // VmHWM before the storm (the sensor's start, the session's)
	atEnd      resident      // resident memory by kind at the storm's end
	counters   map[string]float64
	// missingMarkers counts the storms whose end marker never came out
	// of the sensor (within two minutes, nor at its stop).
	missingMarkers int
	tally          *tally
}

// bench holds every measurement of a run.
type bench struct {
	o      options
	claude string
	dir    string
	seq    int

	inside  [nPhases][]stormResult // the storm as a Claude Code tool call
	outside [nPhases][]stormResult // the storm from a plain bash (off and file)
	runs    [nPhases][]sensorRun
	both    *sensorRun // two sessions at once
	// outsideCPU is the sensor's CPU per exec of the storms outside
	// sessions, from their start to their end.
	outsideCPU []time.Duration
	// load0 and load1 are the host's load average at the start and the
	// end of the run: on a shared host, what else was running.
	load0, load1 string
	// others0 and others1 count the other sensors and Go test binaries
	// running on the host at the start and the end.
	others0, others1 int
	// psi0 and psi1 are the host's CPU pressure totals (cpuPressure).
	psi0, psi1 int64
}

// newStorm makes a fresh directory and nonce for one storm.
func (b *bench) newStorm(sensor int) (storm, string, error) {
	b.seq++
	base := filepath.Join(b.dir, fmt.Sprintf("s%03d", b.seq))
	s := storm{n: b.o.n, dir: filepath.Join(base, "storm"), nonce: fmt.Sprintf("%d%03d", time.Now().UnixNano(), b.seq), sensor: sensor}
	return s, base, os.MkdirAll(s.dir, 0o700)
}

// sensorEnv is the environment the sensor runs with: its defaults, the
// shipped rule set, and no output file rotation (a rotated-out file would
// read as lost events).
func (b *bench) sensorEnv(dir string) []string {
	env := []string{
		"LINEAGED_POLICY_RULES=" + b.o.rules,
		"LINEAGED_FILE_MAX_SIZE_MB=100000",
		"LINEAGED_KAFKA_SPOOL_DIR=" + filepath.Join(dir, "spool"),
		// The audit trail's key and last checkpoint: the run's own, not
		// the host's service's.
		"LINEAGED_AUDIT_STATE_DIR=" + filepath.Join(dir, "audit"),
	}
	env = append(env, b.o.env...)
	if b.o.profiles != "" {
		// One CPU profile per sensor run, named after its phase
		// directory (round<r>-<phase>, twosessions).
		env = append(env, "LINEAGED_CPUPROFILE="+filepath.Join(b.o.profiles, filepath.Base(dir)+".prof"))
	}
	if b.o.memprofs != "" {
		env = append(env, "LINEAGED_MEMPROFILE="+filepath.Join(b.o.memprofs, filepath.Base(dir)+".heap"))
	}
	return env
}

func (b *bench) runPhase(ctx context.Context, p phase, r int) error {
	pdir := filepath.Join(b.dir, fmt.Sprintf("round%d-%d", r, p))
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		return err
	}
	var (
		sens *sensorProc
		brk  *broker
		err  error
	)
	switch p {
	case file:
		sens, err = startSensor(b.o.bin, pdir, b.sensorEnv(pdir), "--output", filepath.Join(pdir, "events.jsonl"))
		if sens != nil {
			sens.out = filepath.Join(pdir, "events.jsonl")
		}
	case kafka:
		if brk, err = startBroker(); err != nil {
			return err
		}
		defer brk.close()
		sens, err = startSensor(b.o.bin, pdir, b.sensorEnv(pdir), "--kafka-brokers", brk.addr(), "--kafka-topic", brk.topic)
	}
	if err != nil {
		return err
	}
	if sens != nil {
		defer sens.stop()
	}
	pid := 0
	var wait settle
	if sens != nil {
		pid, wait = sens.pid(), sens.settle
	}

	// Outside any session first, then the session (whose start, hashing
	// Claude Code among other things, is not timed).
	if p != kafka {
		s, base, err := b.newStorm(pid)
		if err != nil {
			return err
		}
		res, err := runPlain(ctx, base, s, wait)
		if err != nil {
			return err
		}
		b.outside[p] = append(b.outside[p], res)
		if sens != nil {
			// The sensor's CPU over the storm outside sessions: it has
			// nothing to report, but still sees every exec.
			ticks, err := sens.cpuTicks()
			if err != nil {
				return err
			}
			b.outsideCPU = append(b.outsideCPU, time.Duration(ticks-res.sensorCPU0)*clockTick/time.Duration(b.o.n))
		}
	}
	s, base, err := b.newStorm(pid)
	if err != nil {
		return err
	}
	res, err := runClaude(ctx, b.claude, base, s, wait)
	if err != nil {
		return err
	}
	b.inside[p] = append(b.inside[p], res)
	if sens == nil {
		return nil
	}
	sr, err := b.finish(ctx, sens, brk, []storm{s}, []stormResult{res})
	if err != nil {
		return err
	}
	b.runs[p] = append(b.runs[p], *sr)
	return nil
}

// finish waits until the sensor delivered every storm's end marker, takes
// its CPU, peak RSS and loss counters, stops it and reads what it wrote.
func (b *bench) finish(ctx context.Context, sens *sensorProc, brk *broker, storms []storm, results []stormResult) (*sensorRun, error) {
	var c *consumer
	if brk != nil {
		var err error
		if c, err = brk.consumer(); err != nil {
			return nil, err
		}
		defer c.close()
	}
	missingMarkers := 0
	for _, s := range storms {
		var err error
		if c != nil {
			err = c.until(ctx, s.marker(), 2*time.Minute)
		} else {
			err = sens.waitFile(ctx, s.marker())
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// The storm ended but its marker never came out: what did
			// not is counted as lost, and the run goes on.
			fmt.Fprintf(os.Stderr, "costbench: %v; counted as lost\n", err)
			missingMarkers++
		}
	}
	ticks, err := sens.cpuTicks()
	if err != nil {
		return nil, err
	}
	sr := &sensorRun{}
	first := results[0].sensorCPU0
	for _, r := range results[1:] {
		first = min(first, r.sensorCPU0)
	}
	sr.cpuPerExec = time.Duration(ticks-first) * clockTick / time.Duration(b.o.n*len(storms))
	if sr.peakRSS, err = sens.peakRSS(); err != nil {
		return nil, err
	}
	sr.prePeak = sens.prePeak
	if sr.atEnd, err = sens.resident(); err != nil {
		return nil, err
	}
	if sr.counters, err = sens.lostCounters(); err != nil {
		return nil, err
	}
	if err := sens.stop(); err != nil {
		return nil, fmt.Errorf("lineaged: %w\n%s", err, tail(sens.stderr.String(), 3000))
	}
	if c != nil {
		// What the sensor flushed at its stop (its sensor.stop event last).
		_ = c.until(ctx, `"sensor.stop"`, 30*time.Second)
		t := c.t
		sr.tally = &t
	} else if sr.tally, err = tallyFile(sens.out); err != nil {
		return nil, err
	}
	sr.tally.summarize(results)
	sr.missingMarkers = missingMarkers
	return sr, nil
}

// concurrent runs two sessions' storms at the same time under one sensor
// writing to a file.
func (b *bench) concurrent(ctx context.Context) error {
	pdir := filepath.Join(b.dir, "concurrent")
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		return err
	}
	out := filepath.Join(pdir, "events.jsonl")
	sens, err := startSensor(b.o.bin, pdir, b.sensorEnv(pdir), "--output", out)
	if err != nil {
		return err
	}
	defer sens.stop()
	sens.out = out
	var (
		storms  [2]storm
		bases   [2]string
		results [2]stormResult
		errs    [2]error
		wg      sync.WaitGroup
	)
	for i := range storms {
		if storms[i], bases[i], err = b.newStorm(sens.pid()); err != nil {
			return err
		}
	}
	// Both storms start together: the last to reach its gate lets the
	// sensor settle, then opens both.
	var (
		mu      sync.Mutex
		arrived int
		release = make(chan error)
	)
	both := func(ctx context.Context) error {
		mu.Lock()
		arrived++
		last := arrived == len(storms)
		mu.Unlock()
		if last {
			err := sens.settle(ctx)
			for range len(storms) - 1 {
				release <- err
			}
			return err
		}
		select {
		case err := <-release:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range storms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = runClaude(cctx, b.claude, bases[i], storms[i], both)
			if errs[i] != nil {
				cancel() // the other session must not wait for this one
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return err
	}
	b.both, err = b.finish(ctx, sens, nil, storms[:], results[:])
	return err
}
