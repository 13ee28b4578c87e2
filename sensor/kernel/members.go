//go:build linux

package kernel

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// ErrNotSameProcess is returned (wrapped) by KillProcess when the pid now
// belongs to another process than the one named: the pid was reused.
var ErrNotSameProcess = errors.New("pid now names another process (start time differs)")

// ErrNotInSession is returned (wrapped) by KillProcess for a process the
// kernel holds in no agent session.
var ErrNotInSession = errors.New("not a member of any agent session")

// killRounds bounds the passes KillSession makes over the sessions map: a
// member forked while an earlier pass ran is found by the next one.
const killRounds = 5

// SessionMembers lists the processes (thread-group ids) the kernel holds
// in the session rooted at root, read from the sessions map: members that
// daemonized or were reparented are there too, since membership follows
// fork, not the process tree. A nested agent session started inside is a
// session of its own and is not listed. root.StartNs is at /proc's
// clock-tick resolution (sensor.ProcKey).
func (s *Sensor) SessionMembers(root sensor.ProcKey) ([]uint32, error) {
	if s.maps.Sessions == nil {
		return nil, errors.New("sessions map not loaded")
	}
	var (
		pid     uint32
		v       processSession
		members []uint32
	)
	it := s.maps.Sessions.Iterate()
	for it.Next(&pid, &v) {
		if sameRoot(v, root) {
			members = append(members, pid)
		}
	}
	if err := it.Err(); err != nil {
		return members, fmt.Errorf("reading the sessions map: %w", err)
	}
	return members, nil
}

// sameRoot reports whether a sessions-map value names root. The kernel keeps
// the exact start time; ProcKey has it truncated to the clock tick.
func sameRoot(v processSession, root sensor.ProcKey) bool {
	return v.RootPid == root.PID && v.RootStart/tickNs*tickNs == root.StartNs
}

// sameMember reports whether a sessions-map value was made for the process
// that started at startNs (clock-tick resolution, as /proc gives it), and
// not for an earlier holder of its pid.
func sameMember(v processSession, startNs uint64) bool {
	return v.MemberStart/tickNs*tickNs == startNs/tickNs*tickNs
}

// memberOf reports whether the kernel holds pid, the process that started
// at startNs, in the session rooted at root now.
func (s *Sensor) memberOf(pid uint32, startNs uint64, root sensor.ProcKey) (bool, error) {
	var v processSession
	err := s.maps.Sessions.Lookup(pid, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sessions map lookup of %d: %w", pid, err)
	}
	return sameRoot(v, root) && sameMember(v, startNs), nil
}

// AddSessionMembers puts already-running processes into the kernel session
// table, each with the start time /proc gives it now. A seed from a scan
// uses AddSessionProcs, which keeps the scan's start times.
func (s *Sensor) AddSessionMembers(members map[uint32]sensor.SessionRef) error {
	procs := make(map[sensor.ProcKey]sensor.SessionRef, len(members))
	var errs []error
	for pid, ref := range members {
		p, err := procfs.Read("/proc", pid)
		if err != nil {
			errs = append(errs, fmt.Errorf("session member %d: %w", pid, err))
			continue
		}
		procs[sensor.ProcKey{PID: pid, StartNs: p.StartTicks * procfs.TicksToNs}] = ref
	}
	return errors.Join(append(errs, s.AddSessionProcs(procs))...)
}

// AddSessionProcs puts already-running processes (from a /proc seed) into
// the kernel session table, oldest first, so a parent is in before its
// children: one forked after its parent went in is inherited by the kernel.
// Each entry names its process by start time (clock-tick resolution), and
// the kernel honours it only for that process: a member that exited before
// its entry went in leaves a key no later holder of the pid matches. An
// entry the kernel already holds is kept: it is at least as recent (a
// member that exec'd a nested agent after attach).
func (s *Sensor) AddSessionProcs(members map[sensor.ProcKey]sensor.SessionRef) error {
	keys := make([]sensor.ProcKey, 0, len(members))
	for k, ref := range members {
		if ref.InSession() {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].StartNs < keys[j].StartNs })
	var errs []error
	for _, k := range keys {
		ref := members[k]
		v := processSession{RootPid: ref.Root.PID, Agent: uint8(ref.Agent), RootStart: ref.Root.StartNs,
			Flags: sessionStartTicks, MemberStart: k.StartNs / tickNs * tickNs}
		s.shadow.add(k.PID, k.StartNs, ref)
		err := s.maps.Sessions.Update(k.PID, &v, ebpf.UpdateNoExist)
		if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			errs = append(errs, fmt.Errorf("session member %d: %w", k.PID, err))
		}
	}
	return errors.Join(errs...)
}

