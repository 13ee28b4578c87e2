package ocsf

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/v1obj"
)

// ancestryLookalikes writes unmapped.lineaged.ancestry_agent_lookalike: the
// exec_ids of the ancestors that are agent look-alikes (recognised by path
// inside a session, binary not verified: event.Process.AgentLookalike).
// OCSF's Process Entity has no place for it. Nothing when there is none.
func ancestryLookalikes(st *v1obj.Marks, dst []byte, anc []event.Process) []byte {
	var ids []string
	for i := range anc {
		if anc[i].AgentLookalike {
			ids = append(ids, anc[i].ExecID)
		}
	}
	if len(ids) == 0 {
		return dst
	}
	return st.StrList(dst, "ancestry_agent_lookalike", "unmapped.lineaged", ids)
}
