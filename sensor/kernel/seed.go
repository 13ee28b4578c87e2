//go:build linux

package kernel

import (
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// SessionsFromProcs finds running agents with the recogniser table and
// assigns every process to the session of its nearest recognised ancestor
// (or itself), following parent pids. Processes already reparented away
// from their session (daemons whose agent started before the sensor) cannot
// be found this way: the kernel only tracks inheritance from attach on.
func SessionsFromProcs(procs []*procfs.Proc, table []sensor.Recogniser) map[uint32]sensor.SessionRef {
	if table == nil {
		table = sensor.DefaultRecognisers()
	}
	byPID := make(map[uint32]*procfs.Proc, len(procs))
	for _, p := range procs {
		byPID[p.Key.PID] = p
	}
	memo := make(map[uint32]sensor.SessionRef, len(procs))
	var resolve func(pid uint32, depth int) sensor.SessionRef
	resolve = func(pid uint32, depth int) sensor.SessionRef {
		if ref, ok := memo[pid]; ok {
			return ref
		}
		p, ok := byPID[pid]
		if !ok || depth > 4096 {
			return sensor.SessionRef{}
		}
		var ref sensor.SessionRef
		if a := sensor.RecogniseWith(table, p.Exe, p.Argv); a != sensor.AgentNone {
			ref = sensor.SessionRef{Root: p.Key, Agent: a}
		} else if p.PPID != 0 && p.PPID != pid {
			ref = resolve(p.PPID, depth+1)
		}
		memo[pid] = ref
		return ref
	}
	out := make(map[uint32]sensor.SessionRef)
	for _, p := range procs {
		if ref := resolve(p.Key.PID, 0); ref.InSession() {
			out[p.Key.PID] = ref
		}
	}
	return out
}

// SeedSessions scans procRoot (normally /proc) for running agent sessions
// and puts their members into the kernel table, then scans once more for
// children forked between the scan and the insert (after that the kernel
// inherits at fork). It returns the members found.
func (s *Sensor) SeedSessions(procRoot string) (map[uint32]sensor.SessionRef, error) {
	found := make(map[uint32]sensor.SessionRef)
	for pass := 0; pass < 2; pass++ {
		procs, err := procfs.Scan(procRoot)
		if err != nil {
			return found, err
		}
		members := SessionsFromProcs(procs, s.cfg.Recognisers)
		fresh := make(map[uint32]sensor.SessionRef)
		for pid, ref := range members {
			if _, ok := found[pid]; !ok {
				fresh[pid] = ref
				found[pid] = ref
			}
		}
		if err := s.AddSessionMembers(fresh); err != nil {
			return found, err
		}
		if len(fresh) == 0 && pass > 0 {
			break
		}
	}
	return found, nil
}