// sessionStartTicks is SESSION_F_START_TICKS (bpf/lineaged.h): the entry's
// member start has /proc's clock-tick resolution.
const sessionStartTicks = 1

// KillSession sends SIGKILL to every live member of the session rooted at
// root, the root included, as the kernel's sessions map lists them
// (SessionMembers); nothing outside it. Each member is pinned with a pidfd
// and then checked again against the map, so a pid that exited and was
// reused by an outsider is never signalled. It makes passes until one finds
// no member it has not signalled (a fork racing the kill), at most a few.
// killed counts the members signalled; an error names the members that
// could not be.
func (s *Sensor) KillSession(procRoot string, root sensor.ProcKey) (killed int, err error) {
	signalled := make(map[uint32]bool)
	var errs []error
	for round := 0; round < killRounds; round++ {
		members, err := s.SessionMembers(root)
		if err != nil {
			return killed, err
		}
		fresh := 0
		for _, pid := range members {
			if signalled[pid] {
				continue
			}
			fresh++
			signalled[pid] = true
			switch err := s.killMember(procRoot, pid, root); {
			case err == nil:
				killed++
			case errors.Is(err, procfs.ErrGone), errors.Is(err, ErrNotSameProcess):
				// exited on its own meanwhile
			default:
				errs = append(errs, err)
			}
		}
		if fresh == 0 {
			break
		}
	}
	return killed, errors.Join(errs...)
}

// killMember signals pid if it is, once pinned, still a member of root's
// session and started no earlier than root.
func (s *Sensor) killMember(procRoot string, pid uint32, root sensor.ProcKey) error {
	fd, err := pidfdOpen(pid)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// The pidfd now names one process for good. If the pid was reused
	// before it was opened, the map's entry names the earlier holder by
	// start time (or the kernel deleted it at the exit), unless the new
	// holder was forked into the same session.
	start, err := startTicks(procRoot, pid)
	if err != nil {
		return err
	}
	in, err := s.memberOf(pid, start*procfs.TicksToNs, root)
	if err != nil {
		return err
	}
	if !in {
		return fmt.Errorf("pid %d: %w", pid, ErrNotSameProcess)
	}
	if start*procfs.TicksToNs < root.StartNs {
		return fmt.Errorf("pid %d started before its session root: %w", pid, ErrNotSameProcess)
	}
	return pidfdKill(fd, pid)
}

// KillProcess sends SIGKILL to the process key names, and only to it, if
// it is a member of an agent session: the pid is pinned with a pidfd, then
// its start time (/proc/<pid>/stat field 22) must be key's, or the pid was
// reused and nothing is sent (ErrNotSameProcess); and the kernel's sessions
// map must hold it (ErrNotInSession). A process that has exited gives
// procfs.ErrGone.
func (s *Sensor) KillProcess(procRoot string, key sensor.ProcKey) error {
	fd, err := pidfdOpen(key.PID)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	start, err := startTicks(procRoot, key.PID)
	if err != nil {
		return err
	}
	if start*procfs.TicksToNs != key.StartNs {
		return fmt.Errorf("pid %d: started at %d ns, not %d: %w", key.PID, start*procfs.TicksToNs, key.StartNs, ErrNotSameProcess)
	}
	var v processSession
	switch err := s.maps.Sessions.Lookup(key.PID, &v); {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		return fmt.Errorf("pid %d: %w", key.PID, ErrNotInSession)
	case err != nil:
		return fmt.Errorf("sessions map lookup of %d: %w", key.PID, err)
	case !sameMember(v, key.StartNs):
		// a key left by an earlier holder of the pid
		return fmt.Errorf("pid %d: %w", key.PID, ErrNotInSession)
	}
	return pidfdKill(fd, key.PID)
}

func pidfdOpen(pid uint32) (int, error) {
	if pid == 0 {
		return -1, errors.New("pid 0")
	}
	fd, err := unix.PidfdOpen(int(pid), 0)
	if errors.Is(err, unix.ESRCH) {
		return -1, fmt.Errorf("pid %d: %w", pid, procfs.ErrGone)
	}
	if err != nil {
		return -1, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	return fd, nil
}

func pidfdKill(fd int, pid uint32) error {
	err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("pid %d: %w", pid, procfs.ErrGone)
	}
	if err != nil {
		return fmt.Errorf("pidfd_send_signal(%d, SIGKILL): %w", pid, err)
	}
	return nil
}

// startTicks reads the start time of pid, in clock ticks since boot
// (/proc/<pid>/stat field 22).
func startTicks(procRoot string, pid uint32) (uint64, error) {
	p, err := procfs.Read(procRoot, pid)
	if err != nil {
		return 0, err
	}
	return p.StartTicks, nil
}
