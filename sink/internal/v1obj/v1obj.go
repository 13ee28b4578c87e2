// Package v1obj writes the lineaged objects (named for the contract's first
// version; it writes lineaged/v2 and, where they differ, v1) that more than
// one encoder embeds with the same shape: the native encoder writes them at
// the top of an event, the OCSF encoder under unmapped.lineaged. Both get the
// same bytes from the same code; only the path their invalid_utf8 marks carry
// differs, by the prefix passed in.
//
// Like jsonw, every writer appends to a caller-owned buffer and allocates
// nothing unless a value holds invalid UTF-8.
package v1obj

import (
	"slices"
	"strings"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
)

// maxMarks is the largest Marks.Limit.
const maxMarks = 32

// Marks collects the paths of string fields whose values held invalid UTF-8,
// for the event's invalid_utf8 list. The zero value keeps up to 32 distinct
// paths; an event with more still encodes every value losslessly. It is
// per-event scratch, kept on the stack.
type Marks struct {
	// Limit bounds the number of paths kept, at most 32; 0 means 32. It
	// bounds the values kept for invalid_utf8_base64 the same way.
	Limit int
	paths [maxMarks]string
	n     int
	// raw holds the distinct values written with U+FFFD in place of
	// invalid bytes, for invalid_utf8_base64.
	raw  [maxMarks]string
	nraw int
}

// Bad records a value s written at prefix.name that held invalid UTF-8:
// its path for invalid_utf8 and its exact bytes for invalid_utf8_base64.
func (m *Marks) Bad(prefix, name, s string) {
	m.Mark(prefix, name)
	m.Raw(s)
}

// Raw records the exact bytes of a value that held invalid UTF-8, once.
func (m *Marks) Raw(s string) {
	limit := m.Limit
	if limit <= 0 || limit > maxMarks {
		limit = maxMarks
	}
	if m.nraw >= limit {
		return
	}
	for _, q := range m.raw[:m.nraw] {
		if q == s {
			return
		}
	}
	// A copy: s may be a temporary the caller built, which must stay
	// off the heap on the common path.
	m.raw[m.nraw] = strings.Clone(s)
	m.nraw++
}

// Mark records the path prefix.name (name alone when prefix is empty).
func (m *Marks) Mark(prefix, name string) {
	limit := m.Limit
	if limit <= 0 || limit > maxMarks {
		limit = maxMarks
	}
	if m.n >= limit {
		return
	}
	p := name
	if prefix != "" {
		p = prefix + "." + name
	}
	for _, q := range m.paths[:m.n] {
		if q == p {
			return
		}
	}
	m.paths[m.n] = p
	m.n++
}

// Len reports how many paths are marked.
func (m *Marks) Len() int { return m.n }

// Count reports how many paths and values are kept: it changes whenever
// something is marked while Room holds.
func (m *Marks) Count() int { return m.n + m.nraw }

// Room reports whether another path and value can still be kept: while it
// holds, a value with invalid UTF-8 changes Count (a path already marked
// aside), so bytes written with Count unchanged carry no mark of the event.
func (m *Marks) Room() bool {
	limit := m.Limit
	if limit <= 0 || limit > maxMarks {
		limit = maxMarks
	}
	return m.n < limit && m.nraw < limit
}

// Str writes "key":s and marks prefix.key if s holds invalid UTF-8.
func (m *Marks) Str(dst []byte, key, prefix, s string) []byte {
	return m.StrAs(dst, key, prefix, key, s)
}

// StrAs is Str for a value whose marked path is prefix.sub.
func (m *Marks) StrAs(dst []byte, key, prefix, sub, s string) []byte {
	dst = jsonw.AppendKey(dst, key)
	dst, bad := jsonw.AppendString(dst, s)
	if bad {
		m.Bad(prefix, sub, s)
	}
	return dst
}

// OptStr is Str, writing nothing for an empty s.
func (m *Marks) OptStr(dst []byte, key, prefix, s string) []byte {
	if s == "" {
		return dst
	}
	return m.Str(dst, key, prefix, s)
}

// OptStrAs is StrAs, writing nothing for an empty s.
func (m *Marks) OptStrAs(dst []byte, key, prefix, sub, s string) []byte {
	if s == "" {
		return dst
	}
	return m.StrAs(dst, key, prefix, sub, s)
}

