package kernel

import "github.com/lineaged/lineaged/sensor"

// SessionOf returns the agent session the kernel's session map files pid
// under; the zero SessionRef when none. One map lookup.
func (s *Sensor) SessionOf(pid uint32) sensor.SessionRef {
	if pid == 0 || s.maps.Sessions == nil {
		return sensor.SessionRef{}
	}
	var v processSession
	if s.maps.Sessions.Lookup(pid, &v) != nil {
		return sensor.SessionRef{}
	}
	return sessionRef(v.RootPid, v.RootStart, v.Agent)
}
