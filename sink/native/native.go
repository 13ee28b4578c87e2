// Package native encodes events in the lineaged/v2 JSON format documented in
// docs/schema.md and described by docs/lineaged-v2.schema.json, or, for one
// release, in the lineaged/v1 format (docs/lineaged-v1.schema.json).
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
	"github.com/lineaged/lineaged/sink/internal/v1obj"
)

// ContentType is the media type of one encoded event.
const ContentType = "application/json"

// Defaults for the argv bounds.
const (
	DefaultMaxArgs      = 1024
	DefaultMaxArgBytes  = 16 << 10
	DefaultMaxArgvBytes = 64 << 10
)

// Encoder writes lineaged/v2 events: compact ancestry and posture by
// reference. The zero value uses the default bounds and shape. An Encoder is
// immutable and safe for concurrent use.
type Encoder struct {
	// MaxArgs bounds the number of argv elements written.
	MaxArgs int
	// MaxArgBytes bounds one argv element.
	MaxArgBytes int
	// MaxArgvBytes bounds the sum of the argv elements written.
	MaxArgvBytes int
	// Ancestry is event.AncestryCompact ("" too, the default),
	// event.AncestryFull, whole process objects, or event.AncestrySession,
	// compact and cut at the session's root.
	Ancestry string
	// V1 writes the lineaged/v1 contract instead: schema "lineaged/v1",
	// whole ancestors whatever Ancestry says, and every posture check on
	// every event.
	V1 bool
	// MaxBytes is the size budget of one encoded event (0: none): an event
	// over it is trimmed and marked "truncated" (budget.go).
	MaxBytes int
	// Shared, when set, keeps the encoded ancestry of events that share
	// one and copies it into the next (shared.go). It must serve this
	// configuration only; Bounded drops it.
	Shared *SharedAncestry
}

// ContentType returns the media type of the output.
func (Encoder) ContentType() string { return ContentType }

// Schema returns the schema name carried by every event.
func (e Encoder) Schema() string {
	if e.V1 {
		return event.SchemaV1
	}
	return event.Schema
}

// compact reports whether ancestors are written compact.
func (e Encoder) compact() bool {
	return !e.V1 && e.Ancestry != event.AncestryFull
}

// Errors returned for events that cannot be encoded.
var (
	ErrNilEvent  = errors.New("native: nil event")
	ErrNoEventID = errors.New("native: event has no event_id")
	ErrNoKind    = errors.New("native: event has no kind")
)

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

// Append appends ev as one JSON object (no trailing newline) to dst,
// within MaxBytes when it is set.
func (e Encoder) Append(dst []byte, ev *event.Event) ([]byte, error) {
	if e.Ancestry == event.AncestrySession && !e.V1 {
		ev = event.AtRoot(ev)
	}
	if e.MaxBytes > 0 {
		return e.appendBudget(dst, ev)
	}
	return e.appendEvent(dst, ev)
}