// StrList writes "key":[...] and marks prefix.key if any element holds
// invalid UTF-8.
func (m *Marks) StrList(dst []byte, key, prefix string, list []string) []byte {
	dst = append(jsonw.AppendKey(dst, key), '[')
	for _, s := range list {
		var bad bool
		dst, bad = jsonw.AppendString(jsonw.Comma(dst), s)
		if bad {
			m.Bad(prefix, key, s)
		}
	}
	return append(dst, ']')
}

// AppendList writes "invalid_utf8":[paths...] when any path is marked (the
// paths are plain ASCII built from constant field names), and beside it
// "invalid_utf8_base64":[{"value":v,"base64":b}...]: each distinct value
// as the event shows it (U+FFFD for each invalid byte) with its exact bytes
// in base64 (docs/schema.md, "Invalid UTF-8").
func (m *Marks) AppendList(dst []byte) []byte {
	if m.n == 0 {
		return dst
	}
	dst = append(jsonw.AppendKey(dst, "invalid_utf8"), '[')
	for _, p := range m.paths[:m.n] {
		dst, _ = jsonw.AppendString(jsonw.Comma(dst), p)
	}
	dst = append(dst, ']')
	if m.nraw == 0 {
		return dst
	}
	dst = append(jsonw.AppendKey(dst, "invalid_utf8_base64"), '[')
	for _, s := range m.raw[:m.nraw] {
		dst = append(jsonw.Comma(dst), '{')
		dst, _ = jsonw.AppendString(jsonw.AppendKey(dst, "value"), s)
		dst = jsonw.AppendBase64(jsonw.AppendKey(dst, "base64"), s)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// Header writes the event's identity: schema, event_id, seq, time, kind.
// v1 writes the schema lineaged/v1 instead of the current one.
func Header(m *Marks, dst []byte, prefix string, v1 bool, ev *event.Event) []byte {
	if v1 {
		dst = append(jsonw.AppendKey(dst, "schema"), `"`+event.SchemaV1+`"`...)
	} else {
		dst = append(jsonw.AppendKey(dst, "schema"), `"`+event.Schema+`"`...)
	}
	dst = m.Str(dst, "event_id", prefix, ev.EventID)
	dst = jsonw.AppendUint(jsonw.AppendKey(dst, "seq"), ev.Seq)
	dst = jsonw.AppendTime(jsonw.AppendKey(dst, "time"), ev.Time)
	return m.Str(dst, "kind", prefix, ev.Kind)
}

// Agent writes "agent":{...}, the agent session; prefix is the object's path
// (agent, unmapped.lineaged.agent).
func Agent(m *Marks, dst []byte, prefix string, a *event.Agent) []byte {
	dst = append(jsonw.AppendKey(dst, "agent"), '{')
	dst = m.Str(dst, "name", prefix, a.Name)
	dst = m.OptStr(dst, "version", prefix, a.Version)
	dst = m.OptStr(dst, "session_id", prefix, a.SessionID)
	dst = m.Str(dst, "root_exec_id", prefix, a.RootExecID)
	dst = m.Str(dst, "role", prefix, a.Role)
	if t := a.ToolUse; t != nil {
		dst = append(jsonw.AppendKey(dst, "tool_use"), '{')
		dst = m.StrAs(dst, "id", prefix, "tool_use.id", t.ID)
		dst = m.StrAs(dst, "name", prefix, "tool_use.name", t.Name)
		if t.Attribution != "" {
			dst = m.StrAs(dst, "attribution", prefix, "tool_use.attribution", t.Attribution)
		}
		if t.NoHookDecision {
			dst = append(jsonw.AppendKey(dst, "no_hook_decision"), "true"...)
		}
		dst = append(dst, '}')
	}
	dst = m.OptStr(dst, "parent_root_exec_id", prefix, a.ParentRootExecID)
	if a.SessionIDHint {
		dst = append(jsonw.AppendKey(dst, "session_id_hint"), "true"...)
	}
	dst = m.OptStr(dst, "via", prefix, a.Via)
	return agentIdentity(m, dst, prefix, a)
}

// Tool writes "tool":{...}, a tool call and its decision; prefix is the
// object's path (tool, unmapped.lineaged.tool). The input summary's keys
// are sorted, so the same call always encodes to the same bytes.
func Tool(m *Marks, dst []byte, prefix string, t *event.ToolCall) []byte {
	dst = append(jsonw.AppendKey(dst, "tool"), '{')
	dst = m.Str(dst, "id", prefix, t.ID)
	dst = m.Str(dst, "name", prefix, t.Name)
	dst = m.Str(dst, "hook", prefix, t.Hook)
	dst = m.OptStr(dst, "session_id", prefix, t.SessionID)
	if len(t.Input) > 0 {
		keys := make([]string, 0, len(t.Input))
		for k := range t.Input {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(jsonw.AppendKey(dst, "input"), '{')
		for _, k := range keys {
			dst = jsonw.Comma(dst)
			var bad bool
			if dst, bad = jsonw.AppendString(dst, k); bad {
				m.Bad(prefix, "input", k)
			}
			dst = append(dst, ':')
			if dst, bad = jsonw.AppendString(dst, t.Input[k]); bad {
				m.Bad(prefix, "input", t.Input[k])
			}
		}
		dst = append(dst, '}')
	}
	dst = m.Str(dst, "decision", prefix, t.Decision)
	dst = m.OptStr(dst, "rule", prefix, t.Rule)
	dst = m.OptStr(dst, "reason", prefix, t.Reason)
	dst = m.OptStr(dst, "outcome", prefix, t.Outcome)
	if t.DurationMS != nil {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "duration_ms"), *t.DurationMS)
	}
	return append(dst, '}')
}

// Loss writes "loss":{...}, what a sensor.loss reports lost and, when known,
// the seqs and times it covers; prefix is the object's path.
func Loss(m *Marks, dst []byte, prefix string, l *event.Loss) []byte {
	dst = append(jsonw.AppendKey(dst, "loss"), '{')
	dst = m.Str(dst, "where", prefix, l.Where)
	dst = m.OptStr(dst, "of", prefix, l.Of)
	dst = jsonw.AppendUint(jsonw.AppendKey(dst, "count"), l.Count)
	dst = m.OptStr(dst, "root_exec_id", prefix, l.RootExecID)
	if l.FirstSeq != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "first_seq"), l.FirstSeq)
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "last_seq"), l.LastSeq)
	}
	if !l.From.IsZero() {
		dst = jsonw.AppendTime(jsonw.AppendKey(dst, "from"), l.From)
		dst = jsonw.AppendTime(jsonw.AppendKey(dst, "to"), l.To)
	}
	return append(dst, '}')
}

