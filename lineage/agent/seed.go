package agent

import (
	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// SessionsFromProcs finds running agents with the table and assigns every
// process to the session of its nearest recognised ancestor (or itself),
// following parent pids. Processes already reparented away from their
// session (daemons whose agent started before the sensor) cannot be found
// this way: the kernel only tracks inheritance from attach on.
func (t *Table) SessionsFromProcs(procs []*procfs.Proc) map[uint32]sensor.SessionRef {
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
		if a := t.Recognise(p.Exe, p.Argv); a != sensor.AgentNone {
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

// Seed finds the agent sessions running under procRoot (normally /proc) and
// hands their members to add (the kernel's AddSessionMembers), then scans
// once more for children forked between the scan and the insert: after
// that the kernel inherits at fork. It returns the members found.
func (t *Table) Seed(procRoot string, add func(map[uint32]sensor.SessionRef) error) (map[uint32]sensor.SessionRef, error) {
	found := make(map[uint32]sensor.SessionRef)
	for pass := 0; pass < 2; pass++ {
		procs, err := procfs.Scan(procRoot)
		if err != nil {
			return found, err
		}
		fresh := make(map[uint32]sensor.SessionRef)
		for pid, ref := range t.SessionsFromProcs(procs) {
			if _, ok := found[pid]; !ok {
				fresh[pid] = ref
				found[pid] = ref
			}
		}
		if err := add(fresh); err != nil {
			return found, err
		}
		if len(fresh) == 0 && pass > 0 {
			break
		}
	}
	return found, nil
}
