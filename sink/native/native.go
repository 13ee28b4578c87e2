// Package native encodes events in the lineaged/v1 JSON format documented in
// docs/schema.md and described by docs/lineaged-v1.schema.json.
//
// The encoder is a hand-written appender: it writes into a caller-owned
// buffer, allocates nothing for ordinary events and writes every field of
// the contract in a fixed order.
package native

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
)

// ContentType is the media type of one encoded event.
const ContentType = "application/json"

// Defaults for the argv bounds.
const (
	DefaultMaxArgs      = 1024
	DefaultMaxArgBytes  = 16 << 10
	DefaultMaxArgvBytes = 64 << 10
)

// Encoder writes lineaged/v1 events. The zero value uses the default bounds.
// An Encoder is immutable and safe for concurrent use.
type Encoder struct {
	// MaxArgs bounds the number of argv elements written.
	MaxArgs int
	// MaxArgBytes bounds one argv element.
	MaxArgBytes int
	// MaxArgvBytes bounds the sum of the argv elements written.
	MaxArgvBytes int
}

// ContentType returns the media type of the output.
func (Encoder) ContentType() string { return ContentType }

// Schema returns the schema name carried by every event.
func (Encoder) Schema() string { return event.Schema }

// Errors returned for events that cannot be encoded.
var (
	ErrNilEvent  = errors.New("native: nil event")
	ErrNoEventID = errors.New("native: event has no event_id")
	ErrNoKind    = errors.New("native: event has no kind")
)

// maxMarks bounds the invalid_utf8 list; an event with more distinct
// invalid fields than this still encodes every value losslessly.
const maxMarks = 32

// state is per-call scratch, kept on the stack.
type state struct {
	marks [maxMarks]string
	n     int
}

func (st *state) mark(prefix, name string) {
	if st.n == maxMarks {
		return
	}
	p := name
	if prefix != "" {
		p = prefix + "." + name
	}
	for _, m := range st.marks[:st.n] {
		if m == p {
			return
		}
	}
	st.marks[st.n] = p
	st.n++
}

func (st *state) str(dst []byte, prefix, key, s string) []byte {
	dst = jsonw.AppendKey(dst, key)
	dst, bad := jsonw.AppendString(dst, s)
	if bad {
		st.mark(prefix, key)
	}
	return dst
}

func (st *state) optStr(dst []byte, prefix, key, s string) []byte {
	if s == "" {
		return dst
	}
	return st.str(dst, prefix, key, s)
}

func uintField(dst []byte, key string, v uint64) []byte {
	return jsonw.AppendUint(jsonw.AppendKey(dst, key), v)
}

func intField(dst []byte, key string, v int64) []byte {
	return jsonw.AppendInt(jsonw.AppendKey(dst, key), v)
}

func boolField(dst []byte, key string, v bool) []byte {
	return jsonw.AppendBool(jsonw.AppendKey(dst, key), v)
}

func timeField(dst []byte, key string, t time.Time) []byte {
	return jsonw.AppendTime(jsonw.AppendKey(dst, key), t)
}

