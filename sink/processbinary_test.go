package sink

import (
	"bytes"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/native"
)

// A process.binary follow-up is valid native output, v2 and v1.
func TestProcessBinaryValidatesAgainstNativeSchemas(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, 3, "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77")
	p := ev.Process
	ev.Kind = event.KindProcessBinary
	ev.Process = &event.Process{ExecID: p.ExecID, ParentExecID: p.ParentExecID, PID: p.PID, PPID: p.PPID,
		StartTime: p.StartTime, Exe: p.Exe, UID: p.UID, EUID: p.EUID, User: p.User, Binary: p.Binary}
	ev.Ancestry, ev.Identity, ev.Partial = nil, nil, nil
	v2, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	v1, err := schematest.NativeV1()
	if err != nil {
		t.Fatal(err)
	}
	b, err := native.Encoder{}.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(v2, b); err != nil {
		t.Errorf("v2: %v\n%s", err, b)
	}
	b1, err := native.Encoder{V1: true, Ancestry: event.AncestryFull}.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(v1, b1); err != nil {
		t.Errorf("v1: %v\n%s", err, b1)
	}
	// Without a process it is not valid.
	ev.Process = nil
	if b, err := (native.Encoder{}).Append(nil, ev); err == nil && schematest.Validate(v2, b) == nil {
		t.Error("a process.binary without process validates")
	}
}

// agent.session_id_hint is written when set and valid in both schemas.
func TestSessionIDHintValidates(t *testing.T) {
	ev := testevents.New(event.KindProcessExec, 3, "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77")
	ev.Agent.SessionIDHint = true
	v2, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	v1, err := schematest.NativeV1()
	if err != nil {
		t.Fatal(err)
	}
	b, err := native.Encoder{}.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"session_id_hint":true`)) {
		t.Errorf("no session_id_hint: %s", b)
	}
	if err := schematest.Validate(v2, b); err != nil {
		t.Errorf("v2: %v", err)
	}
	b1, err := native.Encoder{V1: true, Ancestry: event.AncestryFull}.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(v1, b1); err != nil {
		t.Errorf("v1: %v", err)
	}
}