func (e Encoder) appendEvent(dst []byte, ev *event.Event) ([]byte, error) {
	if ev == nil {
		return dst, ErrNilEvent
	}
	if ev.EventID == "" {
		return dst, ErrNoEventID
	}
	if ev.Kind == "" {
		return dst, ErrNoKind
	}
	if ev.Schema != "" && ev.Schema != event.Schema && ev.Schema != event.SchemaV1 {
		return dst, fmt.Errorf("native: event %s has schema %q, encoder writes %q", ev.EventID, ev.Schema, e.Schema())
	}
	var st v1obj.Marks
	dst = v1obj.Header(&st, append(dst, '{'), "", e.V1, ev)
	if h := ev.Host; h != nil {
		dst = append(jsonw.AppendKey(dst, "host"), '{')
		dst = st.Str(dst, "hostname", "host", h.Hostname)
		dst = st.Str(dst, "machine_id", "host", h.MachineID)
		dst = st.Str(dst, "boot_id", "host", h.BootID)
		dst = st.Str(dst, "os", "host", h.OS)
		dst = st.Str(dst, "kernel", "host", h.Kernel)
		dst = append(dst, '}')
	}
	if ev.Process != nil {
		dst = jsonw.AppendKey(dst, "process")
		dst = e.process(&st, dst, "process", ev.Process)
	}
	if len(ev.Ancestry) > 0 {
		dst = jsonw.AppendKey(dst, "ancestry")
		if b, keep := e.Shared.Lookup(ev.Ancestry, partAncestry); b != nil {
			dst = append(dst, b...)
		} else {
			start, marks, room := len(dst), st.Count(), st.Room()
			dst = e.ancestry(&st, dst, ev.Ancestry)
			if keep && room && st.Count() == marks {
				e.Shared.Keep(ev.Ancestry, partAncestry, dst[start:])
			}
		}
	}
	if a := ev.Agent; a != nil {
		dst = v1obj.Agent(&st, dst, "agent", a)
	}
	if id := ev.Identity; id != nil {
		dst = append(jsonw.AppendKey(dst, "identity"), '{')
		dst = st.OptStr(dst, "user", "identity", id.User)
		dst = uintField(dst, "uid", uint64(id.UID))
		dst = st.OptStr(dst, "login_user", "identity", id.LoginUser)
		if id.LoginUID != nil {
			dst = uintField(dst, "login_uid", uint64(*id.LoginUID))
		}
		if h := id.Human; h != nil {
			dst = append(jsonw.AppendKey(dst, "human"), '{')
			dst = st.Str(dst, "name", "identity.human", h.Name)
			dst = st.OptStr(dst, "email", "identity.human", h.Email)
			dst = append(dst, '}')
		}
		dst = st.OptStr(dst, "verified_by", "identity", id.VerifiedBy)
		dst = append(dst, '}')
	}
	if p := ev.Posture; p != nil {
		dst = appendPosture(&st, dst, p, e.V1 || event.PostureDetailed(ev.Kind))
	}
	if f := ev.File; f != nil {
		dst = append(jsonw.AppendKey(dst, "file"), '{')
		dst = st.Str(dst, "path", "file", f.Path)
		if f.PathTruncated {
			dst = boolField(dst, "path_truncated", true)
		}
		dst = st.OptStr(dst, "mode", "file", f.Mode)
		if f.Created {
			dst = boolField(dst, "created", true)
		}
		dst = st.OptStr(dst, "new_path", "file", f.NewPath)
		if f.Flags != 0 {
			dst = uintField(dst, "flags", uint64(f.Flags))
		}
		if f.Perm != nil {
			dst = uintField(dst, "perm", uint64(*f.Perm))
		}
		if f.Result != 0 {
			dst = intField(dst, "result", int64(f.Result))
		}
		dst = st.OptStr(dst, "syscall_abi", "file", f.SyscallABI)
		dst = fileSource(&st, dst, f)
		dst = fileModify(&st, dst, f)
		dst = append(dst, '}')
	}
	if n := ev.Net; n != nil {
		dst = append(jsonw.AppendKey(dst, "net"), '{')
		dst = st.Str(dst, "protocol", "net", n.Protocol)
		dst = st.Str(dst, "family", "net", n.Family)
		dst = st.Str(dst, "dst_ip", "net", n.DstIP)
		dst = uintField(dst, "dst_port", uint64(n.DstPort))
		dst = st.OptStr(dst, "src_ip", "net", n.SrcIP)
		if n.SrcPort != 0 {
			dst = uintField(dst, "src_port", uint64(n.SrcPort))
		}
		if n.Result != 0 {
			dst = intField(dst, "result", int64(n.Result))
		}
		dst = netOps(&st, dst, n)
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
		if x.RepeatedOpens != 0 {
			dst = uintField(dst, "repeated_opens", uint64(x.RepeatedOpens))
		}
		dst = append(dst, '}')
	}
	if l := ev.Loss; l != nil {
		dst = v1obj.Loss(&st, dst, "loss", l)
	}
	if s := ev.Sensor; s != nil {
		dst = append(jsonw.AppendKey(dst, "sensor"), '{')
		dst = st.Str(dst, "version", "sensor", s.Version)
		dst = st.Str(dst, "instance_id", "sensor", s.InstanceID)
		dst = st.OptStr(dst, "scope", "sensor", s.Scope)
		dst = st.OptStr(dst, "source", "sensor", s.Source)
		dst = st.OptStr(dst, "hooks", "sensor", s.Hooks)
		dst = st.OptStr(dst, "reason", "sensor", s.Reason)
		dst = st.OptStr(dst, "previous_instance_id", "sensor", s.PreviousInstanceID)
		dst = st.OptStr(dst, "previous_end", "sensor", s.PreviousEnd)
		dst = append(dst, '}')
	}
	if a := ev.Alert; a != nil {
		dst = append(jsonw.AppendKey(dst, "alert"), '{')
		dst = st.Str(dst, "rule", "alert", a.Rule)
		dst = st.Str(dst, "severity", "alert", a.Severity)
		dst = st.Str(dst, "message", "alert", a.Message)
		dst = st.OptStr(dst, "action", "alert", a.Action)
		dst = st.OptStr(dst, "result", "alert", a.Result)
		if a.Killed != nil {
			dst = jsonw.AppendInt(jsonw.AppendKey(dst, "killed"), int64(*a.Killed))
		}
		if len(a.Mitre) > 0 {
			dst = st.StrList(dst, "mitre", "alert", a.Mitre)
		}
		dst = st.OptStr(dst, "trigger_event_id", "alert", a.TriggerEventID)
		dst = append(dst, '}')
	}
	if t := ev.Tool; t != nil {
		dst = v1obj.Tool(&st, dst, "tool", t)
	}
	if s := ev.Session; s != nil {
		dst = v1obj.Session(&st, dst, "session", s)
	}
	if c := ev.Checkpoint; c != nil {
		dst = v1obj.Checkpoint(&st, dst, "checkpoint", c)
	}
	if t := ev.Tamper; t != nil {
		dst = v1obj.Tamper(&st, dst, "tamper", t)
	}
	if u := ev.IOURing; u != nil {
		dst = v1obj.IOURing(&st, dst, "io_uring", u)
	}
	if len(ev.Partial) > 0 {
		dst = st.StrList(dst, "partial", "", ev.Partial)
	}
	if ev.Untracked {
		dst = boolField(dst, "untracked", true)
	}
	dst = st.AppendList(dst)
	return append(dst, '}'), nil
}

