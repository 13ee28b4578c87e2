//go:build linux

package kernel

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// tamperTracepoints are the tamper programs on syscall tracepoints
// (bpf/tamper.h), by program name.
var tamperTracepoints = map[string]string{
	processProgTamperPtrace:     "sys_enter_ptrace",
	processProgTamperVmWrite:    "sys_enter_process_vm_writev",
	processProgTamperPidfdGetfd: "sys_enter_pidfd_getfd",
	processProgTamperBpf:        "sys_enter_bpf",
}

// selfLSMDenies is bpf/tamper.h SELF_LSM_DENIES.
const selfLSMDenies = 1

// bpf/tamper.h enum tamper_obj.
const (
	tamperObjMap  = 1
	tamperObjProg = 2
	tamperObjLink = 3
)

var sizeTamper = int(unsafe.Sizeof(processTamperEvent{}))

// decodeTamper parses an EV_TAMPER record.
func decodeTamper(b []byte, ev *sensor.Event) error {
	var r processTamperEvent
	if !load(&r, b) {
		return short(sensor.KindTamper, len(b), sizeTamper)
	}
	op := sensor.TamperOp(r.Op)
	if op < sensor.TamperSignal || op > sensor.TamperBPF {
		return fmt.Errorf("%w: tamper record: unknown operation %d", ErrRecord, r.Op)
	}
	*ev = sensor.Event{Header: decodeHeader(&r.H)}
	t := &sensor.Tamper{
		Op:       op,
		Target:   sensor.ProcKey{PID: r.TargetPid, StartNs: r.TargetStart},
		Arg:      r.Arg,
		Code:     r.Code,
		Result:   r.Result,
		ObjectID: r.ObjId,
		Comm:     cString(r.Comm[:]),
	}
	// The LSM programs' records carry -EPERM: refused.
	t.Refused = op != sensor.TamperSignal && r.Result == -1
	switch r.ObjType {
	case tamperObjMap:
		t.Object = "map"
	case tamperObjProg:
		t.Object = "prog"
	case tamperObjLink:
		t.Object = "link"
	}
	ev.Tamper = t
	return nil
}

// registerSelf tells the tamper programs which process is the sensor and
// which BPF objects are its own: from now on what others do to them is
// reported.
func (s *Sensor) registerSelf() error {
	self := s.coll.Maps[processMapSensorSelf]
	own := s.coll.Maps[processMapOwnObjects]
	if self == nil || own == nil {
		return errors.New("sensor: the process object has no sensor_self or own_objects map")
	}
	// A previous instance's death, recorded by the kernel: reported now.
	var prev processSensorProc
	if err := self.Lookup(uint32(0), &prev); err == nil && prev.DeadTgid != 0 {
		s.pending = append(s.pending, deathEvent(&prev))
	}
	pid := uint32(os.Getpid())
	var start uint64
	if p, err := procfs.Read("/proc", pid); err == nil {
		start = p.StartTicks * procfs.TicksToNs
	}
	// Objects of an earlier instance (its enforcement) are forgotten.
	var (
		k    processOwnKey
		v    uint8
		keys []processOwnKey
	)
	it := own.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	for _, k := range keys {
		_ = own.Delete(&k)
	}
	ids, err := s.ownObjects()
	if err != nil {
		return fmt.Errorf("sensor: own objects: %w", err)
	}
	one := uint8(1)
	for _, k := range ids {
		if err := own.Update(&k, &one, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("sensor: own objects: %w", err)
		}
	}
	var flags uint32
	if s.tamperLSM != nil {
		flags = selfLSMDenies
	}
	if err := self.Update(uint32(0), &processSensorProc{Tgid: pid, Flags: flags, StartNs: start}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("sensor: register: %w", err)
	}
	s.selfKey = sensor.ProcKey{PID: pid, StartNs: start}
	return nil
}

// unregisterSelf clears the registration at a graceful stop, so that the
// exit program does not report the sensor's exit as a kill.
func (s *Sensor) unregisterSelf() {
	if s.coll == nil || s.selfKey.PID == 0 {
		return
	}
	if m := s.coll.Maps[processMapSensorSelf]; m != nil {
		_ = m.Update(uint32(0), &processSensorProc{}, ebpf.UpdateAny)
	}
}

// ownObjects lists the ids of every map, program and link the sensor
// holds.
func (s *Sensor) ownObjects() ([]processOwnKey, error) {
	var out []processOwnKey
	maps := []*ebpf.Map{}
	for _, m := range s.coll.Maps {
		maps = append(maps, m)
	}
	for _, m := range maps {
		info, err := m.Info()
		if err != nil {
			return nil, err
		}
		if id, ok := info.ID(); ok {
			out = append(out, processOwnKey{Type: tamperObjMap, Id: uint32(id)})
		}
	}
	if s.pins != nil && s.pins.state != nil {
		if info, err := s.pins.state.Info(); err == nil {
			if id, ok := info.ID(); ok {
				out = append(out, processOwnKey{Type: tamperObjMap, Id: uint32(id)})
			}
		}
	}
	for _, p := range s.loadedPrograms() {
		info, err := p.Info()
		if err != nil {
			return nil, err
		}
		if id, ok := info.ID(); ok {
			out = append(out, processOwnKey{Type: tamperObjProg, Id: uint32(id)})
		}
	}
	links := append([]link.Link(nil), s.links...)
	for _, c := range s.extras {
		switch o := c.(type) {
		case *pinnedObject:
			links = append(links, o.links...)
		default:
			for _, l := range extraLinks(c) {
				links = append(links, l)
			}
		}
	}
	for _, l := range links {
		info, err := l.Info()
		if err != nil {
			continue
		}
		out = append(out, processOwnKey{Type: tamperObjLink, Id: uint32(info.ID)})
	}
	return out, nil
}

// extraLinks returns the links of a freshly loaded extra object.
func extraLinks(c any) map[string]link.Link {
	for _, o := range extraObjects() {
		if o.links == nil {
			continue
		}
		if cl, ok := c.(interface{ Close() error }); ok {
			if ls := o.links(cl); ls != nil {
				return ls
			}
		}
	}
	return nil
}

// deathEvent is the sensor.tamper of a previous instance's death as the
// kernel kept it: the actor is the last process that signalled it (the
// killer), with its session, or the dead sensor itself when none did.
func deathEvent(p *processSensorProc) sensor.Event {
	h := sensor.Header{Kind: sensor.KindTamper, KtimeNs: p.DeadKtime, Proc: sensor.ProcKey{PID: p.DeadTgid, StartNs: p.DeadStart}}
	t := &sensor.Tamper{Op: sensor.TamperSensorExit, Target: sensor.ProcKey{PID: p.DeadTgid, StartNs: p.DeadStart}, Code: p.DeadCode}
	if p.KillerTgid != 0 {
		h.Proc = key(p.KillerTgid, p.KillerStart)
		h.Session = sessionRef(p.KillerSessionPid, p.KillerSessionStart, p.KillerAgent)
		t.Arg = p.KillerSig
	}
	return sensor.Event{Header: h, Tamper: t}
}