// Append appends ev as one JSON object (no trailing newline) to dst.
func (e Encoder) Append(dst []byte, ev *event.Event) ([]byte, error) {
	if ev == nil {
		return dst, ErrNilEvent
	}
	if ev.EventID == "" {
		return dst, ErrNoEventID
	}
	if ev.Kind == "" {
		return dst, ErrNoKind
	}
	if ev.Schema != "" && ev.Schema != event.Schema {
		return dst, fmt.Errorf("native: event %s has schema %q, encoder writes %q", ev.EventID, ev.Schema, event.Schema)
	}
	var st state
	dst = append(dst, `{"schema":"`+event.Schema+`"`...)
	dst = st.str(dst, "", "event_id", ev.EventID)
	dst = uintField(dst, "seq", ev.Seq)
	dst = timeField(dst, "time", ev.Time)
	dst = st.str(dst, "", "kind", ev.Kind)
	if h := ev.Host; h != nil {
		dst = append(jsonw.AppendKey(dst, "host"), '{')
		dst = st.str(dst, "host", "hostname", h.Hostname)
		dst = st.str(dst, "host", "machine_id", h.MachineID)
		dst = st.str(dst, "host", "boot_id", h.BootID)
		dst = st.str(dst, "host", "os", h.OS)
		dst = st.str(dst, "host", "kernel", h.Kernel)
		dst = append(dst, '}')
	}
	if ev.Process != nil {
		dst = jsonw.AppendKey(dst, "process")
		dst = e.process(&st, dst, "process", ev.Process)
	}
	if len(ev.Ancestry) > 0 {
		dst = append(jsonw.AppendKey(dst, "ancestry"), '[')
		for i := range ev.Ancestry {
			dst = jsonw.Comma(dst)
			dst = e.process(&st, dst, "ancestry", &ev.Ancestry[i])
		}
		dst = append(dst, ']')
	}
	if a := ev.Agent; a != nil {
		dst = append(jsonw.AppendKey(dst, "agent"), '{')
		dst = st.str(dst, "agent", "name", a.Name)
		dst = st.optStr(dst, "agent", "version", a.Version)
		dst = st.optStr(dst, "agent", "session_id", a.SessionID)
		dst = st.str(dst, "agent", "root_exec_id", a.RootExecID)
		dst = st.str(dst, "agent", "role", a.Role)
		if t := a.ToolUse; t != nil {
			dst = append(jsonw.AppendKey(dst, "tool_use"), '{')
			dst = st.str(dst, "agent.tool_use", "id", t.ID)
			dst = st.str(dst, "agent.tool_use", "name", t.Name)
			dst = append(dst, '}')
		}
		dst = st.optStr(dst, "agent", "parent_root_exec_id", a.ParentRootExecID)
		dst = append(dst, '}')
	}
	if id := ev.Identity; id != nil {
		dst = append(jsonw.AppendKey(dst, "identity"), '{')
		dst = st.optStr(dst, "identity", "user", id.User)
		dst = uintField(dst, "uid", uint64(id.UID))
		dst = st.optStr(dst, "identity", "login_user", id.LoginUser)
		if id.LoginUID != nil {
			dst = uintField(dst, "login_uid", uint64(*id.LoginUID))
		}
		if h := id.Human; h != nil {
			dst = append(jsonw.AppendKey(dst, "human"), '{')
			dst = st.str(dst, "identity.human", "name", h.Name)
			dst = st.optStr(dst, "identity.human", "email", h.Email)
			dst = append(dst, '}')
		}
		dst = st.optStr(dst, "identity", "verified_by", id.VerifiedBy)
		dst = append(dst, '}')
	}
	if p := ev.Posture; p != nil {
		dst = appendPosture(&st, dst, p)
	}
	if f := ev.File; f != nil {
		dst = append(jsonw.AppendKey(dst, "file"), '{')
		dst = st.str(dst, "file", "path", f.Path)
		if f.PathTruncated {
			dst = boolField(dst, "path_truncated", true)
		}
		dst = st.optStr(dst, "file", "mode", f.Mode)
		if f.Created {
			dst = boolField(dst, "created", true)
		}
		dst = st.optStr(dst, "file", "new_path", f.NewPath)
		if f.Flags != 0 {
			dst = uintField(dst, "flags", uint64(f.Flags))
		}
		if f.Perm != nil {
			dst = uintField(dst, "perm", uint64(*f.Perm))
		}
		if f.Result != 0 {
			dst = intField(dst, "result", int64(f.Result))
		}
		dst = append(dst, '}')
	}
	if n := ev.Net; n != nil {
		dst = append(jsonw.AppendKey(dst, "net"), '{')
		dst = st.str(dst, "net", "protocol", n.Protocol)
		dst = st.str(dst, "net", "family", n.Family)
		dst = st.str(dst, "net", "dst_ip", n.DstIP)
		dst = uintField(dst, "dst_port", uint64(n.DstPort))
		dst = st.optStr(dst, "net", "src_ip", n.SrcIP)
		if n.SrcPort != 0 {
			dst = uintField(dst, "src_port", uint64(n.SrcPort))
		}
		if n.Result != 0 {
			dst = intField(dst, "result", int64(n.Result))
		}
		dst = append(dst, '}')
	}
	if x := ev.Exit; x != nil {
		dst = append(jsonw.AppendKey(dst, "exit"), '{')
		dst = intField(dst, "code", int64(x.Code))
		if x.Signal != 0 {
			dst = intField(dst, "signal", int64(x.Signal))
		}
		if x.CoreDumped {
			dst = boolField(dst, "core_dumped", true)
		}
		dst = append(dst, '}')
	}
	if l := ev.Loss; l != nil {
		dst = append(jsonw.AppendKey(dst, "loss"), '{')
		dst = st.str(dst, "loss", "where", l.Where)
		dst = st.optStr(dst, "loss", "of", l.Of)
		dst = uintField(dst, "count", l.Count)
		if l.FirstSeq != 0 {
			dst = uintField(dst, "first_seq", l.FirstSeq)
			dst = uintField(dst, "last_seq", l.LastSeq)
		}
		if !l.From.IsZero() {
			dst = timeField(dst, "from", l.From)
			dst = timeField(dst, "to", l.To)
		}
		dst = append(dst, '}')
	}
	if s := ev.Sensor; s != nil {
		dst = append(jsonw.AppendKey(dst, "sensor"), '{')
		dst = st.str(dst, "sensor", "version", s.Version)
		dst = st.str(dst, "sensor", "instance_id", s.InstanceID)
		dst = st.optStr(dst, "sensor", "scope", s.Scope)
		dst = st.optStr(dst, "sensor", "source", s.Source)
		dst = st.optStr(dst, "sensor", "hooks", s.Hooks)
		dst = st.optStr(dst, "sensor", "reason", s.Reason)
		dst = append(dst, '}')
	}
	if a := ev.Alert; a != nil {
		dst = append(jsonw.AppendKey(dst, "alert"), '{')
		dst = st.str(dst, "alert", "rule", a.Rule)
		dst = st.str(dst, "alert", "severity", a.Severity)
		dst = st.str(dst, "alert", "message", a.Message)
		dst = st.optStr(dst, "alert", "action", a.Action)
		dst = st.optStr(dst, "alert", "trigger_event_id", a.TriggerEventID)
		dst = append(dst, '}')
	}
	if len(ev.Partial) > 0 {
		dst = append(jsonw.AppendKey(dst, "partial"), '[')
		for _, part := range ev.Partial {
			var bad bool
			dst, bad = jsonw.AppendString(jsonw.Comma(dst), part)
			if bad {
				st.mark("", "partial")
			}
		}
		dst = append(dst, ']')
	}
	if st.n > 0 {
		// Paths are plain ASCII built from constant field names.
		dst = append(jsonw.AppendKey(dst, "invalid_utf8"), '[')
		for _, m := range st.marks[:st.n] {
			dst = jsonw.Comma(dst)
			dst, _ = jsonw.AppendString(dst, m)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}'), nil
}

func (e Encoder) process(st *state, dst []byte, prefix string, p *event.Process) []byte {
	dst = append(dst, '{')
	dst = st.str(dst, prefix, "exec_id", p.ExecID)
	dst = st.optStr(dst, prefix, "parent_exec_id", p.ParentExecID)
	dst = st.optStr(dst, prefix, "current_parent_exec_id", p.CurrentParentExecID)
	dst = uintField(dst, "pid", uint64(p.PID))
	dst = uintField(dst, "ppid", uint64(p.PPID))
	dst = timeField(dst, "start_time", p.StartTime)
	dst = st.optStr(dst, prefix, "exe", p.Exe)
	if len(p.Argv) > 0 || p.ArgvTruncated {
		dst = e.argv(st, dst, prefix, p)
	}
	dst = st.optStr(dst, prefix, "cwd", p.Cwd)
	dst = uintField(dst, "uid", uint64(p.UID))
	dst = uintField(dst, "euid", uint64(p.EUID))
	dst = uintField(dst, "gid", uint64(p.GID))
	dst = st.optStr(dst, prefix, "user", p.User)
	if p.LoginUID != nil {
		dst = uintField(dst, "login_uid", uint64(*p.LoginUID))
	}
	dst = st.optStr(dst, prefix, "login_user", p.LoginUser)
	dst = st.optStr(dst, prefix, "tty", p.TTY)
	dst = st.optStr(dst, prefix, "cgroup", p.Cgroup)
	if b := p.Binary; b != nil {
		// Constant prefixes: no allocation on the hot path.
		bp := "ancestry.binary"
		if prefix == "process" {
			bp = "process.binary"
		}
		dst = append(jsonw.AppendKey(dst, "binary"), '{')
		dst = st.str(dst, bp, "path", b.Path)
		dst = st.optStr(dst, bp, "sha256", b.SHA256)
		dst = intField(dst, "size", b.Size)
		dst = uintField(dst, "inode", b.Inode)
		dst = uintField(dst, "dev", b.Dev)
		if !b.Mtime.IsZero() {
			dst = timeField(dst, "mtime", b.Mtime)
		}
		dst = st.str(dst, bp, "verdict", b.Verdict)
		dst = st.optStr(dst, bp, "package", b.Package)
		dst = st.optStr(dst, bp, "signer", b.Signer)
		dst = st.optStr(dst, bp, "key_id", b.KeyID)
		dst = st.optStr(dst, bp, "reason", b.Reason)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// argv writes the argument list within the encoder's bounds. When a bound
// cuts it, argv_truncated is set and argc carries the original count.
func (e Encoder) argv(st *state, dst []byte, prefix string, p *event.Process) []byte {
	maxArgs, maxArg, maxTotal := e.MaxArgs, e.MaxArgBytes, e.MaxArgvBytes
	if maxArgs <= 0 {
		maxArgs = DefaultMaxArgs
	}
	if maxArg <= 0 {
		maxArg = DefaultMaxArgBytes
	}
	if maxTotal <= 0 {
		maxTotal = DefaultMaxArgvBytes
	}
	cut := false
	total := 0
	dst = append(jsonw.AppendKey(dst, "argv"), '[')
	for i, a := range p.Argv {
		if i == maxArgs || total >= maxTotal {
			cut = true
			break
		}
		if len(a) > maxArg {
			a = jsonw.TruncateUTF8(a, maxArg)
			cut = true
		}
		if total+len(a) > maxTotal {
			a = jsonw.TruncateUTF8(a, maxTotal-total)
			cut = true
		}
		total += len(a)
		dst = jsonw.Comma(dst)
		var bad bool
		dst, bad = jsonw.AppendString(dst, a)
		if bad {
			st.mark(prefix, "argv")
		}
	}
	dst = append(dst, ']')
	if cut || p.ArgvTruncated {
		dst = boolField(dst, "argv_truncated", true)
		dst = uintField(dst, "argc", uint64(len(p.Argv)))
	}
	return dst
}

func appendPosture(st *state, dst []byte, p *event.Posture) []byte {
	dst = append(jsonw.AppendKey(dst, "posture"), '{')
	dst = timeField(dst, "sampled_at", p.SampledAt)
	dst = boolField(dst, "compliant", p.Compliant)
	if len(p.Failed) > 0 {
		dst = append(jsonw.AppendKey(dst, "failed"), '[')
		for _, f := range p.Failed {
			dst = jsonw.Comma(dst)
			var bad bool
			dst, bad = jsonw.AppendString(dst, f)
			if bad {
				st.mark("posture", "failed")
			}
		}
		dst = append(dst, ']')
	}
	if len(p.Checks) > 0 {
		// Sorted so the same sample always encodes to the same bytes.
		var buf [32]string
		names := buf[:0]
		for k := range p.Checks {
			names = append(names, k)
		}
		slices.Sort(names)
		dst = append(jsonw.AppendKey(dst, "checks"), '{')
		for _, k := range names {
			c := p.Checks[k]
			dst = jsonw.Comma(dst)
			var bad bool
			dst, bad = jsonw.AppendString(dst, k)
			if bad {
				st.mark("posture", "checks")
			}
			dst = append(dst, ':', '{')
			dst = boolField(dst, "ok", c.OK)
			dst = st.optStr(dst, "posture.checks", "detail", c.Detail)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}