// Checkpoint writes "checkpoint":{...}, the body of a sensor.checkpoint
// (docs/audit.md); prefix is the object's path. Loss is written with its
// keys sorted, so the bytes depend on the values only.
func Checkpoint(m *Marks, dst []byte, prefix string, c *event.Checkpoint) []byte {
	dst = append(jsonw.AppendKey(dst, "checkpoint"), '{')
	dst = m.Str(dst, "reason", prefix, c.Reason)
	dst = jsonw.AppendUint(jsonw.AppendKey(dst, "epoch"), c.Epoch)
	dst = m.Str(dst, "instance_id", prefix, c.InstanceID)
	dst = m.Str(dst, "head", prefix, c.Head)
	if c.FirstSeq != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "first_seq"), c.FirstSeq)
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "last_seq"), c.LastSeq)
	}
	dst = jsonw.AppendUint(jsonw.AppendKey(dst, "events"), c.Events)
	if len(c.Loss) > 0 {
		keys := make([]string, 0, len(c.Loss))
		for k := range c.Loss {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(jsonw.AppendKey(dst, "loss"), '{')
		for _, k := range keys {
			dst = jsonw.AppendUint(m.StrKey(dst, k, prefix, "loss"), c.Loss[k])
		}
		dst = append(dst, '}')
	}
	dst = m.Str(dst, "algorithm", prefix, c.Algorithm)
	dst = m.Str(dst, "key_id", prefix, c.KeyID)
	dst = m.Str(dst, "next_key", prefix, c.NextKey)
	return append(dst, '}')
}

// StrKey writes s as an object key ("s":) after a comma if one is needed;
// it marks prefix.name if s holds invalid UTF-8.
func (m *Marks) StrKey(dst []byte, s, prefix, name string) []byte {
	dst = jsonw.Comma(dst)
	var bad bool
	dst, bad = jsonw.AppendString(dst, s)
	if bad {
		m.Mark(prefix, name)
	}
	return append(dst, ':')
}

