//go:build linux

package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// The targets of issue 11.
const (
	maxInsideFile   = 1.10
	maxInsideKafka  = 1.15
	maxOutside      = 1.02
	maxCPUPerExec   = 100 * time.Microsecond
	maxPeakRSS      = 64 << 20
	maxExecMedian   = 3000 // bytes
	maxExecP99      = 6000 // bytes
	maxLost         = 0
	maxPartialAnces = 0
)

func medianDur(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the nearest-rank p-th percentile of v.
func percentile(v []int, p float64) int {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func walls(rs []stormResult) []time.Duration {
	var v []time.Duration
	for _, r := range rs {
		v = append(v, r.wall)
	}
	return v
}

func cpus(rs []stormResult) []time.Duration {
	var v []time.Duration
	for _, r := range rs {
		v = append(v, r.cpu)
	}
	return v
}

func ratio(on, base []stormResult, f func([]stormResult) []time.Duration) float64 {
	b := medianDur(f(base))
	if b == 0 {
		return math.NaN()
	}
	return float64(medianDur(f(on))) / float64(b)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// losses sums, over every sensor run, the loss events, the loss counters,
// and the storm execs that were not delivered.
func (b *bench) losses() (events int64, counters float64, missing int, names []string) {
	seen := map[string]bool{}
	add := func(sr *sensorRun, storms int) {
		events += sr.tally.lossCount
		if sr.tally.lossEvents > 0 && sr.tally.lossCount == 0 {
			events += int64(sr.tally.lossEvents)
		}
		for k, v := range sr.counters {
			counters += v
			if v > 0 && !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
		missing += max(0, b.o.n*storms-sr.tally.stormExecs) + sr.missingMarkers
	}
	for _, p := range []phase{file, kafka} {
		for i := range b.runs[p] {
			add(&b.runs[p][i], 1)
		}
	}
	if b.both != nil {
		add(b.both, 2)
	}
	sort.Strings(names)
	return events, counters, missing, names
}

// report prints the targets next to the measurements, then the details,
// and returns whether every target is met.
func (b *bench) report(w io.Writer, took time.Duration) bool {
	inFile := ratio(b.inside[file], b.inside[off], walls)
	inKafka := ratio(b.inside[kafka], b.inside[off], walls)
	outFile := ratio(b.outside[file], b.outside[off], walls)
	var cpu []time.Duration
	var peak int64
	var sizes []int
	for _, sr := range b.runs[file] {
		cpu = append(cpu, sr.cpuPerExec)
		sizes = append(sizes, sr.tally.execSizes...)
	}
	for _, p := range []phase{file, kafka} {
		for _, sr := range b.runs[p] {
			peak = max(peak, sr.peakRSS)
		}
	}
	if b.both != nil {
		peak = max(peak, b.both.peakRSS)
	}
	cpuExec := medianDur(cpu)
	med, p99 := percentile(sizes, 50), percentile(sizes, 99)
	lossEvents, lossCounters, missing, names := b.losses()
	lost := lossEvents + int64(lossCounters) + int64(missing)
	partial := 0
	if b.both != nil {
		partial = b.both.tally.partialAncestr
	}

	fmt.Fprintf(w, "\nlineaged cost: exec storm of %d fork+exec of /bin/true, %d rounds, medians, one run (%s, nice %d)\n",
		b.o.n, b.o.rounds, took.Round(time.Second), b.o.nice)
	fmt.Fprintf(w, "host: %d CPUs, load average %s at the start and %s at the end; other sensors or Go tests running: %d at the start, %d at the end\n",
		runtime.NumCPU(), b.load0, b.load1, b.others0, b.others1)
	if b.psi0 >= 0 && b.psi1 >= b.psi0 {
		fmt.Fprintf(w, "CPU pressure over the run: some task waited for a CPU %.0f%% of the time (/proc/pressure/cpu; the storms and the sensor count too)\n",
			100*float64(b.psi1-b.psi0)/float64(took.Microseconds()))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tvalue\tmeasured\tmet?")
	fmt.Fprintln(tw, "------\t-----\t--------\t----")
	met := true
	row := func(name, target, got string, ok bool) {
		met = met && ok
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, target, got, yes(ok))
	}
	row("exec storm inside a Claude Code session, native output to a file", fmt.Sprintf("<= %.2fx", maxInsideFile),
		fmt.Sprintf("%.3fx", inFile), inFile <= maxInsideFile)
	row("the same, to Kafka through the spool (kfake on loopback)", fmt.Sprintf("<= %.2fx", maxInsideKafka),
		fmt.Sprintf("%.3fx", inKafka), inKafka <= maxInsideKafka)
	row("sensor CPU per in-session exec (with its opens and exit)", fmt.Sprintf("<= %d us", maxCPUPerExec.Microseconds()),
		fmt.Sprintf("%d us", cpuExec.Microseconds()), cpuExec <= maxCPUPerExec)
	row("peak RSS of the sensor during the storm (VmHWM)", fmt.Sprintf("<= %d MiB", maxPeakRSS>>20),
		fmt.Sprintf("%.1f MiB", float64(peak)/(1<<20)), peak <= maxPeakRSS)
	row("process.exec in a session, "+b.settings()+": median", fmt.Sprintf("<= %d B", maxExecMedian),
		fmt.Sprintf("%d B", med), len(sizes) > 0 && med <= maxExecMedian)
	row("process.exec in a session, "+b.settings()+": p99", fmt.Sprintf("<= %d B", maxExecP99),
		fmt.Sprintf("%d B", p99), len(sizes) > 0 && p99 <= maxExecP99)
	row("events lost in the benchmark", fmt.Sprintf("= %d", maxLost),
		fmt.Sprintf("%d", lost), lost <= maxLost)
	row("events with partial ancestry, two sessions storming at once", fmt.Sprintf("= %d", maxPartialAnces),
		fmt.Sprintf("%d", partial), b.both != nil && partial <= maxPartialAnces)
	row("exec storm outside sessions", fmt.Sprintf("<= %.2fx", maxOutside),
		fmt.Sprintf("%.3fx", outFile), outFile <= maxOutside)
	tw.Flush()

	b.details(w, lossEvents, lossCounters, missing, names)
	return met
}

// details prints the medians behind the ratios and what each sensor run
// wrote.
func (b *bench) details(w io.Writer, lossEvents int64, lossCounters float64, missing int, names []string) {
	fmt.Fprintln(w, "\ndetails (medians over rounds, and the best round: other work on the host only adds time;"+
		" ratios against the same storm with the sensor off):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "storm\twall\tratio\tbest wall\tratio\tstorm CPU\tratio\texec/s\tsensor CPU/exec\tpeak RSS\tevents\tMB written\t")
	line := func(name string, rs []stormResult, base []stormResult, runs []sensorRun) {
		if len(rs) == 0 {
			return
		}
		wall := medianDur(walls(rs))
		cpuExec, rss, events, bytes := "-", "-", "-", "-"
		if len(runs) > 0 {
			var c []time.Duration
			var r []time.Duration
			var e, by []time.Duration // medians of ints, as durations
			for _, sr := range runs {
				c = append(c, sr.cpuPerExec)
				r = append(r, time.Duration(sr.peakRSS))
				e = append(e, time.Duration(sr.tally.events))
				by = append(by, time.Duration(sr.tally.bytes))
			}
			cpuExec = fmt.Sprintf("%d us", medianDur(c).Microseconds())
			rss = fmt.Sprintf("%.1f MiB", float64(medianDur(r))/(1<<20))
			events = fmt.Sprint(int64(medianDur(e)))
			bytes = fmt.Sprintf("%.1f", float64(medianDur(by))/1e6)
		}
		best, baseBest := slices.Min(walls(rs)), slices.Min(walls(base))
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%s\t%.3f\t%s\t%.3f\t%.0f\t%s\t%s\t%s\t%s\t\n", name,
			wall.Round(time.Millisecond), ratio(rs, base, walls), best.Round(time.Millisecond), float64(best)/float64(baseBest),
			medianDur(cpus(rs)).Round(time.Millisecond),
			ratio(rs, base, cpus), float64(b.o.n)/wall.Seconds(), cpuExec, rss, events, bytes)
	}
	line("in session, sensor off", b.inside[off], b.inside[off], nil)
	line("in session, to a file", b.inside[file], b.inside[off], b.runs[file])
	line("in session, to Kafka", b.inside[kafka], b.inside[off], b.runs[kafka])
	line("outside, sensor off", b.outside[off], b.outside[off], nil)
	line("outside, to a file", b.outside[file], b.outside[off], nil)
	tw.Flush()
	for _, base := range []struct {
		name string
		rs   []stormResult
	}{{"in session", b.inside[off]}, {"outside", b.outside[off]}} {
		v := walls(base.rs)
		if len(v) < 2 {
			continue
		}
		lo, hi := slices.Min(v), slices.Max(v)
		spread := float64(hi) / float64(lo)
		fmt.Fprintf(w, "sensor-off storm walls %s: %s to %s (spread %.2fx)", base.name, lo.Round(time.Millisecond), hi.Round(time.Millisecond), spread)
		if spread > 1.15 {
			fmt.Fprint(w, ": the host was busy with other work; the wall ratios are noisy (more -rounds, a quieter host)")
		}
		fmt.Fprintln(w)
	}
	if len(b.outsideCPU) > 0 {
		fmt.Fprintf(w, "sensor CPU per exec outside sessions (to a file): %d us\n", medianDur(b.outsideCPU).Microseconds())
	}
	if b.both != nil {
		t := b.both.tally
		fmt.Fprintf(w, "two sessions at once: %d events, %d with partial ancestry, %d storm execs of %d, sensor CPU/exec %d us, peak RSS %.1f MiB\n",
			t.events, t.partialAncestr, t.stormExecs, 2*b.o.n, b.both.cpuPerExec.Microseconds(), float64(b.both.peakRSS)/(1<<20))
	}
	partialAll := 0
	for _, p := range []phase{file, kafka} {
		for _, sr := range b.runs[p] {
			partialAll += sr.tally.partialAncestr
		}
	}
	fmt.Fprintf(w, "partial ancestry in the single-session runs: %d events\n", partialAll)
	otherS, otherE := 0, 0
	for _, p := range []phase{file, kafka} {
		for _, sr := range b.runs[p] {
			otherS += sr.tally.otherSessions
			otherE += sr.tally.otherEvents
		}
	}
	if b.both != nil {
		otherS += b.both.tally.otherSessions
		otherE += b.both.tally.otherEvents
	}
	fmt.Fprintf(w, "other agent sessions on the host while the sensor ran: %d, with %d events"+
		" (left out of the counts above, but not out of the sensor's CPU and RSS)\n", otherS, otherE)
	// The sensor's CPU over a storm went to every session's events of
	// that time: the share of the storm's own is an estimate of what the
	// storm alone would have cost.
	var est []time.Duration
	ours, theirs := 0, 0
	for _, sr := range b.runs[file] {
		t := sr.tally
		ours += t.inWindow
		theirs += t.otherInWindow
		if t.inWindow > 0 {
			est = append(est, time.Duration(float64(sr.cpuPerExec)*float64(t.inWindow)/float64(t.inWindow+t.otherInWindow)))
		}
	}
	if theirs > 0 {
		fmt.Fprintf(w, "events during the file phase's storms: %d of the storm's sessions, %d of other sessions;"+
			" sensor CPU per in-session exec scaled to the storm's share of them: %d us (an estimate)\n",
			ours, theirs, medianDur(est).Microseconds())
	}
	var pre int64
	for _, p := range []phase{file, kafka} {
		for _, sr := range b.runs[p] {
			pre = max(pre, sr.prePeak)
		}
	}
	b.sizeAndResident(w)
	fmt.Fprintf(w, "peak RSS before the storms (the sensor's start and the session's, before VmHWM was reset at the storm's start): %.1f MiB\n", float64(pre)/(1<<20))
	fmt.Fprintf(w, "lost: %d in sensor.loss events, %.0f in loss counters", lossEvents, lossCounters)
	if len(names) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(names, ", "))
	}
	fmt.Fprintf(w, ", %d storm execs (end markers included) not delivered\n", missing)
	fmt.Fprintln(w, "sensor: bin/lineaged run, "+b.settings()+", the shipped rules (deploy/rules), no file rotation;"+
		" CPU is utime+stime from the storm's start to its end marker in the output; storm CPU is the loop's children (bash times).")
}

// settings names the sensor's settings: the defaults, or the -env ones.
func (b *bench) settings() string {
	if len(b.o.env) == 0 {
		return "default settings"
	}
	return strings.Join(b.o.env, " ")
}

// sizeAndResident prints what the size and RSS targets are made of: the
// bytes of a storm exec's ancestors above its session's root (on this
// machine the benchmark's own processes and the host's up to pid 1, which
// a login's sshd, shell and init would replace), and the sensor's resident
// memory by kind at the storms' ends.
func (b *bench) sizeAndResident(w io.Writer) {
	var sizes, without, n, bytes []int
	for _, sr := range b.runs[file] {
		for i, sz := range sr.tally.execSizes {
			a := sr.tally.aboveRoot[i]
			sizes = append(sizes, sz)
			without = append(without, sz-a.bytes)
			n = append(n, a.n)
			bytes = append(bytes, a.bytes)
		}
	}
	if len(sizes) > 0 {
		fmt.Fprintf(w, "process.exec in a session: median %d B, of which the ancestors above the session's root (median %d of them: this benchmark's processes and the host's, to pid 1) %d B; the event without them: median %d B\n",
			percentile(sizes, 50), percentile(n, 50), percentile(bytes, 50), percentile(without, 50))
	}
	for _, p := range []phase{file, kafka} {
		var anon, fileRSS, shmem []time.Duration // medians of bytes, as durations
		for _, sr := range b.runs[p] {
			anon = append(anon, time.Duration(sr.atEnd.anon))
			fileRSS = append(fileRSS, time.Duration(sr.atEnd.file))
			shmem = append(shmem, time.Duration(sr.atEnd.shmem))
		}
		if len(anon) == 0 {
			continue
		}
		mib := func(v []time.Duration) float64 { return float64(medianDur(v)) / (1 << 20) }
		fmt.Fprintf(w, "resident at the storm's end, %s (medians): anonymous %.1f MiB (heap, stacks), file-backed %.1f MiB (the binary's pages, the mapped ring buffers), shared %.1f MiB\n",
			p, mib(anon), mib(fileRSS), mib(shmem))
	}
}
