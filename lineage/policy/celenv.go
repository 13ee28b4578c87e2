package policy

import (
	"reflect"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/lineaged/lineaged/lineage/event"
)

// The variables a rule sees (docs/rules.md documents each with examples).
// The event's parts are the lineage/event structs themselves, exposed
// through CEL's native Go types with their JSON names, so a rule reads
// what the native output shows, by the same names: process.binary.verdict,
// file.path, agent.session_id. The event is whole (every ancestor's every
// field, every posture check) whatever shape the output writes. A part the event does not carry reads as
// its empty value ("" , 0, false, []), never as an error; has() on a field
// tells whether it is set (has(agent.root_exec_id): the event belongs to
// an agent session).
const (
	varKind     = "kind"
	varProcess  = "process"
	varBinary   = "binary"
	varAncestry = "ancestry"
	varAgent    = "agent"
	varIdentity = "identity"
	varPosture  = "posture"
	varFile     = "file"
	varNet      = "net"
	varSessions = "sessions"
	varTool     = "tool"
	// varTamper is what a sensor.tamper reports (action, path, anchor).
	varTamper = "tamper"
	// varIOURing is what an io_uring.setup or io_uring.submit reports.
	varIOURing = "io_uring"
)

// newEnv builds the CEL environment of the rules.
func newEnv() (*cel.Env, error) {
	obj := func(t any) *cel.Type { return cel.ObjectType("event." + reflect.TypeOf(t).Elem().Name()) }
	return cel.NewEnv(
		ext.NativeTypes(ext.ParseStructTag("json"),
			reflect.TypeOf(&event.Process{}),
			reflect.TypeOf(&event.Agent{}),
			reflect.TypeOf(&event.Identity{}),
			reflect.TypeOf(&event.Posture{}),
			reflect.TypeOf(&event.File{}),
			reflect.TypeOf(&event.Net{}),
			reflect.TypeOf(&event.Tamper{}),
			reflect.TypeOf(&event.IOURing{}),
		),
		ext.Strings(),
		ext.Bindings(),
		cel.CrossTypeNumericComparisons(true),
		cel.Variable(varKind, cel.StringType),
		cel.Variable(varProcess, obj(&event.Process{})),
		cel.Variable(varBinary, obj(&event.Binary{})),
		cel.Variable(varAncestry, cel.ListType(obj(&event.Process{}))),
		cel.Variable(varAgent, obj(&event.Agent{})),
		cel.Variable(varIdentity, obj(&event.Identity{})),
		cel.Variable(varPosture, obj(&event.Posture{})),
		cel.Variable(varFile, obj(&event.File{})),
		cel.Variable(varNet, obj(&event.Net{})),
		cel.Variable(varSessions, cel.IntType),
		cel.Variable(varTool, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varTamper, obj(&event.Tamper{})),
		cel.Variable(varIOURing, obj(&event.IOURing{})),
	)
}

// Variable slots of the activation's per-event cache.
const (
	slotKind = iota
	slotProcess
	slotBinary
	slotAncestry
	slotAgent
	slotIdentity
	slotPosture
	slotFile
	slotNet
	slotSessions
	slotTool
	slotTamper
	slotIOURing
	nSlots
)

// activation gives the rules one event. It is reused from event to event
// (the stage runs on one goroutine): binding an event costs a few stores,
// a part is turned into a CEL value only when a rule first reads it, and
// that value is kept for the other rules judging the same event.
type activation struct {
	ev       *event.Event
	sessions int64
	// tool is the tool variable when DecideTool judges a call before it
	// is an event; nil: it is read from the event.
	tool    map[string]any
	adapter types.Adapter
	cache   [nSlots]ref.Val
	empty   struct {
		process  event.Process
		binary   event.Binary
		agent    event.Agent
		identity event.Identity
		posture  event.Posture
		file     event.File
		net      event.Net
		tamper   event.Tamper
		iouring  event.IOURing
	}
}

var _ interpreter.Activation = (*activation)(nil)

// bind makes ev the event the rules see.
func (a *activation) bind(ev *event.Event, sessions int, adapter types.Adapter) {
	a.ev, a.sessions, a.adapter = ev, int64(sessions), adapter
	a.tool = nil
	a.cache = [nSlots]ref.Val{}
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	slot := -1
	switch name {
	case varKind:
		slot = slotKind
	case varProcess:
		slot = slotProcess
	case varBinary:
		slot = slotBinary
	case varAncestry:
		slot = slotAncestry
	case varAgent:
		slot = slotAgent
	case varIdentity:
		slot = slotIdentity
	case varPosture:
		slot = slotPosture
	case varFile:
		slot = slotFile
	case varNet:
		slot = slotNet
	case varSessions:
		slot = slotSessions
	case varTool:
		slot = slotTool
	case varTamper:
		slot = slotTamper
	case varIOURing:
		slot = slotIOURing
	default:
		return nil, false
	}
	if v := a.cache[slot]; v != nil {
		return v, true
	}
	v := a.value(slot)
	a.cache[slot] = v
	return v, true
}

// value is the CEL value of a variable for the bound event; a part the
// event lacks is its empty value.
func (a *activation) value(slot int) ref.Val {
	ev := a.ev
	switch slot {
	case slotKind:
		return types.String(ev.Kind)
	case slotSessions:
		return types.Int(a.sessions)
	case slotAncestry:
		return a.adapter.NativeToValue(ev.Ancestry)
	case slotTool:
		return a.adapter.NativeToValue(a.toolOf())
	}
	var raw any
	switch slot {
	case slotProcess:
		raw = orEmpty(ev.Process, &a.empty.process)
	case slotBinary:
		var b *event.Binary
		if ev.Process != nil {
			b = ev.Process.Binary
		}
		raw = orEmpty(b, &a.empty.binary)
	case slotAgent:
		raw = orEmpty(ev.Agent, &a.empty.agent)
	case slotIdentity:
		raw = orEmpty(ev.Identity, &a.empty.identity)
	case slotPosture:
		raw = orEmpty(ev.Posture, &a.empty.posture)
	case slotFile:
		raw = orEmpty(ev.File, &a.empty.file)
	case slotNet:
		raw = orEmpty(ev.Net, &a.empty.net)
	case slotTamper:
		raw = orEmpty(ev.Tamper, &a.empty.tamper)
	case slotIOURing:
		raw = orEmpty(ev.IOURing, &a.empty.iouring)
	}
	return a.adapter.NativeToValue(raw)
}

func orEmpty[T any](p, empty *T) *T {
	if p != nil {
		return p
	}
	return empty
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// toolOf is the tool variable: the call being decided, or the tool call
// the event records (its input is then the redacted summary), or empty.
func (a *activation) toolOf() map[string]any {
	if a.tool != nil {
		return a.tool
	}
	t := a.ev.Tool
	if t == nil {
		return map[string]any{"name": "", "id": "", "input": map[string]any{}}
	}
	in := make(map[string]any, len(t.Input))
	for k, v := range t.Input {
		in[k] = v
	}
	return map[string]any{"name": t.Name, "id": t.ID, "input": in}
}