func (e Encoder) process(st *v1obj.Marks, dst []byte, prefix string, p *event.Process) []byte {
	dst = append(dst, '{')
	dst = st.Str(dst, "exec_id", prefix, p.ExecID)
	dst = st.OptStr(dst, "parent_exec_id", prefix, p.ParentExecID)
	dst = st.OptStr(dst, "current_parent_exec_id", prefix, p.CurrentParentExecID)
	dst = uintField(dst, "pid", uint64(p.PID))
	dst = uintField(dst, "ppid", uint64(p.PPID))
	dst = timeField(dst, "start_time", p.StartTime)
	dst = st.OptStr(dst, "exe", prefix, p.Exe)
	if len(p.ExeFlags) > 0 {
		dst = st.StrList(dst, "exe_flags", prefix, p.ExeFlags)
	}
	if p.AgentLookalike {
		dst = append(jsonw.AppendKey(dst, "agent_lookalike"), "true"...)
	}
	if p.Held {
		dst = append(jsonw.AppendKey(dst, "held"), "true"...)
	}
	if len(p.Argv) > 0 || p.ArgvTruncated {
		dst = e.argv(st, dst, prefix, p, 0)
	}
	dst = st.OptStr(dst, "cwd", prefix, p.Cwd)
	dst = uintField(dst, "uid", uint64(p.UID))
	dst = uintField(dst, "euid", uint64(p.EUID))
	dst = uintField(dst, "gid", uint64(p.GID))
	dst = st.OptStr(dst, "user", prefix, p.User)
	if p.LoginUID != nil {
		dst = uintField(dst, "login_uid", uint64(*p.LoginUID))
	}
	dst = st.OptStr(dst, "login_user", prefix, p.LoginUser)
	dst = st.OptStr(dst, "tty", prefix, p.TTY)
	dst = st.OptStr(dst, "cgroup", prefix, p.Cgroup)
	dst = st.OptStr(dst, "container_id", prefix, p.ContainerID)
	if p.MntNS != 0 {
		dst = uintField(dst, "mnt_ns", uint64(p.MntNS))
	}
	if b := p.Binary; b != nil {
		// Constant prefixes: no allocation on the hot path.
		bp := "ancestry.binary"
		if prefix == "process" {
			bp = "process.binary"
		}
		dst = binaryObj(st, jsonw.AppendKey(dst, "binary"), bp, b)
	}
	if b := p.Loaded; b != nil {
		bp := "ancestry.loaded"
		if prefix == "process" {
			bp = "process.loaded"
		}
		dst = binaryObj(st, jsonw.AppendKey(dst, "loaded"), bp, b)
	}
	return append(dst, '}')
}

