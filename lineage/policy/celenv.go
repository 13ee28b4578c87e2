package policy

import (
	"reflect"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/lineaged/lineaged/lineage/event"
)

// The variables a rule sees (docs/rules.md documents each with examples).
// The event's parts are the lineage/event structs themselves, exposed
// through CEL's native Go types with their JSON names, so a rule reads
// exactly what the lineaged/v1 output shows: process.binary.verdict,
// file.path, agent.session_id. A part the event does not carry reads as
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
		),
		ext.Strings(),
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
	)
}

// activation gives the rules one event. It is reused from event to event
// (the stage runs on one goroutine): binding an event costs a few pointer
// copies, and a part is only turned into a CEL value when a rule reads it.
type activation struct {
	ev       *event.Event
	sessions int64
	empty    struct {
		process  event.Process
		binary   event.Binary
		agent    event.Agent
		identity event.Identity
		posture  event.Posture
		file     event.File
		net      event.Net
	}
}

var _ interpreter.Activation = (*activation)(nil)

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	ev := a.ev
	switch name {
	case varKind:
		return ev.Kind, true
	case varProcess:
		if ev.Process != nil {
			return ev.Process, true
		}
		return &a.empty.process, true
	case varBinary:
		if ev.Process != nil && ev.Process.Binary != nil {
			return ev.Process.Binary, true
		}
		return &a.empty.binary, true
	case varAncestry:
		return ev.Ancestry, true
	case varAgent:
		if ev.Agent != nil {
			return ev.Agent, true
		}
		return &a.empty.agent, true
	case varIdentity:
		if ev.Identity != nil {
			return ev.Identity, true
		}
		return &a.empty.identity, true
	case varPosture:
		if ev.Posture != nil {
			return ev.Posture, true
		}
		return &a.empty.posture, true
	case varFile:
		if ev.File != nil {
			return ev.File, true
		}
		return &a.empty.file, true
	case varNet:
		if ev.Net != nil {
			return ev.Net, true
		}
		return &a.empty.net, true
	case varSessions:
		return a.sessions, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }
