package lineage

import (
	"fmt"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// tamperNow builds a sensor.tamper event. It is reported whatever the
// scope: the actor is named with its session and tool call when the table
// knows it, else by what the kernel record says (pid, start time, comm),
// marked partial.
func (e *Engine) tamperNow(ev sensor.Event, out *event.Event) []*outItem {
	if ev.Tamper == nil {
		return nil
	}
	out.Kind = event.KindSensorTamper
	out.Tamper = tamperEvent(ev.Tamper)
	if ev.Proc.PID == 0 {
		// Found by the sensor's self-check: no actor is known.
		return []*outItem{e.finish(out, nil, nil, nil, nil)}
	}
	ent := e.t.get(ev.Proc)
	if ent == nil {
		it := e.finish(out, nil, nil, nil, nil)
		out.Process = &event.Process{
			ExecID:    e.execID(ev.Proc.PID, ev.Proc.StartNs, 0),
			PID:       ev.Proc.PID,
			StartTime: e.wall(ev.Proc.StartNs),
		}
		out.Partial = []string{event.PartialProcess}
		if ev.Session.InSession() {
			out.Agent = &event.Agent{Name: ev.Session.Agent.String(), RootExecID: e.sess.rootExecID(ev.Session), Role: event.RoleDescendant}
		}
		return []*outItem{it}
	}
	e.t.touch(ent)
	var partial []string
	if ent.partial {
		partial = appendOnce(partial, event.PartialProcess)
	}
	agent, wait := e.sess.forEvent(ent, ev.Session, nil)
	return []*outItem{e.finish(out, ent, agent, wait, partial)}
}

// tamperEvent maps the kernel's record onto the event's tamper object.
func tamperEvent(t *sensor.Tamper) *event.Tamper {
	out := &event.Tamper{
		Action:    t.Op.String(),
		SensorPID: t.Target.PID,
		Object:    t.Object,
		ObjectID:  t.ObjectID,
		Comm:      t.Comm,
		Refused:   t.Refused,
	}
	switch t.Op {
	case sensor.TamperSignal:
		out.Signal = int(t.Arg)
	case sensor.TamperSensorExit:
		// A wait(2) status: the signal in the low 7 bits, else the code.
		if sig := int(t.Code & 0x7f); sig != 0 {
			out.Signal = sig
		} else {
			out.ExitCode = int(t.Code>>8) & 0xff
		}
	case sensor.TamperPtrace:
		out.Request = ptraceRequest(t.Arg)
	case sensor.TamperPidfdGetfd:
		out.Request = fmt.Sprintf("fd %d", t.Arg)
	case sensor.TamperBPF:
		out.Request = bpfCommand(t.Arg)
	case sensor.TamperDetached:
		out.Program = t.Program
	case sensor.TamperLoginUID:
		got, want := t.Arg, uint32(t.Code)
		out.LoginUID, out.SessionLoginUID = &got, &want
	case sensor.TamperTrustAnchor:
		out.Path, out.Anchor = t.Path, t.Anchor
	case sensor.TamperProcMem:
		// The open failed (EACCES, EPERM): nothing could be written.
		out.Path, out.Refused = t.Path, t.Refused || t.Code < 0
	}
	return out
}

// lossWindow sets the time window of a loss the sensor gave in boot-clock
// time (a program found detached: what it did not see meanwhile).
func (e *Engine) lossWindow(ev sensor.Event, out *event.Event) {
	if l := ev.Loss; l != nil && l.FromNs != 0 && out.Loss != nil {
		out.Loss.From, out.Loss.To = e.wall(l.FromNs), e.wall(l.ToNs)
	}
}

func ptraceRequest(r uint32) string {
	switch r {
	case 16:
		return "PTRACE_ATTACH"
	case 0x4206:
		return "PTRACE_SEIZE"
	case 0x4207:
		return "PTRACE_INTERRUPT"
	case 4, 5:
		return "PTRACE_POKE"
	case 13:
		return "PTRACE_SETREGS"
	}
	return fmt.Sprintf("ptrace-%d", r)
}

// bpfCommand names the bpf(2) commands bpf/tamper.h reports.
func bpfCommand(c uint32) string {
	names := map[uint32]string{
		1: "BPF_MAP_LOOKUP_ELEM", 2: "BPF_MAP_UPDATE_ELEM", 3: "BPF_MAP_DELETE_ELEM",
		4: "BPF_MAP_GET_NEXT_KEY", 13: "BPF_PROG_GET_FD_BY_ID", 14: "BPF_MAP_GET_FD_BY_ID",
		21: "BPF_MAP_LOOKUP_AND_DELETE_ELEM", 22: "BPF_MAP_FREEZE", 24: "BPF_MAP_LOOKUP_BATCH",
		25: "BPF_MAP_LOOKUP_AND_DELETE_BATCH", 26: "BPF_MAP_UPDATE_BATCH", 27: "BPF_MAP_DELETE_BATCH",
		29: "BPF_LINK_UPDATE", 30: "BPF_LINK_GET_FD_BY_ID", 34: "BPF_LINK_DETACH",
	}
	if n, ok := names[c]; ok {
		return n
	}
	return fmt.Sprintf("bpf-%d", c)
}
