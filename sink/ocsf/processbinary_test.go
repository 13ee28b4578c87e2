package ocsf

import (
	"encoding/json"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/ocsf/ocsfschema"
)

// processBinary is a process.binary follow-up as the engine builds it.
func processBinary() *event.Event {
	ev := testevents.New(event.KindProcessExec, 3, "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77")
	p := ev.Process
	ev.Kind = event.KindProcessBinary
	ev.Process = &event.Process{ExecID: p.ExecID, ParentExecID: p.ParentExecID, PID: p.PID, PPID: p.PPID,
		StartTime: p.StartTime, Exe: p.Exe, UID: p.UID, EUID: p.EUID, User: p.User, Binary: p.Binary}
	ev.Ancestry, ev.Identity, ev.Partial = nil, nil, nil
	return ev
}

func TestProcessBinaryValidatesAgainstOCSF(t *testing.T) {
	s := loadSchema(t)
	b := encode(t, processBinary())
	m, err := ocsfschema.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(m); err != nil {
		t.Fatalf("%v\n%.600s", err, b)
	}
	var got struct {
		ClassUID   int `json:"class_uid"`
		ActivityID int `json:"activity_id"`
		Process    struct {
			UID  string `json:"uid"`
			File struct {
				Hashes []struct {
					Value string `json:"value"`
				} `json:"hashes"`
			} `json:"file"`
		} `json:"process"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.ClassUID != 1007 || got.ActivityID != 99 || got.Process.UID == "" || len(got.Process.File.Hashes) == 0 {
		t.Errorf("process.binary maps to %+v", got)
	}
}
