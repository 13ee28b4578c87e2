//go:build linux

package kernel

import (
	"maps"
	"slices"
	"strings"

	"github.com/lineaged/lineaged/sensor"
)

// Skipped runs. The kernel runs a tracing program at most once at a time
// per CPU: a run that finds the program already running on its CPU is
// skipped and only counted (the program's recursion misses, in its info
// since Linux 5.12). Where tracepoint callbacks may be preempted (Linux
// 7.x under emulation showed it: a member's unlink storm lost about 1 of
// 400 file records, and exits went missing), a task preempted inside a
// program makes the next task on that CPU skip it. Every event such a run
// would have sent is lost before it existed, so the ring buffer's loss
// counters never see it. The sensor reads the counts with the other loss
// counters and reports them as sensor.loss where "skipped".

// missedRuns reads each loaded program's skipped-run count.
func (s *Sensor) missedRuns() map[string]uint64 {
	m := map[string]uint64{}
	for name, p := range s.loadedPrograms() {
		st, err := p.Stats()
		if err != nil {
			continue // a program without info: nothing to count
		}
		m[name] = st.RecursionMisses
	}
	return m
}

// skippedBase is what the skipped-run counts are reported from: zero for
// programs this instance loaded, their counts now for programs an earlier
// instance pinned and this one reused (those it reported itself, or lost
// with it).
func (s *Sensor) skippedBase() map[string]uint64 {
	if s.pinState == PinReused {
		return s.missedRuns()
	}
	return map[string]uint64{}
}

// skippedLoss reports the runs each program skipped since the last report,
// one sensor.loss per program, and advances last.
func (s *Sensor) skippedLoss(last map[string]uint64, now uint64) []sensor.Event {
	cur := s.missedRuns()
	var evs []sensor.Event
	for _, name := range slices.Sorted(maps.Keys(cur)) {
		v := cur[name]
		if v <= last[name] {
			continue
		}
		of, what := skippedOf(name)
		evs = append(evs, sensor.Event{
			Header: sensor.Header{Kind: sensor.KindLoss, KtimeNs: now},
			Loss:   &sensor.Loss{Where: "skipped", Of: of, What: what, Count: v - last[name]},
		})
		last[name] = v
	}
	return evs
}

// skippedOf names what a skipped run of the program loses.
func skippedOf(prog string) (sensor.Kind, string) {
	switch {
	case prog == "handle_exec":
		return sensor.KindExec, ""
	case prog == "handle_fork":
		return sensor.KindFork, ""
	case prog == "handle_exit":
		return sensor.KindExit, ""
	case strings.HasPrefix(prog, "fileio_"):
		return 0, "file and network records of one call (" + prog + ")"
	case strings.HasPrefix(prog, "iouring_"):
		return sensor.KindIOURing, ""
	case strings.HasPrefix(prog, "enforce_"):
		return 0, "deny-exec checks of one exec (" + prog + ")"
	case strings.HasPrefix(prog, "tamper_"):
		return 0, "tamper checks (" + prog + ")"
	}
	return 0, "runs of " + prog
}