// binaryObj writes a binary identity object (process.binary, and
// process.loaded: the program a loader ran).
func binaryObj(st *v1obj.Marks, dst []byte, bp string, b *event.Binary) []byte {
	dst = append(dst, '{')
	dst = st.Str(dst, "path", bp, b.Path)
	dst = st.OptStr(dst, "sha256", bp, b.SHA256)
	dst = intField(dst, "size", b.Size)
	dst = uintField(dst, "inode", b.Inode)
	dst = uintField(dst, "dev", b.Dev)
	if !b.Mtime.IsZero() {
		dst = timeField(dst, "mtime", b.Mtime)
	}
	dst = st.Str(dst, "verdict", bp, b.Verdict)
	dst = st.OptStr(dst, "package", bp, b.Package)
	dst = st.OptStr(dst, "signer", bp, b.Signer)
	dst = st.OptStr(dst, "key_id", bp, b.KeyID)
	dst = st.OptStr(dst, "reason", bp, b.Reason)
	return append(dst, '}')
}

// ancestry writes the ancestry array.
func (e Encoder) ancestry(st *v1obj.Marks, dst []byte, anc []event.Process) []byte {
	dst = append(dst, '[')
	compact := e.compact()
	for i := range anc {
		dst = jsonw.Comma(dst)
		if compact {
			dst = e.ancestor(st, dst, &anc[i])
		} else {
			dst = e.process(st, dst, "ancestry", &anc[i])
		}
	}
	return append(dst, ']')
}

// ancestor writes one ancestor of compact ancestry: the identity that names
// it (its own process.exec event has the rest), argv bounded to
// event.MaxAncestorArgvBytes, its user (its uid when the name is unknown)
// and the verdict on its binary.
func (e Encoder) ancestor(st *v1obj.Marks, dst []byte, p *event.Process) []byte {
	dst = append(dst, '{')
	dst = st.Str(dst, "exec_id", "ancestry", p.ExecID)
	dst = uintField(dst, "pid", uint64(p.PID))
	dst = timeField(dst, "start_time", p.StartTime)
	dst = st.OptStr(dst, "exe", "ancestry", p.Exe)
	if len(p.ExeFlags) > 0 {
		dst = st.StrList(dst, "exe_flags", "ancestry", p.ExeFlags)
	}
	if len(p.Argv) > 0 || p.ArgvTruncated {
		dst = e.argv(st, dst, "ancestry", p, event.MaxAncestorArgvBytes)
	}
	if p.User != "" {
		dst = st.Str(dst, "user", "ancestry", p.User)
	} else {
		dst = uintField(dst, "uid", uint64(p.UID)) // no name for it
	}
	if b := p.Binary; b != nil {
		dst = append(jsonw.AppendKey(dst, "binary"), '{')
		dst = st.OptStr(dst, "sha256", "ancestry.binary", b.SHA256)
		dst = st.Str(dst, "verdict", "ancestry.binary", b.Verdict)
		dst = st.OptStr(dst, "signer", "ancestry.binary", b.Signer)
		dst = append(dst, '}')
	}
	if b := p.Loaded; b != nil {
		// The program a loader ran: named, as the ancestor's own binary.
		dst = append(jsonw.AppendKey(dst, "loaded"), '{')
		dst = st.Str(dst, "path", "ancestry.loaded", b.Path)
		dst = st.OptStr(dst, "sha256", "ancestry.loaded", b.SHA256)
		dst = st.Str(dst, "verdict", "ancestry.loaded", b.Verdict)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// argv writes the argument list within the encoder's bounds, and within
// limit bytes in all when limit is positive and tighter. When a bound cuts
// it, argv_truncated is set and argc carries the original count.
func (e Encoder) argv(st *v1obj.Marks, dst []byte, prefix string, p *event.Process, limit int) []byte {
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
	if limit > 0 && limit < maxTotal {
		maxTotal = limit
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
			st.Bad(prefix, "argv", a)
		}
	}
	dst = append(dst, ']')
	if cut || p.ArgvTruncated {
		dst = boolField(dst, "argv_truncated", true)
		dst = uintField(dst, "argc", uint64(len(p.Argv)))
	}
	return dst
}

// appendPosture writes the posture: the sample's time, compliant and
// failed, and with detailed every check's result.
func appendPosture(st *v1obj.Marks, dst []byte, p *event.Posture, detailed bool) []byte {
	dst = append(jsonw.AppendKey(dst, "posture"), '{')
	dst = timeField(dst, "sampled_at", p.SampledAt)
	dst = boolField(dst, "compliant", p.Compliant)
	if len(p.Failed) > 0 {
		dst = st.StrList(dst, "failed", "posture", p.Failed)
	}
	if detailed && len(p.Checks) > 0 {
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
				st.Bad("posture", "checks", k)
			}
			dst = append(dst, ':', '{')
			dst = boolField(dst, "ok", c.OK)
			dst = st.OptStr(dst, "detail", "posture.checks", c.Detail)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}
