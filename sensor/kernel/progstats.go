//go:build linux

package kernel

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ProgramStat is the kernel's run-time accounting of one loaded program.
// The kernel only counts while statistics are enabled (EnableProgramStats
// or sysctl kernel.bpf_stats_enabled=1).
type ProgramStat struct {
	Name     string
	RunCount uint64
	Runtime  time.Duration
	// Misses counts the runs the kernel skipped because the program was
	// already running on that CPU (counted whether or not statistics are
	// enabled, from Linux 5.12): each is an event the program never saw.
	Misses uint64
}

// EnableProgramStats turns on the kernel's BPF run-time statistics until
// the returned Closer is closed. It costs two clock reads per program run,
// so it is for benchmarks and diagnostics, not for production.
func EnableProgramStats() (io.Closer, error) {
	return ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
}

// ProgramStats reports each loaded program's run count and accumulated run
// time, so a benchmark can state what the kernel side costs per event.
func (s *Sensor) ProgramStats() ([]ProgramStat, error) {
	progs := s.loadedPrograms()
	var out []ProgramStat
	for name, p := range progs {
		st, err := p.Stats()
		if err != nil {
			return nil, fmt.Errorf("stats of %s: %w", name, err)
		}
		out = append(out, ProgramStat{Name: name, RunCount: st.RunCount, Runtime: st.Runtime, Misses: st.RecursionMisses})
	}
	slices.SortFunc(out, func(a, b ProgramStat) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// MissedRuns returns, for each loaded program the kernel skipped at least
// once, how many runs it skipped (ProgramStat.Misses).
func (s *Sensor) MissedRuns() map[string]uint64 {
	st, err := s.ProgramStats()
	if err != nil {
		return nil
	}
	m := map[string]uint64{}
	for _, p := range st {
		if p.Misses > 0 {
			m[p.Name] = p.Misses
		}
	}
	return m
}
