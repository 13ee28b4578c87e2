//go:build linux

package kernel

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// AttachedPrograms is the sensor's self-integrity check, read through the
// kernel's own list of BPF links: want names every program the sensor
// loaded (each is attached once at start), have those of them that some
// link in the kernel's list still runs. A program whose link is gone, or
// whose link was updated to run another program, is in want and not in
// have. It walks every link on the host, which needs CAP_SYS_ADMIN.
func (s *Sensor) AttachedPrograms() (want, have []string, err error) {
	ours := map[ebpf.ProgramID]string{}
	unlisted := s.unlisted()
	for name, p := range s.loadedPrograms() {
		if unlisted[name] {
			continue
		}
		info, err := p.Info()
		if err != nil {
			return nil, nil, fmt.Errorf("program %s: %w", name, err)
		}
		id, ok := info.ID()
		if !ok {
			return nil, nil, fmt.Errorf("program %s: the kernel gives no program ID", name)
		}
		ours[id] = name
		want = append(want, name)
	}
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue // released while we walked
		}
		if name, mine := ours[info.Program]; mine && !slices.Contains(have, name) {
			have = append(have, name)
		}
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("walking the kernel's BPF links: %w", err)
	}
	slices.Sort(want)
	slices.Sort(have)
	return want, have, nil
}

// loadedPrograms is every program the sensor loaded, by name.
func (s *Sensor) loadedPrograms() map[string]*ebpf.Program {
	progs := map[string]*ebpf.Program{}
	if s.coll != nil {
		for name, p := range s.coll.Programs {
			progs[name] = p
		}
	}
	for _, c := range s.extras {
		if o, ok := c.(interface {
			programs() map[string]*ebpf.Program
		}); ok {
			for name, p := range o.programs() {
				progs[name] = p
			}
		}
	}
	if s.enf != nil {
		if name, p := s.enf.program(); p != nil {
			progs[name] = p
		}
	}
	return progs
}

// InSession reports whether the kernel's session map holds pid, that is
// whether the process belongs to an agent session. One map lookup.
func (s *Sensor) InSession(pid int32) bool {
	_, ok := s.SessionRoot(pid)
	return ok
}

// SessionRoot returns the pid of the root of the agent session the
// kernel's session map files pid under; false when pid is in no session.
// One map lookup.
func (s *Sensor) SessionRoot(pid int32) (uint32, bool) {
	if pid <= 0 || s.maps.Sessions == nil {
		return 0, false
	}
	var v processSession
	if s.maps.Sessions.Lookup(uint32(pid), &v) != nil {
		return 0, false
	}
	return v.RootPid, true
}

// unlisted names the programs this start attached through a perf event
// rather than a BPF link (classic tracepoints on kernels before 5.15):
// the kernel's link list cannot show them, so neither the list nor the
// self-check can tell whether they still run.
func (s *Sensor) unlisted() map[string]bool {
	out := map[string]bool{}
	for i, l := range s.links {
		if i >= len(s.linkNames) {
			break
		}
		// ErrNotSupported is the perf-event attachment's answer; a link
		// whose descriptor someone closed answers otherwise, and stays
		// looked for.
		if _, err := l.Info(); errors.Is(err, link.ErrNotSupported) {
			out[s.linkNames[i]] = true
		}
	}
	return out
}
