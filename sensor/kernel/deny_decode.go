//go:build linux

package kernel

import (
	"fmt"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
)

var sizeDeny = int(unsafe.Sizeof(enforceLsmDenyEvent{}))

// denyPathTruncated is bpf/lineaged.h DENY_PATH_TRUNCATED (header flags).
const denyPathTruncated = 1

// decodeDeny parses an EV_DENY record. Rule stays empty: the live sensor
// fills it from its config.
func decodeDeny(b []byte, ev *sensor.Event) error {
	var r enforceLsmDenyEvent
	if !load(&r, b) {
		return short(sensor.KindDeny, len(b), sizeDeny)
	}
	n := int(r.PathLen)
	if n > len(r.Path) {
		return fmt.Errorf("%w: deny record: path length %d exceeds %d", ErrRecord, n, len(r.Path))
	}
	a := sensor.DenyAction(r.Action)
	if a < sensor.DenyBlocked || a > sensor.DenyKillFailed {
		return fmt.Errorf("%w: deny record: unknown action %d", ErrRecord, r.Action)
	}
	h := r.H
	*ev = sensor.Event{Header: sensor.Header{
		Kind:    sensor.KindDeny,
		KtimeNs: h.Ktime,
		Proc:    key(h.Pid, h.StartNs),
		TID:     h.Tid,
		CPU:     h.Cpu,
		Session: sessionRef(h.SessionPid, h.SessionStart, h.Agent),
	}}
	ev.Deny = &sensor.Deny{
		Path:          string(unsafe.Slice((*byte)(unsafe.Pointer(&r.Path[0])), n)),
		PathTruncated: h.Flags&denyPathTruncated != 0,
		RuleIndex:     r.Rule,
		Action:        a,
	}
	return nil
}
