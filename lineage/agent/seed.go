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
		} else if pp, ok := byPID[p.PPID]; ok && p.PPID != pid && pp.Key.StartNs <= p.Key.StartNs {
			// A parent that started after its child is another
			// process on a reused pid: not this child's ancestor.
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

// seedPasses bounds Seed's scans: each finds the members forked while the
// previous one was inserted; a session forking without pause for longer
// still ends with its last members inherited by the kernel at fork.
const seedPasses = 16

// Seed finds the agent sessions running under procRoot (normally /proc) and
// hands their members to add (the kernel's AddSessionProcs), each named
// with the start time it had in the scan, so that add can refuse a pid that
// exited and was reused in between. Members go in top-down (add orders by
// start time), and Seed scans again until a pass finds no member it had not
// added: from then on the kernel inherits at fork. It returns the members
// found.
func (t *Table) Seed(procRoot string, add func(map[sensor.ProcKey]sensor.SessionRef) error) (map[uint32]sensor.SessionRef, error) {
	found := make(map[sensor.ProcKey]sensor.SessionRef)
	for pass := 0; pass < seedPasses; pass++ {
		procs, err := procfs.Scan(procRoot)
		if err != nil {
			return byPID(found), err
		}
		start := make(map[uint32]uint64, len(procs))
		for _, p := range procs {
			start[p.Key.PID] = p.Key.StartNs
		}
		fresh := make(map[sensor.ProcKey]sensor.SessionRef)
		for pid, ref := range t.SessionsFromProcs(procs) {
			k := sensor.ProcKey{PID: pid, StartNs: start[pid]}
			if _, ok := found[k]; !ok {
				fresh[k] = ref
				found[k] = ref
			}
		}
		if len(fresh) == 0 {
			break
		}
		if err := add(fresh); err != nil {
			return byPID(found), err
		}
	}
	return byPID(found), nil
}

// byPID keys members by pid; of two processes seen on one pid (an exit and
// a reuse between passes), the later one.
func byPID(m map[sensor.ProcKey]sensor.SessionRef) map[uint32]sensor.SessionRef {
	out := make(map[uint32]sensor.SessionRef, len(m))
	latest := make(map[uint32]uint64, len(m))
	for k, ref := range m {
		if s, ok := latest[k.PID]; ok && s > k.StartNs {
			continue
		}
		latest[k.PID] = k.StartNs
		out[k.PID] = ref
	}
	return out
}
