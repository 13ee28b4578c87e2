package posture

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	gnet "github.com/shirou/gopsutil/v3/net"
	"github.com/shirou/gopsutil/v3/process"
)

// SensorAttached requires every BPF program the sensor attached to be
// still attached, according to the kernel's own list of BPF links: a
// sensor whose programs were detached records nothing, and the events it
// does not emit would otherwise look like a quiet machine. The facts come
// from Attached, which the kernel side of the sensor provides.
//
// It also fails while the sensor's self-check has found its programs
// detached or not firing (SelfCheck), from the finding until a later
// self-check finds the repair holding: events of that time carry
// compliant false.
type SensorAttached struct {
	// Attached is Config.Attached.
	Attached func() (want, have []string, err error)
	// SelfCheck is Config.SelfCheck.
	SelfCheck func() string
}

// Name implements Check.
func (SensorAttached) Name() string { return CheckSensorAttached }

// Run implements Check.
func (s SensorAttached) Run(context.Context, Root) Result {
	if s.Attached == nil {
		return fail("cannot determine: no kernel sensor to ask (the check runs inside lineaged only)")
	}
	if s.SelfCheck != nil {
		if problem := s.SelfCheck(); problem != "" {
			return fail("self-check: %s", problem)
		}
	}
	want, have, err := s.Attached()
	if err != nil {
		return fail("cannot determine: %v", err)
	}
	if len(want) == 0 {
		return fail("the sensor has no attached programs")
	}
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return fail("%d of %d programs no longer attached: %s", len(missing), len(want), strings.Join(missing, ", "))
	}
	return ok("%d programs attached: %s", len(want), strings.Join(want, ", "))
}

// NoAgentListener requires that no process of an agent session listens on
// a TCP socket: a listener opened by an agent (a dev server, a reverse
// shell's bind port) accepts work from outside the session's lineage. It
// walks the processes, asks InSession about each, and lists the listening
// sockets of the members through their own /proc/PID/net/tcp{,6} and file
// descriptors, so a session in another network namespace is covered too.
type NoAgentListener struct {
	// InSession is Config.InSession.
	InSession func(pid int32) bool
}

// Name implements Check.
func (NoAgentListener) Name() string { return CheckNoAgentListener }

// Run implements Check.
func (n NoAgentListener) Run(ctx context.Context, root Root) Result {
	if n.InSession == nil {
		return fail("cannot determine: no agent-session source (the check runs inside lineaged only)")
	}
	ctx = root.gopsutil(ctx)
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return fail("cannot determine: listing processes: %v", err)
	}
	var listeners []string
	members := 0
	for _, pid := range pids {
		if !n.InSession(pid) {
			continue
		}
		members++
		conns, err := gnet.ConnectionsPidWithoutUidsWithContext(ctx, "tcp", pid)
		if err != nil {
			// The process exited between the listing and now.
			continue
		}
		for _, c := range conns {
			if c.Status != "LISTEN" {
				continue
			}
			exe, err := (&process.Process{Pid: pid}).ExeWithContext(ctx)
			if err != nil {
				exe = "?"
			}
			listeners = append(listeners, fmt.Sprintf("pid %d (%s) listening on %s/tcp",
				pid, exe, net.JoinHostPort(c.Laddr.IP, strconv.Itoa(int(c.Laddr.Port)))))
		}
	}
	if len(listeners) > 0 {
		return fail("agent-session listener: %s", strings.Join(listeners, ", "))
	}
	return ok("no listening socket among %d agent-session processes", members)
}