// Tamper writes "tamper":{...}, what a sensor.tamper reports was done to
// the sensor.
func Tamper(m *Marks, dst []byte, prefix string, t *event.Tamper) []byte {
	dst = append(jsonw.AppendKey(dst, "tamper"), '{')
	dst = m.Str(dst, "action", prefix, t.Action)
	dst = jsonw.AppendUint(jsonw.AppendKey(dst, "sensor_pid"), uint64(t.SensorPID))
	if t.Signal != 0 {
		dst = jsonw.AppendInt(jsonw.AppendKey(dst, "signal"), int64(t.Signal))
	}
	if t.ExitCode != 0 {
		dst = jsonw.AppendInt(jsonw.AppendKey(dst, "exit_code"), int64(t.ExitCode))
	}
	dst = m.OptStr(dst, "request", prefix, t.Request)
	dst = m.OptStr(dst, "object", prefix, t.Object)
	if t.ObjectID != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "object_id"), uint64(t.ObjectID))
	}
	dst = m.OptStr(dst, "comm", prefix, t.Comm)
	dst = m.OptStr(dst, "program", prefix, t.Program)
	if t.LoginUID != nil {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "login_uid"), uint64(*t.LoginUID))
	}
	if t.SessionLoginUID != nil {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "session_login_uid"), uint64(*t.SessionLoginUID))
	}
	if t.Refused {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "refused"), true)
	}
	dst = m.OptStr(dst, "path", prefix, t.Path)
	dst = m.OptStr(dst, "anchor", prefix, t.Anchor)
	return append(dst, '}')
}

// IOURing writes "io_uring":{...}, what an io_uring.setup or
// io_uring.submit reports.
func IOURing(m *Marks, dst []byte, prefix string, u *event.IOURing) []byte {
	dst = append(jsonw.AppendKey(dst, "io_uring"), '{')
	if u.Op == "" || u.Result != 0 { // a setup's result is always written
		dst = jsonw.AppendInt(jsonw.AppendKey(dst, "result"), int64(u.Result))
	}
	if u.Entries != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "entries"), uint64(u.Entries))
	}
	if u.SetupFlags != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "setup_flags"), uint64(u.SetupFlags))
	}
	dst = m.OptStr(dst, "op", prefix, u.Op)
	if u.Opcode != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "opcode"), uint64(u.Opcode))
	}
	for _, f := range [...]struct {
		key string
		v   bool
	}{{"sqpoll", u.SQPoll}, {"fixed_file", u.FixedFile}} {
		if f.v {
			dst = jsonw.AppendBool(jsonw.AppendKey(dst, f.key), true)
		}
	}
	if u.FD != nil {
		dst = jsonw.AppendInt(jsonw.AppendKey(dst, "fd"), int64(*u.FD))
	}
	if u.DirFD != nil {
		dst = jsonw.AppendInt(jsonw.AppendKey(dst, "dir_fd"), int64(*u.DirFD))
	}
	dst = m.OptStr(dst, "path", prefix, u.Path)
	dst = m.OptStr(dst, "new_path", prefix, u.NewPath)
	dst = m.OptStr(dst, "path_source", prefix, u.PathSource)
	for _, f := range [...]struct {
		key string
		v   bool
	}{{"path_truncated", u.PathTruncated}, {"new_path_truncated", u.NewPathTruncated}} {
		if f.v {
			dst = jsonw.AppendBool(jsonw.AppendKey(dst, f.key), true)
		}
	}
	if u.Flags != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "flags"), uint64(u.Flags))
	}
	if u.Perm != nil {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "perm"), uint64(*u.Perm))
	}
	dst = m.OptStr(dst, "family", prefix, u.Family)
	dst = m.OptStr(dst, "dst_ip", prefix, u.DstIP)
	if u.DstPort != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "dst_port"), uint64(u.DstPort))
	}
	dst = m.OptStr(dst, "unix_path", prefix, u.UnixPath)
	dst = m.OptStr(dst, "dst_source", prefix, u.DstSource)
	for _, f := range [...]struct {
		key string
		v   bool
	}{{"send_unknown", u.SendUnknown}, {"unprepared", u.Unprepared}} {
		if f.v {
			dst = jsonw.AppendBool(jsonw.AppendKey(dst, f.key), true)
		}
	}
	dst = m.OptStr(dst, "syscall_abi", prefix, u.SyscallABI)
	if u.ParamsUnreadable {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "params_unreadable"), true)
	}
	if u.Killed {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "killed"), true)
	}
	if u.UserData != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "user_data"), u.UserData)
	}
	return append(dst, '}')
}
