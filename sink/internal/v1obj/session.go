package v1obj

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
)

// Session writes "session":{...}, an agent session's summary
// (agent.session_start, agent.session_end); prefix is the object's path.
func Session(m *Marks, dst []byte, prefix string, s *event.Session) []byte {
	dst = append(jsonw.AppendKey(dst, "session"), '{')
	dst = jsonw.AppendTime(jsonw.AppendKey(dst, "start"), s.Start)
	if !s.End.IsZero() {
		dst = jsonw.AppendTime(jsonw.AppendKey(dst, "end"), s.End)
	}
	dst = m.OptStr(dst, "end_reason", prefix, s.EndReason)
	if c := s.Counts; c != nil {
		dst = append(jsonw.AppendKey(dst, "counts"), '{')
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "processes"), c.Processes)
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "files_written"), c.FilesWritten)
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "connections"), c.Connections)
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "tool_calls"), c.ToolCalls)
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "denied_tool_calls"), c.DeniedToolCalls)
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "alerts"), c.Alerts)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}
