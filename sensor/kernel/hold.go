//go:build linux

package kernel

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// MarkSeen registers an image the reader hashed and allowed: with
// Config.HoldUnseen, a member's later exec of it (the same device, inode,
// modification and change times) is not held. The kernel keeps the last
// 16,384 (an LRU): one pushed out is held, and judged, again.
func (s *Sensor) MarkSeen(st sensor.FileStat) error {
	m := s.coll.Maps[processMapSeenImages]
	if m == nil {
		return errors.New("sensor: no seen_images map")
	}
	k := processSeenKey{Ino: st.Inode, Dev: uint32(kernelDev(st.Dev))}
	v := processSeenTimes{MtimeNs: st.MtimeNs, CtimeNs: st.CtimeNs}
	if err := m.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("sensor: marking %d:%d seen: %w", st.Dev, st.Inode, err)
	}
	return nil
}

// HeldProcess is a process the hold stopped at exec (Config.HoldExeFlags),
// pinned by a pidfd: Continue and Kill signal that process and no later
// holder of its pid.
type HeldProcess struct {
	fd  int
	pid uint32
}

// OpenHeld pins the process key names with a pidfd and checks, after
// pinning, that the pid's start time is key's: a pid reused since the exec
// is refused with ErrNotSameProcess, one that has exited with
// procfs.ErrGone.
func OpenHeld(procRoot string, key sensor.ProcKey) (*HeldProcess, error) {
	fd, err := pidfdOpen(key.PID)
	if err != nil {
		return nil, err
	}
	start, err := startTicks(procRoot, key.PID)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if start*procfs.TicksToNs != key.StartNs {
		unix.Close(fd)
		return nil, fmt.Errorf("pid %d: started at %d ns, not %d: %w", key.PID, start*procfs.TicksToNs, key.StartNs, ErrNotSameProcess)
	}
	return &HeldProcess{fd: fd, pid: key.PID}, nil
}

// Continue sends SIGCONT: the process runs on.
func (h *HeldProcess) Continue() error { return h.signal(unix.SIGCONT) }

// Kill sends SIGKILL: the stopped process dies before its image's first
// instruction.
func (h *HeldProcess) Kill() error { return h.signal(unix.SIGKILL) }

func (h *HeldProcess) signal(sig unix.Signal) error {
	err := unix.PidfdSendSignal(h.fd, sig, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("pid %d: %w", h.pid, procfs.ErrGone)
	}
	if err != nil {
		return fmt.Errorf("pidfd_send_signal(%d, %v): %w", h.pid, sig, err)
	}
	return nil
}

// Close releases the pidfd (it does not signal the process).
func (h *HeldProcess) Close() error { return unix.Close(h.fd) }
